"""Count the commands a real Redis server runs, by MONITOR: what clients send, and what their Lua scripts run.

MONITOR streams every command the server executes, tagged with the client that sent it (`lua` for the
commands a script runs). Two ECHO markers sent from a separate connection bracket the commands of the
code under test, so the count needs no sleeping and sees nothing from before or after. Only the
commands on the monitored URL's database count: other processes sharing the server (the deploy
tests' worker and beat run on database 9 for the whole session) are not the code under test.
"""

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis

_markers = itertools.count(1)


@dataclass
class Commands:
    """The commands one piece of code made Redis run."""

    sent: list[str] = field(default_factory=list)  # by clients (an EVALSHA counts once)
    scripted: list[str] = field(default_factory=list)  # run inside those clients' Lua scripts

    @property
    def names(self) -> list[str]:
        return [command.split(" ", 1)[0].upper() for command in self.sent]


class RedisMonitor:
    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_timeout=10)
        self._db = int(self._client.connection_pool.connection_kwargs.get("db", 0))
        self._monitor = self._client.monitor()

    def __enter__(self) -> "RedisMonitor":
        self._monitor.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._monitor.__exit__(*exc)
        self._client.close()

    def _until(self, marker: str) -> Iterator[dict[str, Any]]:
        while (command := self._monitor.next_command())["command"] != f"ECHO {marker}":
            yield command

    def count(self, code: Callable[[], Any]) -> Commands:
        """Run `code` and return the commands it made the server run."""
        start, end = f"start-{next(_markers)}", f"end-{next(_markers)}"
        self._client.echo(start)
        for _ in self._until(start):  # earlier traffic
            pass
        try:
            code()
        finally:
            self._client.echo(end)
        seen = Commands()
        for command in self._until(end):
            if int(command["db"]) != self._db:
                continue  # another database's client (another process), not the code under test
            (seen.scripted if command["client_type"] == "lua" else seen.sent).append(command["command"])
        return seen


@contextmanager
def monitored(url: str) -> Iterator[RedisMonitor]:
    with RedisMonitor(url) as monitor:
        yield monitor
