"""The tables every money-path request writes carry no index that no query needs (issue #14).

Each index costs on every insert and on every update that is not HOT. Two kinds were never read: PostgreSQL's
`_like` (varchar_pattern_ops) index beside a unique id (ids are looked up exactly), and a foreign key's own
index when a composite index starts with the same column.
"""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db

MONEY_PATH_TABLES = (
    "payments_payment",
    "payments_paymentstatuschange",
    "payments_idempotencykey",
    "payments_event",
    "refunds_refund",
    "refunds_refundstatuschange",
    "webhooks_webhookevent",
    "auditlog_logentry",
    "risk_riskassessment",
)
DROPPED = {
    "payments_payment_client_id_fcbb7eb4",
    "payments_payment_public_id_0c37c47c_like",
    "payments_payment_gateway_reference_cc9a29b3_like",
    "payments_payment_invoice_32514fdd_like",
    "payments_paymentstatuschange_payment_id_dc18d12d",
    "payments_idempotencykey_client_id_9669a3a0",
    "payments_event_client_id_c0fce471",
    "payments_event_public_id_4a19dd92_like",
    "refunds_refund_payment_id_ff5cf4de",
    "refunds_refund_public_id_1a129272_like",
    "refunds_refund_gateway_reference_dd06fb0a_like",
    "webhooks_webhookevent_stripe_id_3d7997fc_like",
    "auditlog_logentry_object_pk_6e3219c0_like",
    "auditlog_logentry_cid_9f467263_like",
}
BEFORE = [
    ("payments", "0013_encrypt_existing_payments"),
    ("events", "0003_schema_version_and_safe_payloads"),
    ("refunds", "0002_approve_refund_permission"),
    ("webhooks", "0002_encrypt_webhook_bodies"),
    ("audit", "0003_staffaction_personal_digests"),
]


def _indexes() -> dict[str, list[tuple[str, str, list[str], bool, bool]]]:
    """By table: (name, definition, columns, unique, partial) of each index."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT t.relname, i.relname, pg_get_indexdef(i.oid), ix.indisunique, ix.indpred IS NOT NULL,
                   ARRAY(SELECT a.attname FROM unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n)
                         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n)
            FROM pg_index ix JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid
            WHERE t.relname = ANY(%s)
            """,
            [list(MONEY_PATH_TABLES)],
        )
        found: dict[str, list[tuple[str, str, list[str], bool, bool]]] = {}
        for table, name, definition, unique, partial, columns in cursor.fetchall():
            found.setdefault(table, []).append((name, definition, list(columns), unique, partial))
        return found


def _migrate(targets: list[tuple[str, str]]) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def test_no_money_path_table_has_a_pattern_index_or_a_foreign_key_index_a_composite_one_covers():
    indexes = _indexes()
    assert set(indexes) == set(MONEY_PATH_TABLES)
    redundant = []
    for entries in indexes.values():
        for name, definition, columns, unique, partial in entries:
            if "pattern_ops" in definition:
                redundant.append(name)
                continue
            if unique or partial:
                continue
            covered = any(
                other != name
                and not other_partial
                and len(other_columns) > len(columns)
                and other_columns[: len(columns)] == columns
                for other, _definition, other_columns, _unique, other_partial in entries
            )
            if covered:
                redundant.append(name)
    assert redundant == []


def test_the_migrations_drop_the_indexes_and_put_them_back_when_unapplied():
    def names() -> set[str]:
        return {entry[0] for entries in _indexes().values() for entry in entries}

    assert names() & DROPPED == set()
    _migrate(BEFORE)  # inside the test's transaction: PostgreSQL rolls the DDL back with it
    assert names() >= DROPPED
    _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
    assert names() & DROPPED == set()
