"""The in-sandbox shared-object cache, and consistent-hash routing of invocations to sandboxes.

Manual
------
Inside one sandbox, invocations share heavyweight objects (SDK clients, connections). New code
asks for one by a key and a zero-argument factory; unchanged code goes through :meth:`SharedCache.call`,
the memoizing hook that wraps a client constructor (what the original wove around boto3)::

    cache = SharedCache(policy="lru", capacity=10)
    s3 = cache.shared("s3-eu", lambda: make_client("s3", region="eu"))   # built once, then reused
    s3 = cache.call(make_client, "s3", region="eu")                      # the same, keyed by the arguments

Either way the cache key holds the factory's identity: for a bound method, the object it
belongs to (two boto3 sessions are two factories); for a function, its code (so the lambda one
line of a handler makes afresh at every invocation is the same factory each time); for any other
callable, the object. Two different factories with equal keys or arguments get two entries (the original's key, the string of the
arguments alone, merged them: reference §12). Keys and arguments must be hashable or be
lists/dicts/sets of hashable values. ``cost_s`` (default: the measured build time) and
``size_bytes`` (default 1) feed GDSF.

Policies (reference §5, the TC '24 version), for a cache that is full when a new key arrives:

==========  ==========================================================================
lru         evict the least recently used key (default, capacity 10)
lfu         evict the least frequently used key (ties: the least recently used)
gdsf        Greedy-Dual-Size-Frequency: evict the lowest ``L + frequency × cost / size``
            (``cost`` = the factory's build time in s unless given, ``size`` = 1 unless given);
            ``L`` rises to each evicted priority (ageing)
random      evict a key drawn at random (seeded)
unbounded   never evict (capacity ignored)
==========  ==========================================================================

:class:`HashRing` routes an invocation's key to a sandbox: each sandbox owns ``replicas``
points on a ring (a 64-bit hash of its name), and a key goes to the first point at or after its
own hash, so adding or removing one sandbox moves only the keys between its points and their
predecessors.

Arguments of :class:`SharedCache`:

{args}

Example:

>>> from tailgate.faas.cache import SharedCache, HashRing
>>> c = SharedCache(policy="lru", capacity=2)
>>> def client(service, region="us"): return [service, region]
>>> c.call(client, "s3") is c.call(client, "s3"), c.hits, c.misses
(True, 1, 1)
>>> _ = c.call(client, "sqs"); _ = c.shared("sns", lambda: client("sns"))   # evicts s3, the least recently used
>>> c.keys_in_order()
[('client', ('sqs',)), ('<lambda>', 'sns')]
>>> ring = HashRing(["sb0", "sb1", "sb2"])
>>> ring.route("bucket-a") == ring.route("bucket-a")
True
"""

from __future__ import annotations

import bisect
import hashlib
import time
import types
from collections import OrderedDict
from typing import Any, Callable, Hashable

import numpy as np

from tailgate.core.args import Arg, bind_args, render_args
from tailgate.core.errors import ArgError

POLICIES = ("lru", "lfu", "gdsf", "random", "unbounded")

CACHE_ARGS = (
    Arg("policy", str, "lru", unit="-", choices=POLICIES, help="what a full cache evicts"),
    Arg("capacity", int, 10, unit="objects", min=1, help="objects held (ignored by unbounded)"),
    Arg("seed", int, 1, unit="-", help="random seed of the random policy"),
)
__doc__ = __doc__.replace("{args}", render_args(CACHE_ARGS))


def _freeze(value: Any) -> Hashable:
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, _freeze(v)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_freeze(v) for v in value))
    if isinstance(value, (set, frozenset)):
        return ("set", tuple(sorted(_freeze(v) for v in value)))
    hash(value)
    return value


def factory_identity(factory: Callable) -> Hashable:
    """Who builds: a bound method's object and method name; a function's code (the same for every
    lambda made by one line of source, different for two functions); any other callable itself."""
    owner = getattr(factory, "__self__", None)
    if owner is not None and not isinstance(owner, types.ModuleType):
        func = getattr(factory, "__func__", factory)
        return ("method", id(owner), getattr(func, "__qualname__", repr(func)))
    code = getattr(factory, "__code__", None)
    if code is not None:
        return ("function", getattr(factory, "__module__", None), getattr(factory, "__qualname__", None), id(code))
    return ("object", id(factory))


class SharedCache:
    """A bounded cache of shared objects keyed by factory identity and arguments (module manual)."""

    def __init__(self, **kwargs) -> None:
        a = bind_args("faas cache", CACHE_ARGS, kwargs)
        self.policy, self.capacity = a["policy"], a["capacity"]
        self._rng = np.random.default_rng(a["seed"])
        self._objects: OrderedDict[Hashable, Any] = OrderedDict()  # recency order: oldest first
        self._shown: dict[Hashable, tuple] = {}
        self._refs: dict[Hashable, Callable] = {}  # keeps each factory (and its ids) alive with its entry
        self._freq: dict[Hashable, int] = {}
        self._prio: dict[Hashable, float] = {}
        self._cost: dict[Hashable, tuple[float, float]] = {}
        self._age = 0.0
        self.hits = self.misses = self.evictions = 0
        self.evicted: list[tuple] = []  # (factory, args) of each eviction, in order

    def __len__(self) -> int:
        return len(self._objects)

    def hit_ratio(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def keys_in_order(self) -> list[tuple]:
        """(factory name, key or arguments) of the held entries, least recently used first."""
        return [self._shown[k] for k in self._objects]

    def shared(self, key: Any, factory: Callable[[], Any], *, cost_s: float | None = None,
               size_bytes: float = 1.0) -> Any:
        """The object ``factory()`` built once per (factory, ``key``) and then shared."""
        try:
            ck = ("key", factory_identity(factory), _freeze(key))
        except TypeError as e:
            raise ArgError(f"faas cache: key {key!r} is not hashable ({e})") from None
        return self._get(ck, factory, factory, (getattr(factory, "__name__", "?"), key), cost_s, size_bytes)

    def call(self, factory: Callable, *args, **kwargs) -> Any:
        """``factory(*args, **kwargs)`` built once per (factory, arguments): the memoizing hook."""
        try:
            ck = ("call", factory_identity(factory), _freeze(args), _freeze(kwargs))
        except TypeError as e:
            raise ArgError(f"faas cache: arguments of {getattr(factory, '__name__', factory)!r} are not "
                           f"hashable ({e})") from None
        shown = (getattr(factory, "__name__", "?"), args) if not kwargs else (getattr(factory, "__name__", "?"), args, kwargs)
        return self._get(ck, factory, lambda: factory(*args, **kwargs), shown, None, 1.0)

    def _get(self, key: Hashable, factory: Callable, build: Callable[[], Any], shown: tuple,
             cost_s: float | None, size_bytes: float) -> Any:
        if key in self._objects:
            self.hits += 1
            self._objects.move_to_end(key)
            self._freq[key] += 1
            c, s = self._cost[key]
            self._prio[key] = self._age + self._freq[key] * c / s
            return self._objects[key]
        if not size_bytes > 0:
            raise ArgError(f"faas cache: size_bytes must be > 0, got {size_bytes!r}")
        self.misses += 1
        t0 = time.perf_counter()
        obj = build()
        build_s = time.perf_counter() - t0
        if self.policy != "unbounded" and len(self._objects) >= self.capacity:
            self._evict()
        c = float(cost_s) if cost_s is not None else build_s
        self._objects[key] = obj
        self._shown[key] = shown
        self._refs[key] = factory
        self._freq[key] = 1
        self._cost[key] = (c, float(size_bytes))
        self._prio[key] = self._age + c / size_bytes
        return obj

    def _evict(self) -> None:
        keys = list(self._objects)  # least recently used first
        if self.policy == "lru":
            victim = keys[0]
        elif self.policy == "lfu":
            victim = min(keys, key=lambda k: self._freq[k])  # min keeps the first (oldest) of ties
        elif self.policy == "gdsf":
            victim = min(keys, key=lambda k: self._prio[k])
            self._age = self._prio[victim]
        else:  # random
            victim = keys[int(self._rng.integers(len(keys)))]
        self.evicted.append(self._shown.pop(victim))
        del self._objects[victim], self._freq[victim], self._prio[victim], self._cost[victim], self._refs[victim]
        self.evictions += 1


def _hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class HashRing:
    """Consistent hashing of keys onto sandboxes (``replicas`` points each; module manual)."""

    def __init__(self, sandboxes: list[str] | tuple[str, ...] = (), replicas: int = 64) -> None:
        if replicas < 1:
            raise ArgError(f"faas hash ring: replicas must be >= 1, got {replicas}")
        self.replicas = replicas
        self._points: list[int] = []
        self._owner: dict[int, str] = {}
        for s in sandboxes:
            self.add(s)

    def add(self, sandbox: str) -> None:
        for r in range(self.replicas):
            h = _hash64(f"{sandbox}#{r}")
            if h not in self._owner:
                bisect.insort(self._points, h)
                self._owner[h] = sandbox

    def remove(self, sandbox: str) -> None:
        gone = [h for h, s in self._owner.items() if s == sandbox]
        for h in gone:
            del self._owner[h]
        self._points = [p for p in self._points if p in self._owner]

    def sandboxes(self) -> set[str]:
        return set(self._owner.values())

    def route(self, key: str) -> str:
        """The sandbox that owns ``key``."""
        if not self._points:
            raise ArgError("faas hash ring: no sandbox to route to")
        k = bisect.bisect_left(self._points, _hash64(str(key)))
        return self._owner[self._points[k % len(self._points)]]
