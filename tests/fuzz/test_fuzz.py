"""Fuzzing tailgate's parser, network functions and capture readers (issue 13, "Must show").

Every frame lies against an unreadable page (``fuzz_guard``), so a read past its end crashes:
the crash-prone work runs in child processes (``fuzz_worker.py``), and a child killed by a
signal becomes a failing test that names the seed, batch and frame (in hex), found by running
that batch again one frame at a time. The parse of every frame is compared field by field with
an independent reference parser (``refparse``); every frame also goes through every network
function and through the router chain, whose outputs are checked; every capture file (pcap and
pcapng, both byte orders, mutated) must read or be refused with a ``PcapError`` (a
``TailgateError``) naming the file and a byte offset, within a time bound.

- unmarked (``make test``): 10,240 frames and 400 capture files, and the harness's own checks (a
  deliberate over-read, exception and hang each reported with the input that caused it), about
  25 s on two cores;
- ``make fuzz`` (marker ``slow``): 1,003,520 frames and 100,000 capture files, two child
  processes at a time, a few minutes.

Inputs are seeded: ``FUZZ_SEED`` (default 1) picks another set, reproducibly.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import fuzz_inputs
import pytest
import refparse

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "fuzz_worker.py")
SEED = int(os.environ.get("FUZZ_SEED", "1"))
BATCH_FRAMES = 256
CHUNK_FILES = 100
#: the frame-by-frame rerun of one batch that crashed
STALL_S = 300


def _start(args: list[str], env: dict | None = None) -> subprocess.Popen:
    """A child writing to a file, not a pipe: a pipe nobody reads while the parent waits on another
    child fills up and stalls it."""
    out = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(
        [sys.executable, WORKER, *args], stdout=out, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, **(env or {})},
    )
    proc.out_file = out
    return proc


def _finish(proc: subprocess.Popen, timeout_s: float) -> tuple[int | None, list[str]]:
    """(returncode, output lines); returncode None when the child ran past ``timeout_s``."""
    try:
        rc = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = None
    with proc.out_file as out:
        out.seek(0)
        return rc, out.read().splitlines()


def _last(lines: list[str], prefix: str) -> str | None:
    for line in reversed(lines):
        if line.startswith(prefix):
            return line[len(prefix) :]
    return None


def _signal_name(rc: int) -> str:
    try:
        return signal.Signals(-rc).name
    except ValueError:
        return f"signal {-rc}"


def _crashed_frame(seed: int, k: int, env: dict | None, per_batch: int) -> str:
    """Batch ``k`` again, one frame at a time: which frame kills the child."""
    rc, lines = _finish(_start(["frames", str(seed), str(k), "1", str(per_batch), "--single"], env), STALL_S)
    i = _last(lines, "frame ")
    if i is None or rc is None or rc >= 0:
        return f"batch {k} (the frame-by-frame rerun did not crash: rc {rc})"
    frame = fuzz_inputs.frames([seed, k], per_batch)[int(i)]
    return f"batch {k} frame {i}: {frame.hex()}"


def _problems(kind: str, seed: int, rc: int | None, lines: list[str], env: dict | None, per_unit: int) -> list[str]:
    fails = [line[5:] for line in lines if line.startswith("FAIL ")]
    if any("Timeout (" in line for line in lines):  # faulthandler's watchdog: a hang
        at = _last(lines, "B ") if kind == "frames" else _last(lines, "F ")
        stack = lines[[k for k, line in enumerate(lines) if "Timeout (" in line][-1] :][:30]
        fails.append(
            f"{kind} seed {seed}: a hang in {'batch' if kind == 'frames' else 'chunk, file'} {at}:\n" + "\n".join(stack)
        )
    elif rc is None:
        fails.append(f"{kind} seed {seed}: no end within the time bound; last progress {lines[-1:]}")
    elif rc < 0:
        if kind == "frames":
            k = _last(lines, "B ")
            where = _crashed_frame(seed, int(k), env, per_unit) if k is not None else "before its first batch"
        else:
            where = f"capture {_last(lines, 'F ')} (rebuild: fuzz_inputs.captures([seed, chunk], {per_unit}))"
        fails.append(f"{kind}: child killed by {_signal_name(rc)} at seed {seed} {where}")
    elif rc != 0 and not fails:
        fails.append(f"{kind} seed {seed}: child exited {rc}: {lines[-5:]}")
    return fails


def fuzz(kind: str, n_units: int, per_unit: int, procs: int, timeout_s: float, env: dict | None = None):
    """Run ``n_units`` batches (or chunks) in ``procs`` children; returns (items, seconds, problems)."""
    t0 = time.perf_counter()
    share = -(-n_units // procs)
    extra = [] if kind == "frames" else ["/dev/shm" if os.path.isdir("/dev/shm") else "/tmp"]
    running, dirs = [], []
    for p in range(procs):
        first, count = p * share, min(share, n_units - p * share)
        if count <= 0:
            continue
        out_dir = []
        if extra:
            out_dir = [os.path.join(extra[0], f"tailgate-fuzz-{os.getpid()}-{p}")]
            os.makedirs(out_dir[0], exist_ok=True)
            dirs += out_dir
        args = [kind, str(SEED), str(first), str(count), str(per_unit), *out_dir]
        running.append(_start(args, env))
    items, problems = 0, []
    for proc in running:
        rc, lines = _finish(proc, timeout_s)
        done = _last(lines, "DONE items=")
        items += int(done.split()[0]) if done else 0
        problems += _problems(kind, SEED, rc, lines, env, per_unit)
    for d in dirs:
        shutil.rmtree(d, ignore_errors=True)
    return items, time.perf_counter() - t0, problems


def _report(what: str, items: int, seconds: float, problems: list[str]) -> None:
    print(f"\n{what}: {items} in {seconds:.1f} s, {len(problems)} problems")
    assert not problems, "\n".join(problems[:20])


# ------------------------------------------------------------------------------------------------
# the short version (make test)
# ------------------------------------------------------------------------------------------------
def test_fuzz_frames_short():
    items, seconds, problems = fuzz("frames", 40, BATCH_FRAMES, 1, 300)
    _report("frames", items, seconds, problems)
    assert items == 40 * BATCH_FRAMES


def test_fuzz_captures_short():
    items, seconds, problems = fuzz("captures", 4, CHUNK_FILES, 1, 300)
    _report("capture files", items, seconds, problems)
    assert items == 4 * CHUNK_FILES


def test_a_read_past_a_frame_is_a_failure_naming_seed_and_frame():
    """The harness itself: a child that reads one byte past a frame (here on purpose, in batch
    0 frame 5) dies of SIGSEGV, and the report names the seed, the batch and the frame's hex."""
    _, _, problems = fuzz("frames", 2, 16, 1, 300, env={"FUZZ_OVERREAD": "0:5"})
    frame = fuzz_inputs.frames([SEED, 0], 16)[5]
    assert len(problems) == 1, problems
    assert f"killed by SIGSEGV at seed {SEED} batch 0 frame 5: {frame.hex()}" in problems[0]


def test_an_exception_is_a_failure_naming_the_frame():
    """The harness itself: an exception while a batch is processed (here raised on purpose for
    batch 0 frame 7) is reported with the frame that causes it, found frame by frame."""
    _, _, problems = fuzz("frames", 1, 16, 1, 300, env={"FUZZ_RAISE": "0:7"})
    frame = fuzz_inputs.frames([SEED, 0], 16)[7]
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"seed {SEED} batch 0 frame 7: RuntimeError: a deliberate exception")
    assert problems[0].endswith(frame.hex())


def test_a_hang_is_a_failure_naming_the_file():
    """The harness itself: a child stuck on one capture file (here on purpose, chunk 0 file 3)
    is ended by its watchdog, and the report names the file and shows where it was stuck."""
    _, _, problems = fuzz("captures", 1, 10, 1, 300, env={"FUZZ_HANG": "0:3", "FUZZ_HANG_S": "1"})
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"captures seed {SEED}: a hang in chunk, file 0 3:")
    assert "captures_main" in problems[0]


def test_reference_parser_follows_the_documented_choices():
    """A few frames at the edges the reference parser's docstring lists, with what tailgate's
    manual says about each."""
    eth = bytes(12)
    ip6 = bytes.fromhex("60000000") + (8 * 9).to_bytes(2, "big") + bytes([0, 64]) + bytes(32)
    nine_ext = b"".join(bytes([0, 0]) + bytes(6) for _ in range(9))  # hop-by-hop x 9
    r = refparse.parse_frame(eth + b"\x86\xdd" + ip6 + nine_ext)
    assert r.malformed == refparse.OK and r.ip_proto == 0 and r.l4_off == -1  # walk stops after 8
    three_tags = eth + b"\x81\x00\x00\x01" * 3 + b"\x08\x00" + bytes(20)
    r = refparse.parse_frame(three_tags)
    assert (r.n_vlan, r.ethertype, r.malformed, r.l3_off) == (2, 0x8100, refparse.OK, -1)
    cut_tag = eth + b"\x88\xa8\x00"
    r = refparse.parse_frame(cut_tag)
    assert (r.malformed, r.ethertype, r.l2_off) == (refparse.TRUNC_L2, 0x88A8, 0)


# ------------------------------------------------------------------------------------------------
# the full version (make fuzz)
# ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_fuzz_frames_full():
    n_batches = 3920  # 1,003,520 frames
    items, seconds, problems = fuzz("frames", n_batches, BATCH_FRAMES, 2, 1800)
    _report("frames", items, seconds, problems)
    assert items == n_batches * BATCH_FRAMES


@pytest.mark.slow
def test_fuzz_captures_full():
    n_chunks = 1000  # 100,000 files
    items, seconds, problems = fuzz("captures", n_chunks, CHUNK_FILES, 2, 1800)
    _report("capture files", items, seconds, problems)
    assert items == n_chunks * CHUNK_FILES
