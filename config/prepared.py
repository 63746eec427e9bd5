"""Queries the ORM compiles once per shape, then run again with new values: no building and compiling per call.

Building a queryset and compiling it (`filter` → `build_filter`, `as_sql`, `resolve_expression`) costs far
more Python time than the database takes to answer a small indexed query. A `PreparedQuery` wraps a build
function that makes the queryset (or SQL composed of compiled querysets) with stand-in values handed out by
`Slots`; the first call for each shape compiles it and records which positional parameter is which named
value, and every later call only binds the new values and executes the cached SQL::

    @PreparedQuery
    def _payments_since(slots: Slots, with_email: bool) -> QuerySet:
        match = Q(customer_id=slots.text("customer"))
        if with_email:
            match |= Q(customer_email_index=slots.text("email"))
        return Payment.objects.filter(match, created_at__gt=slots.moment("since")).values_list("pk")

    rows = _payments_since.execute(bool(email), values={"customer": ..., "email": ..., "since": ...})

The shape is everything the build depends on besides the slots' values (here `with_email`; the length of a
list given to an `__in` lookup is one, see `Slots.texts`); it is passed positionally and must be hashable.
Statements are cached per database alias, vendor and shape, so the SQL is the vendor's own as the ORM
writes it. Rows come back as the DB-API returns them (no ORM converters: on SQLite a boolean is 0 or 1).

Misuse fails loudly when the statement is compiled: a slot the SQL does not carry as exactly that
parameter (dropped, inlined into the SQL, or changed, e.g. wrapped in `%…%` by `contains`), or a build
whose SQL or parameters change with the values rather than the shape (it is compiled twice, with two
different sets of stand-ins, and both must agree) raises `PreparedQueryError`. Compiling the same shape
twice in two threads at once is harmless: both store the same statement.
"""

import secrets
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import QuerySet

Built = QuerySet[Any, Any] | tuple[str, Sequence[Any]]


class PreparedQueryError(Exception):
    """A build whose slots do not map one to one onto the compiled statement's parameters."""


@dataclass(frozen=True)
class _Slot:
    name: str
    position: int | None  # the index in a list value (`Slots.texts`); None: a single value
    adapted: bool  # bound as the backend adapts a DateTimeField's value (e.g. a string on SQLite)


@dataclass(frozen=True)
class Statement:
    """Compiled SQL and, per parameter, either the slot it takes its value from or the constant the ORM put there."""

    sql: str
    params: tuple[_Slot | tuple[Any], ...]  # a constant is wrapped in a 1-tuple
    lengths: tuple[tuple[str, int], ...]  # the length of each list slot, part of the shape

    def bind(self, values: Mapping[str, Any], connection: BaseDatabaseWrapper) -> list[Any]:
        """The parameters for `values` (a value for every slot name) on `connection`.

        :raises PreparedQueryError: a list value whose length is not the one compiled.
        """
        for name, length in self.lengths:
            if len(values[name]) != length:
                raise PreparedQueryError(f"{name!r} has {len(values[name])} values; its shape says {length}.")
        bound = []
        for param in self.params:
            if isinstance(param, tuple):
                bound.append(param[0])
                continue
            value = values[param.name]
            if param.position is not None:
                value = value[param.position]
            bound.append(connection.ops.adapt_datetimefield_value(value) if param.adapted else value)
        return bound


class Slots:
    """Hands out the stand-in values a build function puts where the real values go, one per name.

    Each compile gets its own random token, so two compiles give different stand-ins and none can be
    mistaken for a constant of the query.
    """

    def __init__(self, connection: BaseDatabaseWrapper) -> None:
        self.connection = connection
        self.token = secrets.token_hex(6)
        self._seed = secrets.randbelow(10_000_000) * 100
        # (type, value) of each stand-in as the ORM may bind it → (slot, the adapter that gave that form)
        self.forms: dict[tuple[type, Any], _Slot] = {}
        self.wanted: dict[tuple[str, int | None], str] = {}  # (name, position) → a description for errors
        self.lengths: dict[str, int] = {}

    def _claim(self, name: str, position: int | None) -> int:
        if (name, position) in self.wanted:
            raise PreparedQueryError(f"The slot {name!r} is handed out twice: reuse the value instead.")
        self.wanted[(name, position)] = name if position is None else f"{name}[{position}]"
        return len(self.wanted)

    def _register(self, stand_in: Any, slot: _Slot) -> None:
        self.forms[(type(stand_in), stand_in)] = slot

    def text(self, name: str, *, position: int | None = None) -> str:
        """A string value (compared as it is: not for `contains`, `startswith` or other lookups that change it)."""
        number = self._claim(name, position)
        stand_in = f"prepared-{self.token}-{number}"
        self._register(stand_in, _Slot(name, position, adapted=False))
        return stand_in

    def texts(self, name: str, length: int) -> list[str]:
        """A list of `length` strings, for an `__in` lookup: the length is part of the shape."""
        self.lengths[name] = length
        return [self.text(name, position=index) for index in range(length)]

    def number(self, name: str, *, position: int | None = None) -> int:
        """An integer value (a primary key, a foreign key's id, a count); within a 32-bit field's range."""
        number = self._claim(name, position)
        stand_in = 1_000_000_000 + self._seed + number
        self._register(stand_in, _Slot(name, position, adapted=False))
        return stand_in

    def numbers(self, name: str, length: int) -> list[int]:
        """A list of `length` integers, for an `__in` lookup: the length is part of the shape."""
        self.lengths[name] = length
        return [self.number(name, position=index) for index in range(length)]

    def moment(self, name: str) -> datetime:
        """An aware datetime value, bound as the backend binds a DateTimeField's value."""
        number = self._claim(name, None)
        stand_in = datetime(1970, 1, 2, tzinfo=UTC) + timedelta(seconds=self._seed + number, microseconds=number)
        self._register(stand_in, _Slot(name, None, adapted=False))
        adapted = self.connection.ops.adapt_datetimefield_value(stand_in)
        if adapted is not stand_in:  # e.g. SQLite binds a string
            self._register(adapted, _Slot(name, None, adapted=True))
        return stand_in

    def compile(self, queryset: QuerySet[Any, Any]) -> tuple[str, Sequence[Any]]:
        """The SQL and parameters of `queryset` on this connection, to compose into a larger statement."""
        return queryset.query.get_compiler(connection=self.connection).as_sql()

    def stand_in_texts(self) -> list[str]:
        """The text forms of every stand-in, to find any the ORM wrote into the SQL itself."""
        return [str(value) for (_kind, value) in self.forms if not isinstance(value, datetime)]


class PreparedQuery:
    """A build function `(slots, *shape) -> QuerySet | (sql, params)` compiled once per alias, vendor and shape."""

    def __init__(self, build: Callable[..., Built]) -> None:
        self._build = build
        self._statements: dict[tuple[str, str, tuple[Hashable, ...]], Statement] = {}
        self.__doc__ = build.__doc__

    def statement(self, *shape: Hashable, using: str = DEFAULT_DB_ALIAS) -> Statement:
        """The compiled statement of `shape` on database `using` (compiled now if not yet).

        :raises PreparedQueryError: the build's slots do not map one to one onto the statement's parameters.
        """
        return self.statement_on(connections[using], *shape)

    def statement_on(self, connection: BaseDatabaseWrapper, *shape: Hashable) -> Statement:
        """The compiled statement of `shape` for `connection` (cached by its alias and vendor)."""
        key = (connection.alias, connection.vendor, shape)
        statement = self._statements.get(key)
        if statement is None:
            first = self._compile(connection, shape)
            if first != self._compile(connection, shape):
                raise PreparedQueryError(
                    f"{self._build.__qualname__}{shape}: the SQL changes with the values, not only the shape."
                )
            statement = self._statements[key] = first
        return statement

    def execute(self, *shape: Hashable, values: Mapping[str, Any], using: str = DEFAULT_DB_ALIAS) -> list[tuple]:
        """Run the statement of `shape` with `values` (one for every slot); the rows as the DB-API gives them."""
        connection = connections[using]
        statement = self.statement_on(connection, *shape)
        with connection.cursor() as cursor:
            cursor.execute(statement.sql, statement.bind(values, connection))
            return cursor.fetchall()

    def _compile(self, connection: BaseDatabaseWrapper, shape: tuple[Hashable, ...]) -> Statement:
        slots = Slots(connection)
        built = self._build(slots, *shape)
        if isinstance(built, QuerySet):
            sql, params = slots.compile(built)
        else:
            sql, params = built
        where = f"{self._build.__qualname__}{shape}"
        for text in slots.stand_in_texts():
            if text in sql:
                raise PreparedQueryError(f"{where}: a slot's value is written into the SQL, not bound: {text}.")
        mapped: list[_Slot | tuple[Any]] = []
        found = set()
        for param in params:
            try:
                slot = slots.forms.get((type(param), param))
            except TypeError:  # an unhashable constant (a list bound as an array)
                slot = None
            if slot is not None:
                mapped.append(slot)
                found.add((slot.name, slot.position))
                continue
            if isinstance(param, str) and slots.token in param:
                raise PreparedQueryError(f"{where}: the ORM changed a slot's value before binding it: {param!r}.")
            mapped.append((param,))
        missing = [description for key, description in slots.wanted.items() if key not in found]
        if missing:
            raise PreparedQueryError(f"{where}: no parameter carries the slot(s) {', '.join(missing)}.")
        return Statement(sql=sql, params=tuple(mapped), lengths=tuple(sorted(slots.lengths.items())))
