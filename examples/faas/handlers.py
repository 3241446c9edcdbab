"""Example handlers for `tailgate faas serve --manifest examples/faas/manifest.yaml` (Lambda-style)."""

import time


def _fib(n: int) -> int:
    return n if n < 2 else _fib(n - 1) + _fib(n - 2)


def fib(event, context):
    """CPU: recursive fib(n) (the reference's CPU function); event {"n": N}, default 20."""
    n = int(event.get("n", 20))
    if not 0 <= n <= 40:
        raise ValueError(f"n must be in [0, 40], got {n}")
    return {"n": n, "fib": _fib(n)}


def noop(event, context):
    """Returns its event: the gateway's own overhead."""
    return event


def construct(event, context):
    """I/O-like: sleeps ``sleep_ms`` (default 5), standing for a client's construction, and builds one
    shared object per sandbox through ``context.shared`` (the reuse the original measured)."""
    client = context.shared("client", lambda: {"built_at": time.time()})
    time.sleep(float(event.get("sleep_ms", 5)) / 1e3)
    return {"client_built_at": client["built_at"]}


def fail(event, context):
    """Raises: the gateway answers 500 with this text."""
    raise RuntimeError(event.get("message", "handler failed on purpose"))


def hang(event, context):
    """Sleeps ``s`` seconds (default 3600): a handler that hangs, for the timeout."""
    time.sleep(float(event.get("s", 3600)))
    return {}
