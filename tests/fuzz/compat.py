"""hypothesis-jsonschema 0.23 (schemathesis 3.39's object generator) with the hypothesis of uv.lock.

hypothesis 6.170 made `conjecture.utils.many` a context manager iterated with `for _ in elements:` and
dropped the `elements.more()` loop that hypothesis-jsonschema's `from_object_schema` still calls, so
every object body fails to generate ("'many' object has no attribute 'more'"). `more()` here is that
loop written with the new protocol: enter on the first call, one step of the iterator per call, exit
when it stops. Imported by tests/fuzz/run.py before schemathesis' CLI starts; drop it once
hypothesis-jsonschema follows hypothesis (or hypothesis is pinned below the change).
"""

from typing import Any

from hypothesis.internal.conjecture import utils


def _more(self: Any) -> bool:
    steps = getattr(self, "_compat_steps", None)
    if steps is None:
        self.__enter__()
        steps = self._compat_steps = iter(self)
    try:
        next(steps)
    except StopIteration:
        self.__exit__(None)
        return False
    return True


if not hasattr(utils.many, "more"):
    utils.many.more = _more
