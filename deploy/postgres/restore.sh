#!/bin/sh
# Restore a dump of deploy/postgres/backup.sh into a new, empty database (docs/operations/backup.md).
#
#   deploy/postgres/restore.sh DUMP postgres://user:pass@host:5432/payments_restored
#
# Creates the target database (it must not exist: a restore never writes over data), restores with
# `pg_restore --exit-on-error --no-owner` (PG_RESTORE_JOBS parallel jobs, default 2) and analyzes it.
# Before anything, it compares the target cluster's current transaction id with the one recorded
# next to the dump (DUMP's .xid file): the event feed shows only events written by transactions older
# than every running one, by their 64-bit transaction id, so on a cluster whose ids are behind the
# dump's, restored events would stay hidden from GET /api/v1/events/ and new events would sort before
# them. Then it stops and prints the `pg_resetwal --epoch` step that moves the target's ids ahead.
# Environment: PG_RESTORE, PSQL (client binaries), PG_RESTORE_JOBS.
set -eu

DUMP=${1:?usage: restore.sh DUMP TARGET_DATABASE_URL}
TARGET=${2:?usage: restore.sh DUMP TARGET_DATABASE_URL}
PG_RESTORE=${PG_RESTORE:-pg_restore}
PSQL=${PSQL:-psql}
JOBS=${PG_RESTORE_JOBS:-2}
XID_FILE="${DUMP%.dump}.xid"

[ -f "$DUMP" ] || { echo "restore.sh: no dump at $DUMP" >&2; exit 2; }
[ -f "$XID_FILE" ] || { echo "restore.sh: no $XID_FILE (written by backup.sh next to the dump)" >&2; exit 2; }
case "$TARGET" in
  postgres://*|postgresql://*) ;;
  *) echo "restore.sh: the target must be a postgres:// URL" >&2; exit 2 ;;
esac
# postgres://user:pass@host:port/NAME?options -> NAME, and the same URL on the maintenance database.
NAME=$(printf '%s' "$TARGET" | sed -e 's|^[a-z]*://[^/]*/||' -e 's|?.*$||')
[ -n "$NAME" ] || { echo "restore.sh: the target URL names no database" >&2; exit 2; }
MAINTENANCE=$(printf '%s' "$TARGET" | sed -e "s|^\([a-z]*://[^/]*/\)[^?]*|\1postgres|")

DUMPED_XID=$(cat "$XID_FILE")
TARGET_XID=$("$PSQL" "$MAINTENANCE" -X -q -t -A -v ON_ERROR_STOP=1 -c "SELECT pg_current_xact_id()")
if [ "$TARGET_XID" -le "$DUMPED_XID" ]; then
  EPOCH=$(( (DUMPED_XID >> 32) + 1 ))
  cat >&2 <<MSG
restore.sh: the target cluster's transaction id ($TARGET_XID) is behind the dump's ($DUMPED_XID).
Restored events would be hidden from the event feed. Move the target's transaction ids ahead first,
on the stopped target cluster (as its owner), then run this script again:
  pg_ctl -D DATADIR stop -m fast
  pg_resetwal --epoch=$EPOCH -D DATADIR
  pg_ctl -D DATADIR start
MSG
  exit 3
fi

# psql interpolates :'name' and :"name" (quoted safely) only in scripts read from stdin, not in -c.
EXISTS=$(echo "SELECT count(*) FROM pg_database WHERE datname = :'name'" \
  | "$PSQL" "$MAINTENANCE" -X -q -t -A -v ON_ERROR_STOP=1 -v name="$NAME")
[ "$EXISTS" = "0" ] || { echo "restore.sh: database $NAME exists; restore into a new one" >&2; exit 2; }
echo 'CREATE DATABASE :"name" TEMPLATE template0 ENCODING UTF8' \
  | "$PSQL" "$MAINTENANCE" -X -q -v ON_ERROR_STOP=1 -v name="$NAME"
"$PG_RESTORE" --exit-on-error --no-owner --jobs="$JOBS" --dbname="$TARGET" "$DUMP"
"$PSQL" "$TARGET" -X -q -v ON_ERROR_STOP=1 -c "ANALYZE"
echo "restored $DUMP into $NAME"
