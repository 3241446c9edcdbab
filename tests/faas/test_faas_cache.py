"""The shared-object cache: keys by factory identity, eviction order per policy, hit ratios on Zipf keys; routing."""
from __future__ import annotations

import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.faas.cache import HashRing, SharedCache


def make(name="s3", region="eu"):
    return object()


def other(name, region="eu"):
    return object()


class Unhashable:
    __hash__ = None


def _touch(c, keys, costs=None):
    for k in keys:
        c.shared(k, make, cost_s=(costs or {}).get(k))


def _held(c):
    return [k[1] for k in c.keys_in_order()]


def test_key_is_factory_identity_and_arguments():
    c = SharedCache(policy="unbounded")
    a, b = c.call(make, "s3", region="eu"), c.call(other, "s3", region="eu")
    assert a is not b  # equal arguments, two factories: two entries (the original merged them)
    assert c.call(make, "s3", region="eu") is a and c.call(make, "s3", region="us") is not a
    assert (c.hits, c.misses) == (1, 3)
    assert c.call(make, "s3", {"opts": [1, 2]}) is c.call(make, "s3", {"opts": [1, 2]})
    # by key: the same key with two factories is two entries too
    k1, k2 = c.shared("db", lambda: object()), c.shared("db", lambda: object())
    assert k1 is not k2 and c.shared("db", make) is c.shared("db", make)
    # one line of a handler, run at every invocation, makes a new lambda each time: the same factory
    got = [c.shared("sqs", lambda: object()) for _ in range(3)]
    assert got[0] is got[1] is got[2]


class Session:
    def client(self, name):
        return object()


def test_bound_methods_of_two_objects_are_two_factories():
    c = SharedCache()
    s1, s2 = Session(), Session()
    assert c.call(s1.client, "s3") is c.call(s1.client, "s3")
    assert c.call(s1.client, "s3") is not c.call(s2.client, "s3")


def test_lru_evicts_least_recently_used():
    c = SharedCache(policy="lru", capacity=3)
    _touch(c, ["a", "b", "c", "a", "d"])
    assert [e[1] for e in c.evicted] == ["b"] and _held(c) == ["c", "a", "d"]


def test_lfu_evicts_least_frequently_used_oldest_first():
    c = SharedCache(policy="lfu", capacity=3)
    _touch(c, ["a", "a", "b", "b", "c", "d", "e"])
    assert [e[1] for e in c.evicted] == ["c", "d"]


def test_gdsf_keeps_expensive_objects():
    c = SharedCache(policy="gdsf", capacity=2)
    _touch(c, ["costly", "cheap1", "cheap2"], costs={"costly": 1.0, "cheap1": 0.001, "cheap2": 0.001})
    assert [e[1] for e in c.evicted] == ["cheap1"] and set(_held(c)) == {"costly", "cheap2"}


def test_random_is_seeded_and_unbounded_never_evicts():
    runs = []
    for _ in range(2):
        c = SharedCache(policy="random", capacity=2, seed=9)
        _touch(c, list("abcdefgh"))
        runs.append([e[1] for e in c.evicted])
    assert runs[0] == runs[1] and len(runs[0]) == 6
    u = SharedCache(policy="unbounded", capacity=1)
    _touch(u, list("abcdefgh"))
    assert len(u) == 8 and u.evictions == 0


def test_hit_ratios_on_a_zipf_stream():
    keys = np.random.default_rng(1).zipf(1.3, 20_000) % 200
    ratio = {}
    for pol in ("lru", "lfu", "gdsf", "random", "unbounded"):
        c = SharedCache(policy=pol, capacity=10, seed=1)
        for k in keys:
            c.shared(int(k), make, cost_s=1.0)
        ratio[pol] = c.hit_ratio()
    assert ratio["unbounded"] == max(ratio.values()) and ratio["unbounded"] > 0.95
    assert ratio["lfu"] > ratio["lru"] > 0.4  # a Zipf stream favours frequency over recency
    assert ratio["lfu"] > ratio["random"]


def test_bad_cache_arguments():
    with pytest.raises(ArgError, match="policy"):
        SharedCache(policy="fifo")
    with pytest.raises(ArgError, match="not hashable"):
        SharedCache().call(make, Unhashable())
    with pytest.raises(ArgError, match="not hashable"):
        SharedCache().shared([Unhashable()], make)
    with pytest.raises(ArgError, match="size_bytes"):
        SharedCache().shared("k", make, size_bytes=0)


def test_hash_ring_routes_stably_and_moves_few_keys():
    ring = HashRing([f"sb{k}" for k in range(8)])
    keys = [f"bucket-{k}" for k in range(2000)]
    before = {k: ring.route(k) for k in keys}
    assert len(set(before.values())) == 8
    ring.remove("sb3")
    after = {k: ring.route(k) for k in keys}
    moved = [k for k in keys if before[k] != after[k]]
    assert all(before[k] == "sb3" for k in moved) and len(moved) == sum(v == "sb3" for v in before.values())
    with pytest.raises(ArgError, match="no sandbox"):
        HashRing().route("x")
