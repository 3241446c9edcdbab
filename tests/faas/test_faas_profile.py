"""`tailgate faas profile`: measures this machine's sandboxes into a profile the simulator takes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tailgate.faas.sim import load_profile, simulate
from tailgate.faas.strategies import make_strategy
from tailgate.faas.trace import generate

pytest.importorskip("moto")

ROOT = Path(__file__).resolve().parents[2]
CLI = [str(Path(sys.executable).with_name("tailgate"))]


def test_profile_writes_a_profile_that_sim_takes(tmp_path):
    out = tmp_path / "prof"
    r = subprocess.run([*CLI, "faas", "profile", "--manifest", str(ROOT / "examples/faas/manifest.yaml"),
                        "--repeats", "2", "--fib-n", "12,18", "--size-bytes", "1024", "--out", str(out)],
                       check=False, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    prof = json.loads((out / "profile.json").read_text())
    samples = json.loads((out / "samples.json").read_text())
    assert load_profile(prof) is prof  # the simulator's own check
    assert len(prof["cpu"]["cold_start_ms"]["samples"]) == 2 and len(prof["io"]["cold_start_ms"]["samples"]) == 2
    assert [n for n, _ in prof["cpu"]["exec_ms"]["anchors"]] == [12, 18]
    ms12, ms18 = (ms for _, ms in prof["cpu"]["exec_ms"]["anchors"])
    assert 0 < ms12 < ms18  # fib(18) is ~18x the work of fib(12)
    for key in ("s3io.exec_ms", "s3io.exec_cached_ms", "s3construct.exec_ms", "noop.exec_ms"):
        assert len(samples[key]) == 2 and all(v > 0 for v in samples[key])
    med = prof["io"]["measured"]["medians"]
    assert med["s3io.exec_cached_ms"] < med["s3io.exec_ms"]  # the reuse hook saved the client construction
    # without the hook a second invocation rebuilds its client, with the libraries' caches warm:
    # dearer than the cached client, cheaper than the cold image's first build
    assert len(prof["io"]["exec_warm_ms"]["samples"]) == 2
    assert med["s3io.exec_cached_ms"] < med["s3io.exec_warm_ms"] < med["s3io.exec_ms"]
    # CPU time of the processes involved and the hand-over, for the simulator's contention
    assert 0 < prof["io"]["cpu_share"] <= 1  # client construction and the S3 server are CPU work
    assert "capacity_cores" not in prof["cpu"]  # fib(18) is too short to measure a capacity with
    assert prof["io"]["server_ms"]["value"] >= 0 and len(samples["io.server_cpu_ms"]) == 1
    for kind in ("cpu", "io"):
        assert 0 <= prof[kind]["cold_start_cpu_share"] <= 1
        assert len(prof[kind]["answer_ms"]["samples"]) == 2 and all(v >= 0 for v in prof[kind]["answer_ms"]["samples"])
    assert "profile:" in r.stdout and "s3io.exec_ms" in r.stdout
    # the simulator runs on it, from the file, and through the CLI
    t = generate(invocations=100, kind="io", functions=3, seed=1)
    assert simulate(t, make_strategy("faasbatch"), profile=out / "profile.json").summary()["invocations"] == 100
    s = subprocess.run([*CLI, "faas", "sim", "--kind", "cpu", "--invocations", "50", "--strategy", "faasbatch",
                        "--profile", str(out / "profile.json"), "--json"], check=False, capture_output=True, text=True, timeout=60)
    assert s.returncode == 0, s.stderr
    assert json.loads(s.stdout)[0]["invocations"] == 50


def test_profile_bad_arguments_are_one_line(tmp_path):
    m = str(ROOT / "examples/faas/manifest.yaml")
    for extra, msg in ((["--fib-n", "12,x"], "error: --fib-n '12,x': 'x' is not a whole number"),
                       (["--fib-n", "12"], "give at least two distinct n"),
                       (["--io-function", "nope"], "no function 'nope' to profile"),
                       (["--io-function", "fib"], "function 'fib' is kind cpu, profiled as io")):
        r = subprocess.run([*CLI, "faas", "profile", "--manifest", m, "--out", str(tmp_path / "p"), *extra],
                           check=False, capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and msg in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_capacity_is_the_work_over_the_wall_time_of_parallel_sandboxes():
    import asyncio

    from tailgate.faas.live.profile import CAPACITY_REPEATS, _capacity
    from tailgate.faas.live.registry import load_manifest
    from tailgate.faas.live.sandbox import make_backend

    cores = os.cpu_count() or 1
    if cores < 2:
        pytest.skip("one core: no capacity to measure")
    man = load_manifest(ROOT / "examples/faas/manifest.yaml")

    async def main():
        backend = make_backend("process", man, keep_net=True)
        await backend.start()
        try:
            ids = iter(range(1, 1 << 30))
            samples = {"fib.29.exec_ms": [60.0]}  # as if measured alone
            said = []
            got = await _capacity(backend, man.functions["fib"], [20, 29], samples, 60.0, said.append, lambda: next(ids))
            short = await _capacity(backend, man.functions["fib"], [12], {"fib.12.exec_ms": [0.1]}, 60.0,
                                    said.append, lambda: next(ids))
            return got, samples, short, said
        finally:
            await backend.stop()

    got, samples, short, said = asyncio.run(main())
    assert len(samples["cpu.capacity_cores"]) == CAPACITY_REPEATS
    assert 0 < got <= cores and got == sorted(samples["cpu.capacity_cores"])[CAPACITY_REPEATS // 2]
    assert short is None and "no capacity measured" in said[-1]
