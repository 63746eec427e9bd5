"""Where the simulator keeps its state: Redis (one pooled client per process, one Lua script per step), or memory.

Every gateway call is one or two *steps* (one when it reads nothing stored and has no latency to model: the
gateway decides first, and the step does both halves). A step is atomic and runs, in this order:

1. `count`: count the call (per operation, and per idempotency key for 24 hours);
2. `faults`: fail now if a fault is injected for the operation (a lost-answer `timeout` waits for step 8);
3. `idem`: if the idempotency key has a stored outcome, replay it (and stop);
4. `lock`: take the key's in-progress mark (30 s), or stop with `busy` when another call holds it (Stripe's 409);
5. `expect`: compare-and-set: stop with `conflict` unless each (hash, field) still holds the value read;
6. `read`: return the values of (hash, field) pairs ("" when absent); a field `@i` is the value at position
   i of the same list (`@i.name`: the string `name` of that JSON value), so a step can follow a reference
   it reads (a payment method's owner, then that customer) in the same round trip;
7. `write` / `index` / `incr` / `push`: HSET fields, ZADD members (score: created time in microseconds), HINCRBY,
   RPUSH onto a list (the dispute events queued for handing over, which `drain` takes off whole);
8. `record`: store the outcome under the idempotency key (24 hours), count the operation as performed and,
   unless it was a decline (`declined`), take a queued lost-answer `timeout` (`after`, also on a replay);
9. `unlock`: drop the key's in-progress mark (on any answer but `conflict`, where the caller reads again).

State, under the `gwsim:` prefix: hashes `intents`, `refunds`, `customers`, `setup_intents`, `payment_methods`
(reference -> JSON), `refunded` (intent -> amount refunded) and `pm-owner` (saved payment method -> its
customer, "-" once detached), sorted sets `intents-by-created` and `refunds-by-created`, one list of queued
faults per operation, the list `dispute-events` (taken off whole), `idem:<key>` and `lock:<key>` strings,
`calls-key:<key>` counters and a `counts` hash. No shared list or blob is read and written back whole, so
concurrent calls never lose each other's writes, and each step is one round trip whatever the number of intents.

Redis is the cache's (`CACHES["default"]` when it is a RedisCache, so a web process and a worker share it,
and clearing the cache clears the simulator); with any other cache the state lives in this process.
"""

import contextlib
import json
import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol, cast

import redis
from django.conf import settings
from django.core.cache.backends.redis import RedisCache
from django.utils.module_loading import import_string

PREFIX = "gwsim:"
IDEMPOTENCY_TTL = 86400  # seconds: Stripe keeps idempotency keys for 24 hours
LOCK_TTL_MS = 30_000  # an in-progress mark outlives a crashed call by this much
INTENT_INDEX = "intents-by-created"
REFUND_INDEX = "refunds-by-created"
_FAULT_OPS = "fault-ops"

# A step (see the module's docstring), in Lua. KEYS are not declared: the simulator runs on one Redis.
_STEP = """
local P, ttl, lock_ms = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local spec = cjson.decode(ARGV[4])
local op, idem = spec.op, spec.idem or ""
local function answer(result)
  if spec.unlock and idem ~= "" then redis.call("DEL", P .. "lock:" .. idem) end
  return cjson.encode(result)
end
local function take_lost_answer()
  local queue = P .. "faults:" .. op
  if spec.after and redis.call("LINDEX", queue, 0) == "timeout" then
    redis.call("LPOP", queue)
    return true
  end
  return false
end
if spec.count then
  redis.call("HINCRBY", P .. "counts", "calls:" .. op, 1)
  if idem ~= "" then
    redis.call("INCR", P .. "calls-key:" .. idem)
    redis.call("EXPIRE", P .. "calls-key:" .. idem, ttl)
  end
end
if spec.faults then
  local queue = P .. "faults:" .. op
  local kind = redis.call("LINDEX", queue, 0)
  if kind and kind ~= "timeout" then
    redis.call("LPOP", queue)
    return answer({fault = kind})
  end
end
if idem ~= "" then
  local stored = redis.call("GET", P .. "idem:" .. idem)
  if stored then
    local lost = false
    if cjson.decode(stored).kind ~= "declined" then lost = take_lost_answer() end
    return answer({replay = stored, timeout = lost})
  end
  if spec.lock and not redis.call("SET", P .. "lock:" .. idem, "1", "NX", "PX", lock_ms) then
    return cjson.encode({busy = true})
  end
end
-- A field "@i" is the value read (or expected) at position i; "@i.name" is that JSON value's string `name`.
local function field_of(f, got)
  if string.sub(f, 1, 1) ~= "@" then return f end
  local dot = string.find(f, ".", 2, true)
  local v = got[tonumber(string.sub(f, 2, dot and dot - 1 or -1))] or ""
  if not dot then return v end
  if v == "" then return "" end
  local ok, obj = pcall(cjson.decode, v)
  if not ok or type(obj) ~= "table" or type(obj[string.sub(f, dot + 1)]) ~= "string" then return "" end
  return obj[string.sub(f, dot + 1)]
end
local expected = {}
for i, e in ipairs(spec.expect or {}) do
  if (redis.call("HGET", P .. e[1], field_of(e[2], expected)) or "") ~= e[3] then
    return cjson.encode({conflict = true})
  end
  expected[i] = e[3]
end
local values = {}
for i, r in ipairs(spec.read or {}) do values[i] = redis.call("HGET", P .. r[1], field_of(r[2], values)) or "" end
for _, w in ipairs(spec.write or {}) do redis.call("HSET", P .. w[1], w[2], w[3]) end
for _, z in ipairs(spec.index or {}) do redis.call("ZADD", P .. z[1], z[2], z[3]) end
for _, n in ipairs(spec.incr or {}) do redis.call("HINCRBY", P .. n[1], n[2], n[3]) end
for _, q in ipairs(spec.push or {}) do redis.call("RPUSH", P .. q[1], q[2]) end
local lost = false
if (spec.record or "") ~= "" then
  if idem ~= "" then redis.call("SET", P .. "idem:" .. idem, spec.record, "EX", ttl) end
  redis.call("HINCRBY", P .. "counts", "performed:" .. op, 1)
  if not spec.declined then lost = take_lost_answer() end
end
return answer({values = values, timeout = lost})
"""

# One page of an index: members in [min, max) by score, from `after` (a score, inclusive), with their records.
_PAGE = """
local P = ARGV[1]
local found = redis.call("ZRANGEBYSCORE", P .. ARGV[2], ARGV[4], "(" .. ARGV[5], "WITHSCORES", "LIMIT", 0, ARGV[6])
local refs, scores = {}, {}
for i = 1, #found, 2 do
  refs[#refs + 1] = found[i]
  scores[#scores + 1] = found[i + 1]
end
local records = {}
if #refs > 0 then
  local got = redis.call("HMGET", P .. ARGV[3], unpack(refs))
  for i = 1, #refs do records[i] = got[i] or "" end
end
return cjson.encode({refs = refs, scores = scores, records = records})
"""

# Take a whole list off, atomically: two callers never both get an item.
_DRAIN = """
local items = redis.call("LRANGE", ARGV[1] .. ARGV[2], 0, -1)
if #items > 0 then redis.call("DEL", ARGV[1] .. ARGV[2]) end
return items
"""

_CLEAR_FAULTS = """
local P = ARGV[1]
for _, op in ipairs(redis.call("SMEMBERS", P .. "fault-ops")) do redis.call("DEL", P .. "faults:" .. op) end
redis.call("DEL", P .. "fault-ops")
"""


class Store(Protocol):
    def step(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Run one step (see the module's docstring); returns fault | replay | conflict | values, and timeout."""
        ...

    def page(self, index: str, records: str, low: int, high: int, limit: int) -> list[tuple[str, int, str]]:
        """Up to `limit` (member, score, record) of `index` with low <= score < high, by score."""
        ...

    def drain(self, name: str) -> list[str]:
        """Take every item off the list `name` (pushed by steps), oldest first, atomically."""
        ...

    def counter(self, name: str) -> int: ...

    def calls_for_key(self, idempotency_key: str) -> int: ...

    def push_faults(self, operation: str, kinds: Sequence[str]) -> None: ...

    def clear_faults(self) -> None: ...


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []  # cjson encodes an empty table as {}


class RedisStore:
    """The state in Redis: one pooled client, every step one EVALSHA."""

    def __init__(self, url: str, options: dict[str, Any]) -> None:
        pool = redis.ConnectionPool.from_url(url, **options)
        self.client = redis.Redis(connection_pool=pool)
        self._step = self.client.register_script(_STEP)
        self._page = self.client.register_script(_PAGE)
        self._clear_faults = self.client.register_script(_CLEAR_FAULTS)
        self._drain = self.client.register_script(_DRAIN)
        # Load the step now, so that the first call is one EVALSHA too (after a Redis restart, it reloads itself).
        with contextlib.suppress(redis.RedisError):
            self.client.script_load(_STEP)

    def step(self, spec: dict[str, Any]) -> dict[str, Any]:
        answer = json.loads(self._step(args=[PREFIX, IDEMPOTENCY_TTL, LOCK_TTL_MS, json.dumps(spec)]))
        if "values" in answer:
            answer["values"] = _list(answer["values"])
        return answer

    def page(self, index: str, records: str, low: int, high: int, limit: int) -> list[tuple[str, int, str]]:
        found = json.loads(self._page(args=[PREFIX, index, records, low, high, limit]))
        refs, scores, values = _list(found["refs"]), _list(found["scores"]), _list(found["records"])
        return [(ref, int(score), value) for ref, score, value in zip(refs, scores, values, strict=True)]

    def drain(self, name: str) -> list[str]:
        return [item.decode() for item in cast(list[bytes], self._drain(args=[PREFIX, name]))]

    def counter(self, name: str) -> int:
        return int(cast(bytes | None, self.client.hget(PREFIX + "counts", name)) or 0)

    def calls_for_key(self, idempotency_key: str) -> int:
        return int(cast(bytes | None, self.client.get(PREFIX + "calls-key:" + idempotency_key)) or 0)

    def push_faults(self, operation: str, kinds: Sequence[str]) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.sadd(PREFIX + _FAULT_OPS, operation)
            pipe.rpush(PREFIX + "faults:" + operation, *kinds)
            pipe.execute()

    def clear_faults(self) -> None:
        self._clear_faults(args=[PREFIX])


def _field_of(key: str, got: Sequence[str]) -> str:
    """The step's `@i` / `@i.name` field references (see the module's docstring), as the Lua step reads them."""
    if not key.startswith("@"):
        return key
    position, _, name = key[1:].partition(".")
    index = int(position) - 1
    value = got[index] if 0 <= index < len(got) else ""
    if not name:
        return value
    try:
        found = json.loads(value) if value else None
    except ValueError:
        return ""
    item = found.get(name) if isinstance(found, dict) else None
    return item if isinstance(item, str) else ""


class MemoryStore:
    """The same steps on dictionaries in this process (when the cache is not Redis, as in `make run`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hashes: dict[str, dict[str, str]] = {}
        self._indexes: dict[str, dict[str, int]] = {}
        self._faults: dict[str, list[str]] = {}
        self._counts: dict[str, int] = {}
        self._lists: dict[str, list[str]] = {}
        self._expiring: dict[str, tuple[float, Any]] = {}  # idem:<key> and calls-key:<key> -> (expires, value)

    def _get(self, key: str) -> Any:
        expires, value = self._expiring.get(key, (0.0, None))
        return value if expires > time.monotonic() else None

    def _set(self, key: str, value: Any, ttl: float = IDEMPOTENCY_TTL) -> None:
        self._expiring[key] = (time.monotonic() + ttl, value)

    def _take_lost_answer(self, spec: dict[str, Any]) -> bool:
        queue = self._faults.get(spec["op"]) or []
        if spec.get("after") and queue and queue[0] == "timeout":
            queue.pop(0)
            return True
        return False

    def step(self, spec: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            answer = self._step(spec)
            if spec.get("unlock") and spec.get("idem") and not (answer.get("conflict") or answer.get("busy")):
                self._expiring.pop("lock:" + spec["idem"], None)
            return answer

    def _step(self, spec: dict[str, Any]) -> dict[str, Any]:
        op, idem = spec["op"], spec.get("idem") or ""
        if spec.get("count"):
            self._counts["calls:" + op] = self._counts.get("calls:" + op, 0) + 1
            if idem:
                self._set("calls-key:" + idem, (self._get("calls-key:" + idem) or 0) + 1)
        queue = self._faults.get(op) or []
        if spec.get("faults") and queue and queue[0] != "timeout":
            return {"fault": queue.pop(0)}
        if idem and (stored := self._get("idem:" + idem)) is not None:
            lost = json.loads(stored)["kind"] != "declined" and self._take_lost_answer(spec)
            return {"replay": stored, "timeout": lost}
        if idem and spec.get("lock"):
            if self._get("lock:" + idem) is not None:
                return {"busy": True}
            self._set("lock:" + idem, 1, ttl=LOCK_TTL_MS / 1000)
        expected: list[str] = []
        for name, key, value in spec.get("expect") or []:
            if self._hashes.get(name, {}).get(_field_of(key, expected), "") != value:
                return {"conflict": True}
            expected.append(value)
        values: list[str] = []
        for name, key in spec.get("read") or []:
            values.append(self._hashes.get(name, {}).get(_field_of(key, values), ""))
        for name, key, value in spec.get("write") or []:
            self._hashes.setdefault(name, {})[key] = value
        for name, score, member in spec.get("index") or []:
            self._indexes.setdefault(name, {})[member] = int(score)
        for name, key, amount in spec.get("incr") or []:
            fields = self._hashes.setdefault(name, {})
            fields[key] = str(int(fields.get(key) or 0) + int(amount))
        for name, value in spec.get("push") or []:
            self._lists.setdefault(name, []).append(value)
        lost = False
        if spec.get("record"):
            if idem:
                self._set("idem:" + idem, spec["record"])
            self._counts["performed:" + op] = self._counts.get("performed:" + op, 0) + 1
            lost = not spec.get("declined") and self._take_lost_answer(spec)
        return {"values": values, "timeout": lost}

    def page(self, index: str, records: str, low: int, high: int, limit: int) -> list[tuple[str, int, str]]:
        with self._lock:
            members = sorted(
                (score, member) for member, score in self._indexes.get(index, {}).items() if low <= score < high
            )[:limit]
            hashes = self._hashes.get(records, {})
            return [(member, score, hashes.get(member, "")) for score, member in members]

    def drain(self, name: str) -> list[str]:
        with self._lock:
            return self._lists.pop(name, [])

    def counter(self, name: str) -> int:
        with self._lock:
            return self._counts.get(name, 0)

    def calls_for_key(self, idempotency_key: str) -> int:
        with self._lock:
            return self._get("calls-key:" + idempotency_key) or 0

    def push_faults(self, operation: str, kinds: Sequence[str]) -> None:
        with self._lock:
            self._faults.setdefault(operation, []).extend(kinds)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()


_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()
_REDIS_OPTIONS = ("socket_timeout", "socket_connect_timeout", "health_check_interval", "max_connections")


def get_store() -> Store:
    """The store for the configured cache: one per process and location, so one Redis connection pool."""
    config: dict[str, Any] = dict(settings.CACHES["default"])
    redis_cache = issubclass(import_string(config["BACKEND"]), RedisCache)
    location = config.get("LOCATION", "")
    url = (location if isinstance(location, str) else location[0]).split(",")[0] if redis_cache else ""
    if (store := _stores.get(url)) is not None:
        return store
    with _stores_lock:
        if url not in _stores:
            options = {key: value for key, value in (config.get("OPTIONS") or {}).items() if key in _REDIS_OPTIONS}
            _stores[url] = RedisStore(url, options) if url else MemoryStore()
        return _stores[url]
