#!/bin/sh
# Logical backup of the payment database: `pg_dump -Fc` into a directory, checked, with a note of the
# transaction id it was taken at (docs/operations/backup.md).
#
#   DATABASE_URL=postgres://user:pass@host:5432/payments deploy/postgres/backup.sh [DIR]
#
# Writes DIR/payments-<UTC time>.dump (custom format: pg_restore reads it, table by table, in parallel)
# and DIR/payments-<UTC time>.xid: a `pg_current_xact_id()` (64-bit, with its epoch) taken just after it.
# deploy/postgres/restore.sh needs the .xid file to refuse a target cluster whose transaction ids
# are behind it (the event feed orders and filters events by the id of the transaction that wrote
# them: docs/operations/backup.md, "Restoring into another cluster"). The dump is verified with
# `pg_restore --list` before the script reports success; it prints the dump's path on stdout.
# Environment: DATABASE_URL (postgres:// or postgresql://, required); PG_DUMP, PG_RESTORE, PSQL (the
# client binaries: use the server's major version or newer). Retention is the scheduler's job.
set -eu

: "${DATABASE_URL:?set DATABASE_URL (postgres://user:pass@host:port/database)}"
DIR=${1:-.}
PG_DUMP=${PG_DUMP:-pg_dump}
PG_RESTORE=${PG_RESTORE:-pg_restore}
PSQL=${PSQL:-psql}
case "$DATABASE_URL" in
  postgres://*|postgresql://*) ;;
  *) echo "backup.sh: DATABASE_URL must be a postgres:// URL" >&2; exit 2 ;;
esac

mkdir -p "$DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
DUMP="$DIR/payments-$STAMP.dump"
TMP="$DUMP.partial"
trap 'rm -f "$TMP" "$TMP.xid"' EXIT

"$PG_DUMP" --format=custom --compress=6 --no-owner --file="$TMP" "$DATABASE_URL"
# Every transaction whose rows are in the dump started before the dump's snapshot, so its id is below
# this one, assigned after the dump ended.
"$PSQL" "$DATABASE_URL" -X -q -t -A -v ON_ERROR_STOP=1 -c "SELECT pg_current_xact_id()" >"$TMP.xid"
"$PG_RESTORE" --list "$TMP" >/dev/null
mv "$TMP.xid" "$DIR/payments-$STAMP.xid"
mv "$TMP" "$DUMP"

echo "$DUMP"
