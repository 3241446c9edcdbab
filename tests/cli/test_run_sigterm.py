"""``tailgate run`` stopped by SIGTERM leaves the same results directory as Ctrl-C, and exits 143."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TAILGATE = Path(sys.executable).with_name("tailgate")

SCRIPT = """
src = Source("src", rate_pps=100_000)
src >> Measure("measure") >> Sink("sink")
run(seconds=0.01)
(results_dir / "running").write_text("")  # packets have flowed: now the long run
run(seconds=600)
"""


@pytest.mark.parametrize("sig, code, reason", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_signal_writes_results_and_exit_code(tmp_path, sig, code, reason):
    script = tmp_path / "forever.py"
    script.write_text(SCRIPT)
    out = tmp_path / "res"
    # a test run started in the background inherits SIGINT ignored (the shell's rule for `cmd &`);
    # the child gets the default back, as a terminal's Ctrl-C would find it
    proc = subprocess.Popen(
        [str(TAILGATE), "run", str(script), "--out", str(out), "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "running").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        time.sleep(0.2)
        proc.send_signal(sig)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == code, (stdout, stderr)
    assert reason in stderr and "Traceback" not in stderr
    s = json.loads((out / "summary.json").read_text())
    assert s["stop_reason"] == reason
    assert s["packets"] > 0 and s["modules"]["sink"]["counters"]["packets_in"] > 0
    with open(out / "counters.csv", newline="") as f:
        rows = {(r["module"], r["counter"]): r["value"] for r in csv.DictReader(f)}
    assert int(rows[("sink", "packets_in")]) == s["modules"]["sink"]["counters"]["packets_in"]
    assert f"results: {out}" in stdout
