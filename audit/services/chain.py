"""The hash-chained staff action log: append under an advisory lock, verify the whole chain.

Every staff action appends one `StaffAction` row whose `hash` is the SHA-256 of its content plus the
previous row's hash. Appends are serialized by a PostgreSQL advisory lock held until commit, so two
staff members acting at the same moment can never chain onto the same row.

Lock order, everywhere: approval request, then payment (taken by the owning service), then the chain.

Personal data in `before`/`after` (an e-mail, a name, an IP: `PERSONAL_KEYS`, at any depth) is chained as its
digest, not its value: the row stores the value and, in `personal_digests`, the SHA-256 of each such value by its
path (`/after/email`). The hash covers the content with those values replaced by `sha256:<digest>`, so erasing a
value (`staff_action_erase`: it becomes `ERASED`) leaves the chain valid, while any other change to it breaks it
(`audit_verify` checks every value still held against its digest). Rows written before the digests existed have
none (`{}`): their content is chained as it is, as it always was.
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
ERASED = "[erased]"
# Keys whose values are personal data (a data subject's, not staff's): chained as their digest.
PERSONAL_KEYS = frozenset(
    {
        "email",
        "name",
        "customer_email",
        "customer_ip",
        "customer_name",
        "ip",
        "ip_address",
        "phone",
        "address",
        "billing_details",
        "billing_address",
        "shipping",
        "shipping_address",
    }
)
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


def _digest(value: Any) -> str:
    return hashlib.sha256(_canonical_json(value).encode()).hexdigest()


def _is_blank(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def personal_digests_of(*, before: dict[str, Any], after: dict[str, Any]) -> dict[str, str]:
    """The SHA-256 of every personal value in before/after, by its path (`/before/email`, `/after/x/name`)."""
    digests: dict[str, str] = {}

    def walk(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}/{key}"
                if key in PERSONAL_KEYS and not _is_blank(item):
                    digests[child] = _digest(item)
                else:
                    walk(item, child)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                walk(item, f"{path}/{index}")

    walk(before, "/before")
    walk(after, "/after")
    return digests


def _split(path: str) -> list[str]:
    return path.strip("/").split("/")


def _at(document: dict[str, Any], path: str) -> tuple[Any, Any] | None:
    """The container holding `path`'s last step and that step (a key or a list index), or None when absent."""
    node: Any = document
    steps = _split(path)
    for step in steps[:-1]:
        node = node[int(step)] if isinstance(node, list) else node.get(step) if isinstance(node, dict) else None
        if node is None:
            return None
    last: Any = steps[-1]
    if isinstance(node, list):
        last = int(last)
        return (node, last) if 0 <= last < len(node) else None
    if isinstance(node, dict) and last in node:
        return node, last
    return None


def chained_content(content: dict[str, Any], digests: dict[str, str]) -> dict[str, Any]:
    """The content as it is chained: each value named in `digests` replaced by `sha256:<digest>`."""
    if not digests:
        return content
    sides = json.loads(_canonical_json({"before": content["before"], "after": content["after"]}))
    for path, digest in digests.items():
        found = _at(sides, path)
        if found is not None:
            container, step = found
            container[step] = f"sha256:{digest}"
    return {**content, "before": sides["before"], "after": sides["after"]}


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
    digests = personal_digests_of(before=content["before"], after=content["after"])
    with transaction.atomic():
        lock_chain()
        previous_hash = StaffAction.objects.order_by("-id").values_list("hash", flat=True).first() or GENESIS_HASH
        content["created_at"] = timezone.now()
        chained = chained_content(content, digests)
        return StaffAction.objects.create(
            **content,
            personal_digests=digests,
            previous_hash=previous_hash,
            hash=staff_action_hash(content=chained, previous_hash=previous_hash),
        )


def staff_action_erase(*, action: StaffAction) -> bool:
    """Replace the personal values of a row (those it holds digests of) by `ERASED`; the chain stays valid.

    Returns whether anything changed. Values of rows written before the digests (none) cannot be erased without
    breaking the chain and are left as they are.
    """
    sides = {"before": action.before, "after": action.after}
    changed = False
    for path in action.personal_digests or {}:
        found = _at(sides, path)
        if found is not None and found[0][found[1]] != ERASED:
            container, step = found
            container[step] = ERASED
            changed = True
    if changed:
        StaffAction.objects.filter(pk=action.pk).update(before=sides["before"], after=sides["after"])
    return changed


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


def _personal_value_altered(content: dict[str, Any], digests: dict[str, str]) -> str:
    """The path of a personal value that is neither erased nor the value its digest was taken of ("" if none)."""
    sides = {"before": content["before"], "after": content["after"]}
    for path, digest in digests.items():
        found = _at(sides, path)
        if found is None:
            return path
        value = found[0][found[1]]
        if value != ERASED and _digest(value) != digest:
            return path
    return ""


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
    rows = StaffAction.objects.order_by("id").values("id", "previous_hash", "hash", "personal_digests", *HASHED_FIELDS)
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
        digests: dict[str, str] = row["personal_digests"] or {}
        chained = chained_content(content, digests)
        if staff_action_hash(content=chained, previous_hash=row["previous_hash"]) != row["hash"]:
            return ChainBreak(row_id=row["id"], problem="altered: its content does not match its hash")
        altered = _personal_value_altered(content, digests)
        if altered:
            return ChainBreak(row_id=row["id"], problem=f"altered: {altered} does not match its digest")
        expected_previous = row["hash"]
        previous_id = row["id"]
    return None
