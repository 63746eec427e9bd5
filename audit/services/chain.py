"""The hash-chained staff action log: append under an advisory lock, verify the whole chain.

Every staff action appends one `StaffAction` row whose `hash` is the SHA-256 of its content plus the
previous row's hash. Appends are serialized by a PostgreSQL advisory lock held until commit, so two
staff members acting at the same moment can never chain onto the same row.

Lock order, everywhere: approval request, then payment (taken by the owning service), then the chain.
"""

import hashlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.locks import lock_chain
from audit.models import StaffAction
from config.tasks import enqueue_on_commit

GENESIS_HASH = "0" * 64
HASHED_FIELDS = (
    "actor_id",
    "action",
    "object_type",
    "object_id",
    "reason",
    "before",
    "after",
    "remote_addr",
    "created_at",
)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def staff_action_hash(*, content: dict[str, Any], previous_hash: str) -> str:
    """SHA-256 (hex) of a row's content, in canonical JSON, chained to the previous row's hash."""
    payload = dict(content)
    payload["created_at"] = payload["created_at"].isoformat()
    payload["previous_hash"] = previous_hash
    return hashlib.sha256(_canonical_json(payload).encode()).hexdigest()


def staff_action_record(
    *,
    actor: User,
    action: str,
    object_type: str,
    object_id: str,
    reason: str = "",
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    remote_addr: str | None = None,
) -> StaffAction:
    """Append a staff action to the hash chain (in the caller's transaction, when there is one)."""
    content: dict[str, Any] = {
        "actor_id": actor.pk,
        "action": action,
        "object_type": object_type,
        "object_id": str(object_id),
        "reason": reason,
        # stored as JSON: hash exactly what the database will give back
        "before": json.loads(json.dumps(before or {}, default=str)),
        "after": json.loads(json.dumps(after or {}, default=str)),
        "remote_addr": str(ipaddress.ip_address(remote_addr)) if remote_addr else None,
    }
    with transaction.atomic():
        lock_chain()
        previous_hash = StaffAction.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
        content["created_at"] = timezone.now()
        return StaffAction.objects.create(
            **content, previous_hash=previous_hash, hash=staff_action_hash(content=content, previous_hash=previous_hash)
        )


def staff_retry_record(
    *,
    actor: User,
    object_type: str,
    object_id: str,
    before: dict[str, Any],
    task: str,
    remote_addr: str | None,
    **task_kwargs: Any,
) -> StaffAction:
    """Record staff's retry of a stuck operation (the flag cleared) and enqueue `task` to finish it, after commit."""
    action = staff_action_record(
        actor=actor,
        action="retry_stuck_operation",
        object_type=object_type,
        object_id=object_id,
        before=before,
        after={"needs_attention": False, "enqueued": task.rsplit(".", 1)[-1]},
        remote_addr=remote_addr,
    )
    enqueue_on_commit(task, **task_kwargs)
    return action


@dataclass(frozen=True)
class ChainBreak:
    """The first row where the chain does not hold."""

    row_id: int
    problem: str

    def __str__(self) -> str:
        return f"StaffAction {self.row_id}: {self.problem}"


def audit_verify() -> ChainBreak | None:
    """Walk the chain in id order (streamed); return the first row altered or after a removed row, or None."""
    expected_previous = GENESIS_HASH
    previous_id: int | None = None
    rows = StaffAction.objects.order_by("id").values("id", "previous_hash", "hash", *HASHED_FIELDS)
    for row in rows.iterator(chunk_size=2000):
        if row["previous_hash"] != expected_previous:
            if previous_id is None:
                problem = "previous_hash is not the start of the chain: the rows before it were removed"
            elif StaffAction.objects.filter(hash=row["previous_hash"]).exists():
                problem = f"chained to a row other than {previous_id}: the rows were reordered"
            else:
                problem = (
                    f"previous_hash matches no row: a row between {previous_id} and {row['id']} "
                    f"was removed, or {previous_id} was rewritten"
                )
            return ChainBreak(row_id=row["id"], problem=problem)
        content = {field: row[field] for field in HASHED_FIELDS}
        if staff_action_hash(content=content, previous_hash=row["previous_hash"]) != row["hash"]:
            return ChainBreak(row_id=row["id"], problem="altered: its content does not match its hash")
        expected_previous = row["hash"]
        previous_id = row["id"]
    return None
