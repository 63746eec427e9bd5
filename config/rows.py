"""Writing one row without compiling its SQL every time: for the rows the money path writes on every request.

`Model.objects.create()` and `save(update_fields=…)` build and compile a query on every call; for
the payment, its history rows and outbox events, written several times per request, compiling costs
more than the database does. These functions compile a model's INSERT (and each UPDATE shape) once
per database vendor, then only prepare the values as `save()` does (each field's `pre_save` and
`get_db_prep_save`: `auto_now`, JSON, the encrypted fields) and run the SQL.

- `insert(obj)` is `obj.save(force_insert=True)`: the same `pre_save`/`post_save` signals (so
  django-auditlog's receivers and its actor context still run), the same row, `RETURNING` the primary
  key and the database defaults. A model with its own `save()` is saved through it.
- `insert_row(obj)` and `update_row(obj, fields, where)` write without signals and without the
  model's `save()`: for a caller that does itself what those would do (`payments.saving`).
- `lock_row(model, pk)` reads one row as `select_for_update(of=("self",)).get(pk=pk)` does (the
  same SQL, the fields' converters: JSON, the encrypted fields), compiled once per vendor;
  `lock_row_where(model, {column: value, …})` the same by other columns (a unique key).

Django's compiled insert is used for what a plan does not cover: a database default the object
overrides, a field with its own placeholder, inherited models, a backend without `INSERT … RETURNING`.

`batched()` saves round trips: inside it, the rows inserted with `deferred=True` (history rows, outbox
events, audit entries: rows nothing reads back in the same transaction) and the UPDATEs made with
`deferred=True` (whose count nobody reads) wait, and go to PostgreSQL as one statement (a `WITH` of
them) just before the next other statement on the connection, or at the block's end. So their order
against every other statement is kept (a SAVEPOINT or its rollback included), and each row still gets
its primary key, at the flush. A deferred row of a model with `post_save` receivers is written at once
(they expect the row); elsewhere (SQLite) the rows are written one by one at the flush.

`insert_row(obj, on_conflict=…)` is `INSERT … ON CONFLICT DO NOTHING`: a row that may find its unique key
taken (an API request's idempotency key, stored with the answer); `update_row(…, on_miss=…)` an UPDATE that
may match no row (a compare-and-set: `payments.saving`). Deferred, they wait in the batch like the others
(the statement then joins its members to one row, so one that writes nothing empties no other), and the
callback is called after the flush when nothing was written: it may raise, and the caller's transaction
ends with that error (the batch's other rows were written in the same statement: the rollback takes them).
"""

import contextlib
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any, TypeVar

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, models, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Field, Model
from django.db.models.expressions import DatabaseDefault
from django.db.models.fields import NOT_PROVIDED, AutoFieldMixin
from django.db.models.signals import post_save, pre_save
from django.db.transaction import TransactionManagementError


@dataclass(frozen=True)
class _Insert:
    sql: str
    fields: tuple[Field, ...]  # the columns written, in the SQL's order
    as_is: tuple[type | None, ...]  # per column: the value type `get_db_prep_save` passes unchanged (`_as_is`)
    defaulted: tuple[Field, ...]  # left to their database default (`db_default`)
    returning: tuple[Field, ...]  # read back: the primary key and the database defaults


@dataclass(frozen=True)
class _Update:
    sql: str
    fields: tuple[Field, ...]  # SET, in order
    where: tuple[Field, ...]  # WHERE … = %s AND …, in order
    returning: tuple[Field, ...] = ()  # nothing read back (a deferred UPDATE in a batch)


@dataclass(frozen=True)
class _Read:
    sql: str
    attnames: tuple[str, ...]  # the selected columns' attributes, in order (what `Model.from_db` takes)
    converters: tuple[tuple[int, tuple[Callable[..., Any], ...], Any], ...]  # (position, converters, expression)
    order: tuple[int, ...]  # the SQL's parameters: for each, which of the matched columns' values
    prepare: Mapping[str, Callable[[Any, Any], Any]]  # each matched column's value as the column takes it


M = TypeVar("M", bound=Model)

# psycopg converts a statement's `%s` placeholders (to `$n`, with their formats) through a cache only for
# statements of at most 4,096 bytes and 50 parameters: bigger ones are usually an ORM's one-off `IN (…)` lists.
# A batch's `WITH` repeats a handful of shapes with more parameters than that (a refund's answer: 8 rows, over
# 90), and was parsed again on every execution: a tenth of the worker's time per refund, 4 % of a create's.
# Its conversions are cached too (bounded: 256 statements of at most 16 KB), in every process that writes.
STATEMENT_CACHE_BYTES = 16_384
STATEMENT_CACHE_PARAMS = 256


def _cache_batch_statements() -> None:
    try:
        from psycopg import _queries
    except ImportError:  # no psycopg: SQLite only
        return
    if _queries.MAX_CACHED_STATEMENT_PARAMS >= STATEMENT_CACHE_PARAMS:
        return  # done already (or psycopg's own bounds are as wide)
    _queries.MAX_CACHED_STATEMENT_LENGTH = max(_queries.MAX_CACHED_STATEMENT_LENGTH, STATEMENT_CACHE_BYTES)
    _queries.MAX_CACHED_STATEMENT_PARAMS = STATEMENT_CACHE_PARAMS
    # Server-side binding's conversion, and the client-side one (DATABASE_SERVER_SIDE_BINDING=false, PgBouncer).
    _queries._query2pg = lru_cache(maxsize=256)(_queries._query2pg_nocache)
    _queries._query2pg_client = lru_cache(maxsize=256)(_queries._query2pg_client_nocache)


_cache_batch_statements()


class _Matched:
    """Where a checked deferred UPDATE (`update_row(on_miss=…)`) gets its row's key back: None, it matched none."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        setattr(self, model._meta.pk.attname, None)

    @property
    def pk(self) -> Any:
        return getattr(self, self.model._meta.pk.attname)


@dataclass(frozen=True)
class _Row:
    obj: Model | _Matched
    plan: _Insert | _Update
    values: list[Any]
    # Called when the statement wrote nothing (no key came back): an INSERT … ON CONFLICT DO NOTHING that found
    # its key taken, an UPDATE that matched no row.
    if_none: Callable[[], None] | None = None

    @property
    def model(self) -> type[Model]:
        return self.obj.model if isinstance(self.obj, _Matched) else type(self.obj)


@dataclass
class _Batch:
    connection: BaseDatabaseWrapper
    using: str
    rows: list[_Row] = field(default_factory=list)

    def before_statement(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        self.flush()  # the waiting rows go first: the order of the writes is kept
        return execute(sql, params, many, context)

    def flush(self) -> None:
        rows, self.rows = self.rows, []
        if not rows:
            return
        if len(rows) == 1 or self.connection.vendor != "postgresql":  # no WITH of INSERTs elsewhere (SQLite)
            for row in rows:
                _execute(self.connection, self.using, row.obj, row.plan.sql, row.values, row.plan.returning)
                _check_written(row)
            return
        members = ", ".join(f"r{n} AS ({row.plan.sql})" for n, row in enumerate(rows))
        reading = [f"r{n}" for n, row in enumerate(rows) if row.plan.returning]
        columns = ", ".join(f"{name}.*" for name in reading) or "1"
        if any(row.if_none is not None for row in rows):
            # A member that may write nothing must not empty the answer: each member joined to one row, left.
            sources = "(SELECT 1) AS one" + "".join(f" LEFT JOIN {name} ON true" for name in reading)
        else:
            sources = ", ".join(reading)
        sql = f"WITH {members} SELECT {columns}" + (f" FROM {sources}" if reading else "")  # noqa: S608 - the plans' SQL
        returning = tuple(f for row in rows for f in row.plan.returning)
        targets = [row.obj for row in rows for _f in row.plan.returning]
        values = [value for row in rows for value in row.values]
        with transaction.mark_for_rollback_on_error(using=self.using), self.connection.cursor() as cursor:
            cursor.execute(sql, values)
            read = cursor.fetchone() if returning else ()
        for obj, column, value in zip(targets, returning, read, strict=True):
            setattr(obj, column.attname, value)
        for row in rows:
            _check_written(row)


def _check_written(row: _Row) -> None:
    """Call the row's `if_none` when its statement wrote nothing (no key came back)."""
    if row.if_none is not None and row.obj.pk is None:
        row.if_none()


_batches: "weakref.WeakKeyDictionary[BaseDatabaseWrapper, _Batch]" = weakref.WeakKeyDictionary()


@contextmanager
def batched(*, using: str = DEFAULT_DB_ALIAS) -> Iterator[None]:
    """Hold the `deferred=True` inserts of the block and write them together (see the module docstring).

    Use it directly inside `transaction.atomic()`. If the block raises, the rows are still written when
    the transaction can go on (the caller may catch the error and commit), and dropped when it cannot.
    """
    connection = connections[using]
    if connection in _batches:  # an enclosing block holds the rows
        yield
        return
    batch = _batches[connection] = _Batch(connection, using)
    try:
        with connection.execute_wrapper(batch.before_statement):
            try:
                yield
            except BaseException:
                if connection.needs_rollback or not connection.in_atomic_block:
                    batch.rows.clear()
                else:
                    # The block's own error is the one to raise; a failed flush marks the transaction for rollback.
                    with contextlib.suppress(DatabaseError):
                        batch.flush()
                raise
            batch.flush()
    finally:
        del _batches[connection]


_inserts: dict[tuple[type[Model], str, bool], _Insert | None] = {}
_updates: dict[tuple[type[Model], str, tuple[str, ...], tuple[str, ...]], _Update] = {}


def insert(obj: M, *, using: str = DEFAULT_DB_ALIAS, deferred: bool = False) -> M:
    """INSERT the new `obj` as `obj.save(force_insert=True)` does, signals included, and set its primary key.

    `deferred`: inside `batched()` the row may wait for the batch's statement (its key is set then),
    unless the model has `post_save` receivers.
    """
    model = type(obj)
    if model.save is not Model.save or model._meta.proxy:
        obj.save(force_insert=True, using=using)
        return obj
    signals = not model._meta.auto_created
    if signals:
        pre_save.send(sender=model, instance=obj, raw=False, using=using, update_fields=None)
    insert_row(obj, using=using, deferred=deferred and not (signals and post_save.has_listeners(model)))
    if signals:
        post_save.send(sender=model, instance=obj, created=True, update_fields=None, raw=False, using=using)
    return obj


def insert_row(
    obj: M, *, using: str = DEFAULT_DB_ALIAS, deferred: bool = False, on_conflict: Callable[[], None] | None = None
) -> M:
    """INSERT the new `obj` as `Model.save()` would, without the model's own `save()` and without signals.

    For a caller that does itself what those would do (`payments.saving.payment_insert`); else use `insert`.
    `deferred`: inside `batched()` the row may wait for the batch's statement (its key is set then).
    `on_conflict`: the INSERT is `… ON CONFLICT DO NOTHING`, and when it inserts nothing (the row's key stays
    None) `on_conflict` is called: at once, or, deferred, when the batch's statement has run (it may raise).
    """
    model = type(obj)
    connection = connections[using]
    # A row whose database-numbered key is already set (drawn from its sequence before) is inserted with it.
    keyed = obj.pk is not None and isinstance(model._meta.pk, AutoFieldMixin)
    key = (model, connection.vendor, keyed)
    if key not in _inserts:
        _inserts[key] = _insert_plan(model, using, keyed=keyed)  # a race compiles it twice: the same plan, one kept
    plan = _inserts[key]
    with transaction.mark_for_rollback_on_error(using=using):
        if plan is None or any(not isinstance(getattr(obj, f.attname), DatabaseDefault) for f in plan.defaulted):
            if on_conflict is not None:
                raise DatabaseError(f"insert_row({model.__name__}, on_conflict=…) needs a compiled INSERT")
            obj._save_table(cls=model, force_insert=True, using=using)  # type: ignore[attr-defined]  # Django's own insert
        else:
            if on_conflict is not None:
                plan = _unless_conflict(plan)
            values = _insert_values(obj, plan, connection)
            batch = _batches.get(connection) if deferred else None
            row = _Row(obj, plan, values, on_conflict)
            if batch is not None:
                batch.rows.append(row)
            else:
                _execute(connection, using, obj, plan.sql, values, plan.returning)
                _check_written(row)
    obj._state.adding = False
    obj._state.db = using
    return obj


@cache
def _unless_conflict(plan: _Insert) -> _Insert:
    """The plan's INSERT as `INSERT … ON CONFLICT DO NOTHING RETURNING …` (nothing returned on a conflict)."""
    if not plan.returning or " RETURNING " not in plan.sql:
        raise DatabaseError("an INSERT … ON CONFLICT DO NOTHING tells what it inserted by its RETURNING")
    head, _, tail = plan.sql.rpartition(" RETURNING ")
    return _Insert(
        sql=f"{head} ON CONFLICT DO NOTHING RETURNING {tail}",
        fields=plan.fields,
        as_is=plan.as_is,
        defaulted=plan.defaulted,
        returning=plan.returning,
    )


def _insert_values(obj: Model, plan: _Insert, connection: BaseDatabaseWrapper) -> list[Any]:
    """Each column's `get_db_prep_save(pre_save(obj, True))`, as `save()` prepares it (`_as_is` where it is so)."""
    state = obj.__dict__
    return [
        value
        if kind is not None and type(value := state.get(f.attname, _MISSING)) is kind
        else f.get_db_prep_save(f.pre_save(obj, True), connection=connection)
        for f, kind in zip(plan.fields, plan.as_is, strict=True)
    ]


def _execute(
    connection: BaseDatabaseWrapper,
    using: str,
    obj: Model | _Matched,
    sql: str,
    values: list[Any],
    returning: tuple[Field, ...],
) -> None:
    with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
        cursor.execute(sql, values)
        row = cursor.fetchone() if returning else ()
    if row is None:  # an INSERT … ON CONFLICT DO NOTHING or a checked UPDATE that wrote nothing: the key stays None
        return
    for column, value in zip(returning, row, strict=True):
        setattr(obj, column.attname, value)


def update_row(
    obj: Model,
    fields: Iterable[str],
    *,
    where: Mapping[str, Any],
    using: str = DEFAULT_DB_ALIAS,
    deferred: bool = False,
    on_miss: Callable[[], None] | None = None,
) -> int | None:
    """UPDATE `fields` of `obj`'s row where each column of `where` equals its value; the number of rows matched.

    `SET` values are prepared as `save(update_fields=…)` prepares them (`pre_save`, so `auto_now`
    fields take the time now). No signals and not the model's `save()`: see the module docstring.
    `deferred`: inside `batched()`, the UPDATE waits for the batch's statement and None is returned (for a
    caller that does not need the count). The batch's members run on one snapshot: a deferred UPDATE sees
    the table as it was before the batch, so it must not touch a row the same batch inserts; a second
    deferred UPDATE of the same table first writes the waiting rows (PostgreSQL applies only one of two
    changes a WITH makes to one row).
    `on_miss`: called when the UPDATE matches no row (a compare-and-set that lost): at once, or, deferred,
    when the batch's statement has run (`UPDATE … RETURNING` its key; it may raise, and then the caller's
    transaction must end with that error: the batch's other rows went in the same statement).
    """
    if any(value is None for value in where.values()):
        raise ValueError("update_row matches with '=': a None in `where` would match nothing")
    model = type(obj)
    connection = connections[using]
    names = tuple(fields)
    key = (model, connection.vendor, names, tuple(where))
    plan = _updates.get(key)
    if plan is None:
        plan = _updates[key] = _update_plan(model, names, tuple(where), using)
    values = [field.get_db_prep_save(field.pre_save(obj, False), connection=connection) for field in plan.fields]
    values += [field.get_db_prep_value(where[field.name], connection=connection) for field in plan.where]
    batch = _batches.get(connection) if deferred else None
    if batch is not None:
        if any(row.model is model for row in batch.rows):
            # Two UPDATEs of one table never share a WITH (of one row, only one would take effect), nor does an
            # UPDATE share one with an INSERT into its table (it would not see the new row: it might be that one).
            batch.flush()
        if on_miss is None:
            batch.rows.append(_Row(obj, plan, values))
        else:
            batch.rows.append(_Row(_Matched(model), _returning_key(plan, model, using), values, if_none=on_miss))
        return None
    with transaction.mark_for_rollback_on_error(using=using), connection.cursor() as cursor:
        cursor.execute(plan.sql, values)
        matched = int(cursor.rowcount)
    if matched == 0 and on_miss is not None:
        on_miss()
    return matched


@cache
def _returning_key(plan: _Update, model: type[Model], using: str) -> _Update:
    """The plan's UPDATE with `RETURNING` the row's key: a WITH member tells whether it matched a row."""
    pk = model._meta.pk
    column = connections[using].ops.quote_name(pk.column)
    return _Update(sql=f"{plan.sql} RETURNING {column}", fields=plan.fields, where=plan.where, returning=(pk,))


def _insert_plan(model: type[Model], using: str, *, keyed: bool = False) -> _Insert | None:
    """The model's INSERT; `keyed`: with the primary key's column even when the database numbers rows."""
    connection = connections[using]
    meta = model._meta
    if not connection.features.can_return_columns_from_insert or meta.parents:
        return None
    concrete = [field for field in meta.local_concrete_fields if not field.generated]
    pk = meta.pk
    auto_pk = isinstance(pk, AutoFieldMixin) and not keyed  # the database numbers the row
    fields = tuple(f for f in concrete if f.db_default is NOT_PROVIDED and not (auto_pk and f is pk))
    defaulted = tuple(f for f in concrete if f.db_default is not NOT_PROVIDED)
    if any(hasattr(field, "get_placeholder") for field in fields):
        return None
    returning = tuple([pk] if auto_pk else []) + defaulted
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608 - names from the model
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if returning:
        returning_sql, _params = connection.ops.return_insert_columns(list(returning))
        sql = f"{sql} {returning_sql}"
    return _Insert(
        sql=sql, fields=fields, as_is=tuple(_as_is(f) for f in fields), defaulted=defaulted, returning=returning
    )


_MISSING = object()
# Fields whose `get_prep_value` returns a value of this type unchanged (`to_python` of a str, of a bool) and
# with no backend adaptation after it: for such a value, `get_db_prep_save(pre_save(obj))` is the attribute
# itself. (Integers are adapted: PostgreSQL's backend wraps them in the column's integer type.)
_PLAIN_TYPES: dict[type[Field], type] = {models.CharField: str, models.TextField: str, models.BooleanField: bool}


def _as_is(field: Field) -> type | None:
    """The type of value this column writes unchanged; None when every value goes through the field's methods.

    Only for Django's own plain fields, not a subclass (the encrypted fields are `TextField`s with their own
    preparation), and only while their saving methods are `Field`'s own (else Django changed them).
    """
    cls = type(field)
    inherited = (
        cls.pre_save is Field.pre_save
        and cls.get_db_prep_save is Field.get_db_prep_save
        and cls.get_db_prep_value is Field.get_db_prep_value
    )
    return _PLAIN_TYPES.get(cls) if inherited else None


def _update_plan(model: type[Model], names: tuple[str, ...], where: tuple[str, ...], using: str) -> _Update:
    quote = connections[using].ops.quote_name
    meta = model._meta
    found = [meta.get_field(name) for name in (*names, *where)]
    columns = [f for f in found if isinstance(f, Field) and f.concrete and not hasattr(f, "get_placeholder")]
    if len(columns) != len(found):
        raise ValueError(f"update_row writes plain columns only: {names} where {where}")
    fields, keys = tuple(columns[: len(names)]), tuple(columns[len(names) :])
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    # Where the primary key picks the row, the other columns are checks that it is still as read, written with
    # IS NOT DISTINCT FROM (the same test for the values allowed here, None refused), which no index serves, so
    # they cannot steer the plan: with '=', PostgreSQL's generic plan for a table without statistics (a new
    # database, its first minutes) chose the index on status and read every payment of that status.
    checks = meta.pk in keys[:1] and connections[using].vendor == "postgresql"
    conditions = " AND ".join(
        f"{quote(f.column)} {'IS NOT DISTINCT FROM' if checks and i else '='} %s" for i, f in enumerate(keys)
    )
    return _Update(sql=f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {conditions}", fields=fields, where=keys)  # noqa: S608


_reads: dict[tuple[type[Model], str, bool, tuple[str, ...]], _Read] = {}
_STAND_IN = 987_654_321_012  # the value a plan is compiled with: found once among the parameters


def lock_row(model: type[M], pk: Any, *, using: str = DEFAULT_DB_ALIAS, skip_locked: bool = False) -> M:
    """`model.objects.select_for_update(of=("self",), skip_locked=…).get(pk=pk)`, its SQL compiled once per vendor.

    :raises TransactionManagementError: outside a transaction, as `select_for_update` raises.
    :raises model.DoesNotExist: no such row (with `skip_locked`, also: another transaction holds it).
    """
    return lock_row_where(model, {"pk": pk}, using=using, skip_locked=skip_locked)


def lock_row_where(
    model: type[M], where: Mapping[str, Any], *, using: str = DEFAULT_DB_ALIAS, skip_locked: bool = False
) -> M:
    """`lock_row` of the one row whose columns equal `where`'s values (a unique key: the payment's public id and
    its client, say), compiled once per model, vendor and column names.

    :raises TransactionManagementError: outside a transaction, as `select_for_update` raises.
    :raises model.DoesNotExist: no such row (with `skip_locked`, also: another transaction holds it).
    """
    connection = connections[using]
    if connection.get_autocommit():
        raise TransactionManagementError("select_for_update cannot be used outside of a transaction.")
    names = tuple(where)
    key = (model, connection.vendor, skip_locked, names)
    plan = _reads.get(key)
    if plan is None:
        plan = _reads[key] = _read_plan(model, using, skip_locked, names)  # a race compiles it twice: one kept
    params = [plan.prepare[name](where[name], connection) for name in names]
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, [params[position] for position in plan.order])
        rows = cursor.fetchall()
    if not rows:
        raise model.DoesNotExist(f"{model._meta.object_name} matching query does not exist.")  # type: ignore[attr-defined]
    values = list(rows[0])
    for position, converters, expression in plan.converters:
        value = values[position]
        for converter in converters:
            value = converter(value, expression, connection)
        values[position] = value
    return model.from_db(using, plan.attnames, values)


def _read_plan(model: type[Model], using: str, skip_locked: bool, names: tuple[str, ...]) -> _Read:
    fields = [model._meta.pk if name == "pk" else model._meta.get_field(name) for name in names]
    if not all(isinstance(field, Field) and field.concrete for field in fields):
        raise ValueError(f"lock_row_where({model.__name__}) matches plain columns only: {names}")
    stand_ins = [_stand_in(field, n) for n, field in enumerate(fields)]  # type: ignore[arg-type]
    manager = model._default_manager.using(using)
    lookups = {field.attname: stand_in for field, stand_in in zip(fields, stand_ins, strict=True)}  # type: ignore[union-attr]
    queryset = manager.select_for_update(of=("self",), skip_locked=skip_locked).filter(**lookups).order_by()
    compiler = queryset.query.get_compiler(using=using)
    sql, params = compiler.as_sql()
    # Each parameter is one of the stand-ins, each stand-in one parameter: the plan binds `where`'s values there.
    order = [stand_ins.index(param) if param in stand_ins else -1 for param in params]
    if -1 in order or sorted(order) != list(range(len(names))):
        raise DatabaseError(f"lock_row_where({model.__name__}): the query's parameters are not those of {names}")
    expressions = [column[0] for column in compiler.select]
    attnames = tuple(expression.target.attname for expression in expressions)
    converters = tuple(
        (position, tuple(found), expression)
        for position, (found, expression) in compiler.get_converters(expressions).items()
    )
    prepare = {
        name: (lambda value, conn, column=column: column.get_db_prep_value(value, connection=conn))
        for name, column in zip(names, fields, strict=True)
    }
    return _Read(sql=sql, attnames=attnames, converters=converters, order=tuple(order), prepare=prepare)


def _stand_in(field: Field, n: int) -> Any:
    """A value of the field's type no real row holds, different for each column (to find it among the parameters).

    :raises ValueError: a column neither text nor integer (a key of another type is not matched here).
    """
    target = field.target_field if field.is_relation else field  # type: ignore[attr-defined]
    if isinstance(target, (models.CharField, models.TextField)):
        return f"stand-in-{n}-{_STAND_IN}"
    if isinstance(target, (models.IntegerField, models.AutoField)):  # the Big/Small variants included
        return _STAND_IN + n
    raise ValueError(f"lock_row_where matches text and integer columns only, not {field.name}")
