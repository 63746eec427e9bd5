"""Row locks of accounts, taken one way: `select_for_update`, evaluated at once."""

from accounts.models import User


def lock_user_named(username: str) -> User | None:
    """Lock the user with this name, if there is one, until the surrounding transaction ends."""
    return User.objects.select_for_update().filter(username=username).first()
