"""The transparent reuse hook: boto3/botocore clients built once per sandbox process, for unchanged code.

Manual
------
A Lambda-style handler builds its SDK client at every invocation (``boto3.client("s3")``: ~3 ms
from the cached default session, ~50 ms from a new ``boto3.session.Session()``, ~75 ms the first
time in a process; reference machine notes). FaaSBatch's aspect memoized that construction inside a
warm sandbox, so the invocations of one batch (and of later batches) share one client. This module
does the same for code that is not changed::

    from tailgate.faas.io import reuse
    hook = reuse.enable(policy="lru", capacity=10)   # in the sandbox process, before the handlers run
    handler(event, context)                          # its boto3.client("s3", ...) calls now hit the cache
    hook.hits, hook.misses, hook.evictions, hook.keys()
    reuse.disable()                                  # the original constructors again

While enabled, two functions are patched: ``botocore.session.Session.create_client`` (which
``boto3.client``, ``boto3.session.Session.client`` and direct botocore code all go through) and
``boto3.session.Session.resource``. A call is looked up in a bounded
:class:`tailgate.faas.cache.SharedCache` (policies ``lru`` — default, 10 entries —, ``lfu``,
``gdsf``, ``random``, ``unbounded``); a hit returns the very object built before, a miss builds
it with the original constructor and keeps it. A resource built on a miss builds its own client
inside; that inner client is neither looked up nor counted.

**The key** is the factory's identity and every argument of the call, bound to the constructor's
signature (so ``client("s3", "eu-west-1")`` and ``client("s3", region_name="eu-west-1")`` are one
key, and the defaults are filled in): service, region, API version, SSL, verify, endpoint URL,
explicit credentials (the secret and the token as a BLAKE2 digest, never in clear), a
``botocore.config.Config`` by its option values. Two calls that differ in any of them get two
clients. The factory's identity (``identity``):

- ``config`` (default): the session's profile, region and resolved credentials (access key and
  a digest of secret and token). Sessions that would build the same client are one factory, so
  a handler that makes a ``boto3.session.Session()`` per invocation is served from the cache too,
  while two sessions with other credentials never share a client (the original keyed on the
  arguments' string alone and would have merged them: reference §12). A session that carries
  its own event handlers is not told apart from an equal one without them; use ``object`` there.
- ``object``: the session object itself (a new session is a new factory, always a miss).

Lookups are serialized by one lock (invocations of a batch run as threads in one sandbox): of
many threads that ask for the same new key at once, one builds and the rest hit. boto3 clients
may be shared across threads; boto3 resources may not (boto3's own rule), so a handler that
shares a resource across threads must not rely on this hook for it.

The hook is per process: :func:`enable` while enabled replaces the cache (counters from zero).
:func:`current` is the enabled hook or None; :func:`reused` is a context manager.

Arguments of :func:`enable`:

{args}

Example (needs boto3; no request is sent, so no server is needed)::

    hook = reuse.enable()
    a = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    b = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    c = boto3.client("s3", region_name="eu-west-1", endpoint_url="http://127.0.0.1:9")
    (a is b, a is c, hook.hits, hook.misses)          # (True, False, 1, 2)
    reuse.disable()
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import os
import threading
from typing import Any

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import ArgError, TailgateError
from tailgate.faas.cache import POLICIES, SharedCache

IDENTITIES = ("config", "object")

REUSE_ARGS = (
    Arg("policy", str, "lru", unit="-", choices=POLICIES, help="what a full cache evicts"),
    Arg("capacity", int, 10, unit="clients", min=1, help="clients and resources held (ignored by unbounded)"),
    Arg("identity", str, "config", unit="-", choices=IDENTITIES,
        help="a session as a factory: by what it would build with (config) or as the object"),
    Arg("seed", int, 1, unit="-", help="random seed of the random policy"),
)
__doc__ = __doc__.replace("{args}", render_args(REUSE_ARGS))

_SECRET_ARGS = ("aws_secret_access_key", "aws_session_token")
_LOCK = threading.Lock()
_STATE: dict[str, Any] = {"hook": None, "originals": None}
_BUILDING = threading.local()  # set while a miss builds: nested constructor calls pass straight through


def _fresh_lock() -> None:
    """In a forked child: a lock another thread held at the fork would stay held for ever."""
    global _LOCK
    _LOCK = threading.Lock()


os.register_at_fork(after_in_child=_fresh_lock)


class ReuseError(TailgateError):
    """The hook cannot be enabled (boto3 missing)."""


def _digest(value: Any) -> str | None:
    if value is None:
        return None
    return hashlib.blake2b(str(value).encode(), digest_size=8).hexdigest()


def _plain(value: Any) -> Any:
    """An argument as a hashable value: a botocore Config by its options, anything unhashable by id."""
    try:
        from botocore.config import Config
    except ImportError:  # pragma: no cover - boto3 needs botocore
        Config = ()
    if isinstance(value, Config):
        return ("Config", tuple(sorted((k, repr(v)) for k, v in vars(value).items())))
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        return ("value", repr(value))
    try:
        hash(value)
    except TypeError:
        return ("object", id(value))
    return value


def _bound_args(func, args: tuple, kwargs: dict) -> tuple:
    try:
        bound = inspect.signature(func).bind(None, *args, **kwargs)
    except TypeError as e:
        raise ArgError(f"faas reuse: {func.__qualname__}: {e}") from None
    bound.apply_defaults()
    items = list(bound.arguments.items())[1:]  # without self
    return tuple((k, _digest(v) if k in _SECRET_ARGS else _plain(v)) for k, v in items)


def _session_identity(session: Any, mode: str) -> tuple:
    """A botocore or boto3 session as a factory: by its configuration, or as the object."""
    if mode == "object":
        return ("session", id(session))
    core = getattr(session, "_session", session)  # boto3.Session wraps a botocore Session
    profile = getattr(core, "profile", None)
    try:
        region = core.get_config_variable("region")
    except Exception:  # noqa: BLE001 - a broken profile: the client build will say so
        region = None
    try:
        creds = core.get_credentials()
    except Exception:  # noqa: BLE001 - same
        creds = None
    if creds is not None:
        frozen = creds.get_frozen_credentials()
        cred_key = (frozen.access_key, _digest((frozen.secret_key, frozen.token)))
    else:
        cred_key = None
    return ("session-config", type(core).__name__, profile, region, cred_key)


class ReuseHook:
    """The enabled hook: a bounded cache of clients and its counters (module manual)."""

    def __init__(self, **kwargs) -> None:
        a = bind_args("faas reuse", REUSE_ARGS, kwargs)
        self.identity = a["identity"]
        self.cache = SharedCache(policy=a["policy"], capacity=a["capacity"], seed=a["seed"])

    @property
    def hits(self) -> int:
        return self.cache.hits

    @property
    def misses(self) -> int:
        return self.cache.misses

    @property
    def evictions(self) -> int:
        return self.cache.evictions

    def keys(self) -> list[tuple]:
        """(kind, key) of the held clients/resources, least recently used first."""
        return [shown[1] for shown in self.cache.keys_in_order()]

    def counters(self) -> dict:
        return {"policy": self.cache.policy, "capacity": self.cache.capacity, "identity": self.identity,
                "hits": self.hits, "misses": self.misses, "evictions": self.evictions, "held": len(self.cache)}

    def lookup(self, kind: str, original, session: Any, args: tuple, kwargs: dict) -> Any:
        """The object ``original(session, *args, **kwargs)``, from the cache when an equal call built it."""
        key = (kind, _session_identity(session, self.identity), _bound_args(original, args, kwargs))

        def build():
            _BUILDING.active = True
            try:
                return original(session, *args, **kwargs)
            finally:
                _BUILDING.active = False

        with _LOCK:
            return self.cache.shared(key, build)


def _wrap(kind: str, original):
    def constructor(self, *args, **kwargs):
        hook = _STATE["hook"]
        if hook is None or getattr(_BUILDING, "active", False):
            return original(self, *args, **kwargs)
        return hook.lookup(kind, original, self, args, kwargs)

    constructor.__name__ = original.__name__
    constructor.__qualname__ = original.__qualname__
    constructor.__doc__ = original.__doc__
    constructor.__wrapped__ = original
    return constructor


def enable(**kwargs) -> ReuseHook:
    """Patch the constructors and start a fresh cache; returns the hook (its counters, its keys)."""
    try:
        import boto3.session
        import botocore.session
    except ImportError:
        raise ReuseError("faas reuse: boto3 is not installed (pip install boto3)") from None
    hook = ReuseHook(**kwargs)
    with _LOCK:
        if _STATE["originals"] is None:
            originals = {"client": botocore.session.Session.create_client, "resource": boto3.session.Session.resource}
            botocore.session.Session.create_client = _wrap("client", originals["client"])
            boto3.session.Session.resource = _wrap("resource", originals["resource"])
            _STATE["originals"] = originals
        _STATE["hook"] = hook
    return hook


def disable() -> ReuseHook | None:
    """Restore the original constructors; returns the hook that was enabled (None if none)."""
    with _LOCK:
        hook, originals = _STATE["hook"], _STATE["originals"]
        if originals is not None:
            import boto3.session
            import botocore.session

            botocore.session.Session.create_client = originals["client"]
            boto3.session.Session.resource = originals["resource"]
        _STATE["hook"] = _STATE["originals"] = None
    return hook


def current() -> ReuseHook | None:
    """The enabled hook, or None."""
    return _STATE["hook"]


@contextlib.contextmanager
def reused(**kwargs):
    """``with reused() as hook:`` the hook enabled inside the block, disabled after it."""
    hook = enable(**kwargs)
    try:
        yield hook
    finally:
        disable()
