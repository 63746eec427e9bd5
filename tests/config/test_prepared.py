"""Prepared queries: compiled by the ORM once per shape, then run with new values, binding what the ORM would."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.utils import ConnectionHandler
from django.test.utils import CaptureQueriesContext

from accounts.models import User
from config.prepared import PreparedQuery, PreparedQueryError, Slots
from tests.accounts.factories import UserFactory

JOINED = datetime(2026, 3, 1, 12, tzinfo=UTC)


def _users(*, username: str, joined_after: datetime, ids: list[int], active: bool = True) -> QuerySet:
    """The ORM query the prepared one stands for: a text, a datetime, a list for `__in` and a constant."""
    return (
        User.objects.filter(Q(username=username) | Q(pk__in=ids), date_joined__gt=joined_after, is_active=active)
        .order_by("pk")
        .values_list("pk", "username")
    )


def _prepared_users() -> tuple[PreparedQuery, list[int]]:
    """A prepared `_users` whose shape is the number of ids, and a list that records each build's shape."""
    builds: list[int] = []

    def build(slots: Slots, id_count: int) -> QuerySet:
        builds.append(id_count)
        return _users(
            username=slots.text("username"),
            joined_after=slots.moment("joined_after"),
            ids=slots.numbers("ids", id_count),
        )

    return PreparedQuery(build), builds


def _values(username: str, joined_after: datetime, ids: list[int]) -> dict:
    return {"username": username, "joined_after": joined_after, "ids": ids}


@pytest.mark.django_db
def test_a_prepared_query_returns_the_rows_of_the_orm_query_for_every_set_of_values():
    # given
    early = UserFactory(username="early", date_joined=JOINED - timedelta(days=1))
    late = UserFactory(username="late", date_joined=JOINED + timedelta(days=1))
    later = UserFactory(username="later", date_joined=JOINED + timedelta(days=2))
    UserFactory(username="gone", date_joined=JOINED + timedelta(days=1), is_active=False)
    prepared, _ = _prepared_users()
    cases = [
        ("late", JOINED, [later.pk]),
        ("early", JOINED, [early.pk]),
        ("early", JOINED - timedelta(days=2), [late.pk]),
        ("nobody", JOINED + timedelta(days=1, microseconds=1), [later.pk]),
        ("gone", JOINED, []),
    ]
    for username, joined_after, ids in cases:
        # when
        rows = prepared.execute(len(ids), values=_values(username, joined_after, ids))
        # then
        assert rows == list(_users(username=username, joined_after=joined_after, ids=ids)), (username, ids)
    assert rows == []  # an inactive user is not found: the constant is bound too


@pytest.mark.django_db
def test_a_shape_is_built_and_compiled_once_then_each_call_is_one_statement_the_orm_would_run():
    # given
    user = UserFactory(username="ann", date_joined=JOINED + timedelta(hours=1))
    prepared, builds = _prepared_users()
    prepared.execute(1, values=_values("ann", JOINED, [user.pk]))
    assert builds == [1, 1]  # built twice the first time: both compiles must agree
    # when
    with CaptureQueriesContext(connection) as queries:
        first = prepared.execute(1, values=_values("bob", JOINED, [user.pk]))
        second = prepared.execute(1, values=_values("ann", JOINED + timedelta(hours=2), [user.pk]))
        list(_users(username="bob", joined_after=JOINED, ids=[user.pk]))
    prepared.execute(2, values=_values("ann", JOINED, [user.pk, user.pk + 1]))
    # then
    assert builds == [1, 1, 2, 2]  # only the new shape was built
    assert (first, second) == ([(user.pk, "ann")], [])
    prepared_sql, _, orm_sql = (query["sql"] for query in queries.captured_queries)
    assert prepared_sql == orm_sql  # the same statement with the same values, as PostgreSQL received it


@pytest.mark.django_db
def test_a_list_of_another_length_than_its_shape_is_refused():
    prepared, _ = _prepared_users()
    with pytest.raises(PreparedQueryError, match="'ids' has 2 values; its shape says 1"):
        prepared.execute(1, values=_values("ann", JOINED, [1, 2]))


def _sqlite():
    return ConnectionHandler({"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}})["default"]


@pytest.mark.parametrize("vendor", ["postgresql", "sqlite"])
@pytest.mark.django_db
def test_each_vendor_gets_its_own_statement_binding_the_parameters_the_orm_binds_there(vendor):
    # given: the test database (PostgreSQL), or SQLite (make run), which binds datetimes as strings
    target = connection if vendor == "postgresql" else _sqlite()
    assert target.vendor == vendor
    prepared, _ = _prepared_users()
    values = _values("ann", JOINED, [7, 9])
    # when
    statement = prepared.statement_on(target, 2)
    # then
    orm_sql, orm_params = _users(**values).query.get_compiler(connection=target).as_sql()
    assert statement.sql == orm_sql
    assert statement.bind(values, target) == list(orm_params)
    assert ("default", vendor, (2,)) in prepared._statements


def _unused(slots: Slots) -> QuerySet:
    slots.text("unused")
    return User.objects.filter(username=slots.text("name"))


def _twice(slots: Slots) -> QuerySet:
    return User.objects.filter(username=slots.text("name"), first_name=slots.text("name"))


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda slots: User.objects.filter(username__contains=slots.text("part")), "changed a slot's value"),
        (lambda slots: User.objects.order_by("pk")[: slots.number("limit")], "written into the SQL"),
        (_unused, r"no parameter carries the slot\(s\) unused"),
        (_twice, "handed out twice"),
        (lambda slots: User.objects.filter(date_joined__lte=datetime.now(tz=UTC)), "changes with the values"),
    ],
    ids=["transformed", "inlined", "unused", "handed-out-twice", "not-a-shape"],
)
@pytest.mark.django_db
def test_a_build_whose_slots_are_not_bound_one_to_one_fails_when_compiled(build, message):
    prepared = PreparedQuery(build)
    with pytest.raises(PreparedQueryError, match=message):
        prepared.statement()
    assert prepared._statements == {}  # nothing cached: every call fails the same way
