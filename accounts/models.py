"""The user model: staff log in to the admin, API clients get JWTs with a role."""

from django.contrib.auth.models import AbstractUser
from django.db import models


class ApiRole(models.TextChoices):
    STOREFRONT = "storefront", "Storefront"
    FINANCE = "finance", "Finance"


class User(AbstractUser):
    """A person (staff) or an API client. API clients have a role and are never staff."""

    api_role = models.CharField(
        "API role",
        max_length=20,
        choices=ApiRole.choices,
        blank=True,
        default="",
        help_text="Set for API clients: storefront clients act on their own payments, finance clients read all.",
    )

    class Meta:
        db_table = "accounts_user"
        constraints = [
            models.CheckConstraint(
                condition=models.Q(api_role__in=["", "storefront", "finance"]), name="user_api_role_valid"
            ),
        ]
