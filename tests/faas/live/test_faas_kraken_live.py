"""Live Kraken: its calibration from a Vanilla run directory (numbers by hand, every refusal), the
gateway's batches.csv, and `faas serve --strategy kraken --calibrate-from DIR` end to end."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import aiohttp
import pytest
from typer.testing import CliRunner

from tailgate.cli.main import app
from tailgate.faas.live.calibrate import CalibrationError, calibrate_from_run
from tailgate.faas.live.gateway import BATCH_COLUMNS, COLUMNS, Gateway
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.strategies import Pool, kraken_batch_size, make_strategy

CLI = [str(Path(sys.executable).with_name("tailgate"))]

# (function, status, schedule_s, cold_start_s, exec_s): a's completed totals 0.4, 0.2, 0.6, 1.0 and
# execs 0.1..0.4; b's one completed total 0.5, exec 0.1; c is not served; the others do not count.
INVOCATIONS = [
    ("a", "completed", 0.1, 0.2, 0.1),
    ("a", "completed", 0.0, 0.0, 0.2),
    ("a", "failed", 9.0, 9.0, 9.0),
    ("a", "completed", 0.2, 0.1, 0.3),
    ("b", "completed", 0.1, 0.3, 0.1),
    ("a", "abandoned", "", "", ""),
    ("c", "completed", 5.0, 5.0, 5.0),
    ("a", "completed", 0.5, 0.1, 0.4),
    ("b", "timeout", 0.0, 0.0, ""),
]
BATCHES = [("a", 2), ("b", 1), ("c", 4), ("a", 1), ("a", 3), ("b", 2)]  # (function, invocations) in dispatch order


def write_run(d: Path, strategy="vanilla", invocations=INVOCATIONS, batches=BATCHES) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    (d / "summary.json").write_text(json.dumps({"strategy": {"strategy": strategy, "dispatch_interval_s": 0.05}}))
    with open(d / "invocations.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for k, (fn, st, sc, co, ex) in enumerate(invocations):
            w.writerow({"arrival_s": k * 0.01, "func": 0, "function": fn, "input_n": "", "schedule_s": sc,
                        "cold_start_s": co, "queue_s": 0.0, "exec_s": ex, "e2e_s": 1.0, "mem_mb": "",
                        "sandbox": k, "status": st, "error": ""})
    with open(d / "batches.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(BATCH_COLUMNS)
        for k, (fn, n) in enumerate(batches):
            w.writerow((k * 0.05, 0, fn, n, n, n))
    return d


# --- the calibration, by hand ---------------------------------------------------------------------


def test_calibration_numbers_by_hand(tmp_path):
    run = write_run(tmp_path / "van")
    cal = calibrate_from_run(run, {"b": 0, "a": 1}, quantile=0.98)  # served in another order: matched by name
    # a: sorted totals 0.2 0.4 0.6 1.0; position 3 * 0.98 = 2.94 -> 0.6 + 0.94 * 0.4 = 0.976
    assert cal.slo_s[1] == pytest.approx(0.976)
    assert cal.mean_exec_s[1] == pytest.approx(0.25)
    assert cal.slo_s[0] == pytest.approx(0.5) and cal.mean_exec_s[0] == pytest.approx(0.1)
    assert cal.loads == {1: [2, 1, 3], 0: [1, 2]}
    assert cal.completed == {1: 4, 0: 1}
    assert cal.interval_s == 0.05 and cal.source == str(run)
    median = calibrate_from_run(run, {"a": 0}, quantile=0.5)
    assert median.slo_s[0] == pytest.approx(0.5)  # position 1.5 -> 0.4 + 0.5 * 0.2

    k = make_strategy("kraken", predictor="perfect")
    k.calibrate(*cal.args(), source=cal.source)
    assert k.batch_size == {1: 3, 0: 5}  # floor(0.976 / 0.25), floor(0.5 / 0.1)
    # a's dispatches replay loads 2, 1, 3, then the batch's own size: ceil(load / 3), within [1, n]
    assert [k.plan(1, n, 0.0).sandboxes for n in (5, 5, 5, 7)] == [1, 1, 1, 3]
    assert k.plan(1, 1, 0.0).inside == "serial"
    assert k.describe()["calibrated_from"] == str(run) and k.describe()["predictor"] == "perfect"


def test_ewma_needs_no_batches_csv(tmp_path):
    run = write_run(tmp_path / "van")
    (run / "batches.csv").unlink()
    cal = calibrate_from_run(run, {"a": 0}, quantile=0.98, need_loads=False)
    assert cal.loads == {} and cal.slo_s[0] == pytest.approx(0.976)
    k = make_strategy("kraken", predictor="ewma")
    k.calibrate(*cal.args(), source=cal.source)
    assert k.plan(0, 4, 0.0).sandboxes == 1  # no load seen yet: 1
    assert k.plan(0, 9, 0.0).sandboxes == 2  # ewma 4 -> ceil(4 / 3)


def test_a_simulated_kraken_does_not_name_a_source():
    assert "calibrated_from" not in make_strategy("kraken").describe()


# --- refusals, one line each, naming the file -----------------------------------------------------


def refusal(run, functions=None, **kw) -> str:
    with pytest.raises(CalibrationError) as e:
        calibrate_from_run(run, functions or {"a": 0}, **kw)
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_missing_directory_and_files(tmp_path):
    assert refusal(tmp_path / "nope").startswith(f"{tmp_path / 'nope'}: no such directory (Kraken calibrates from "
                                                 f"the --out of `tailgate faas serve --strategy vanilla`")
    (tmp_path / "f").write_text("")
    assert refusal(tmp_path / "f").startswith(f"{tmp_path / 'f'}: not a directory")
    for name in ("summary.json", "invocations.csv", "batches.csv"):
        run = write_run(tmp_path / name)
        (run / name).unlink()
        assert refusal(run).startswith(f"{run / name}: missing (Kraken calibrates from the --out of")


def test_not_a_vanilla_run(tmp_path):
    run = write_run(tmp_path / "fb", strategy="faasbatch")
    assert refusal(run) == (f"{run / 'summary.json'}: a run of strategy 'faasbatch', not vanilla (Kraken calibrates "
                            f"from the --out of `tailgate faas serve --strategy vanilla` over the same functions)")
    (run / "summary.json").write_text("{not json")
    assert refusal(run).startswith(f"{run / 'summary.json'}: not JSON (")
    (run / "summary.json").write_text("{}")
    assert refusal(run).startswith(f"{run / 'summary.json'}: names no strategy")


def test_a_served_function_without_a_completed_invocation_is_named(tmp_path):
    run = write_run(tmp_path / "van")
    msg = refusal(run, {"a": 0, "d": 1, "e": 2})
    assert msg == (f"{run / 'invocations.csv'}: no completed invocation of 'd', 'e' in this run "
                   f"(Kraken needs each served function's SLO and mean exec)")
    only_failed = write_run(tmp_path / "failed", invocations=[("a", "failed", 0.1, 0.1, 0.1)])
    assert "no completed invocation of 'a'" in refusal(only_failed)
    no_batch = write_run(tmp_path / "nb", batches=[("b", 1)])
    assert refusal(no_batch) == (f"{no_batch / 'batches.csv'}: no dispatch of 'a' logged "
                                 f"(the perfect predictor replays them)")


def test_malformed_rows_name_file_and_line(tmp_path):
    run = write_run(tmp_path / "van")
    inv = run / "invocations.csv"
    lines = inv.read_text().splitlines()
    good = lines[:]
    lines[2] = lines[2].replace(",0.2,", ",x,", 1)  # row 2 of a: its exec_s
    inv.write_text("\n".join(lines) + "\n")
    assert refusal(run) == f"{inv}:3: exec_s: 'x' is not a number of seconds"
    lines = good[:]
    lines[4] = lines[4].replace(",0.3,", ",-0.3,", 1)
    inv.write_text("\n".join(lines) + "\n")
    assert refusal(run) == f"{inv}:5: exec_s: '-0.3' must be a finite number of seconds >= 0"
    inv.write_text("\n".join(good[:3] + ["0.1,0,a"] + good[3:]) + "\n")
    assert refusal(run) == f"{inv}:4: 3 fields, the header has {len(COLUMNS)}"
    inv.write_text("\n".join(good[:2] + [good[2].replace(",completed,", ",done,")]) + "\n")
    assert refusal(run).startswith(f"{inv}:3: status: 'done' is not one of completed, ")
    inv.write_text("function,status\na,completed\n")
    assert refusal(run) == f"{inv}:1: header lacks schedule_s, cold_start_s, exec_s (expected function, status, " \
                           f"schedule_s, cold_start_s, exec_s)"
    inv.write_text("")
    assert refusal(run).startswith(f"{inv}:1: empty file")
    inv.write_bytes(b"\xff\xfe\x00garbage")
    assert refusal(run).startswith(f"{inv}: not text (")
    write_run(run)
    bat = run / "batches.csv"
    rows = bat.read_text().splitlines()
    bat.write_text("\n".join(rows[:3] + [rows[3].replace(",4,4,4", ",four,4,4")]) + "\n")
    assert refusal(run) == f"{bat}:4: invocations: 'four' is not a whole number"
    bat.write_text("\n".join(rows[:2] + [rows[2].replace(",1,1,1", ",0,1,1")]) + "\n")
    assert refusal(run) == f"{bat}:3: invocations: 0 (a dispatch holds at least 1)"


# --- the CLI ------------------------------------------------------------------------------------------

HANDLERS = '''
import time

def nap(event, context):
    time.sleep(event.get("s", 0.02))
    return {"ok": True}
'''

MANIFEST = '''
path: .
functions:
  - {name: nap, handler: h:nap, kind: io}
'''


def _cli(tmp_path: Path, *extra: str, refused: bool = True):
    """`faas serve` in this process (a refusal comes before a gateway starts: one line)."""
    (tmp_path / "h.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    res = CliRunner().invoke(app, ["faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--port", "0", *extra])
    assert "Traceback" not in res.output, res.output
    if refused:
        assert len(res.stderr.strip().splitlines()) == 1, res.output
    return res


def test_kraken_without_a_calibration_says_how(tmp_path):
    r = _cli(tmp_path, "--strategy", "kraken")
    assert r.exit_code == 2
    assert r.stderr.strip() == ("error: --strategy kraken: needs a calibration from a Vanilla run: --calibrate-from "
                                "DIR, the --out of `tailgate faas serve --strategy vanilla` over the same functions")
    r = _cli(tmp_path, "--strategy", "vanilla", "--calibrate-from", str(tmp_path))
    assert r.exit_code == 2
    assert r.stderr.strip() == f"error: --calibrate-from {tmp_path}: only for --strategy kraken (the strategy is vanilla)"
    fb = write_run(tmp_path / "fb", strategy="faasbatch")
    r = _cli(tmp_path, "--strategy", "kraken", "--calibrate-from", str(fb))
    assert r.exit_code == 2
    assert r.stderr.strip().startswith(f"error: {fb / 'summary.json'}: a run of strategy 'faasbatch', not vanilla")
    van = write_run(tmp_path / "van")  # functions a and b: not the served nap
    r = _cli(tmp_path, "--strategy", "kraken", "--calibrate-from", str(van))
    assert r.exit_code == 2
    assert r.stderr.strip().startswith(f"error: {van / 'invocations.csv'}: no completed invocation of 'nap'")


def _post(url: str, event: dict, answers: list) -> None:
    req = urllib.request.Request(url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            answers.append(r.status)
    except urllib.error.HTTPError as e:
        answers.append(e.code)
    except OSError as e:
        answers.append(str(e))


def _serve(tmp_path: Path, out: Path, waves: list[int], *extra: str) -> tuple[list, str]:
    """Start `faas serve`, send ``waves`` of concurrent invocations (each wave answered before the
    next), SIGTERM it; returns the answers and stderr."""
    (tmp_path / "h.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    proc = subprocess.Popen([*CLI, "faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--port", "0",
                             "--dispatch-interval-s", "0.05", "--out", str(out), *extra],
                            stderr=subprocess.PIPE, text=True)
    answers: list = []
    head = ""
    try:
        deadline = time.monotonic() + 20
        port = None
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            head += line
            if "listening on" in line:
                port = int(line.split("http://127.0.0.1:")[1].split()[0])
                break
            if not line and proc.poll() is not None:
                break
        assert port is not None, f"faas serve did not start: {head}{proc.stderr.read()}"
        for n in waves:
            threads = [threading.Thread(target=_post, args=(f"http://127.0.0.1:{port}/invoke/nap", {"s": 0.02},
                                                            answers)) for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(20)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(20)
        err = head + proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, err
    return answers, err


def _batches(out: Path) -> list[dict]:
    with open(out / "batches.csv", newline="") as f:
        return list(csv.DictReader(f))


def _vanilla_in_process(tmp_path: Path, out: Path, waves: list[int]) -> list:
    """A vanilla gateway in this process (no interpreter to start), written to ``out`` as `faas serve` does."""
    (tmp_path / "h.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    gw = Gateway(load_manifest(tmp_path / "m.yaml"), make_strategy("vanilla", dispatch_interval_s=0.05),
                 pool=Pool(max_per_function=20, max_total=20), grace_s=2.0)

    async def main() -> list:
        port = await gw.start(port=0)
        answers = []
        try:
            async with aiohttp.ClientSession() as s:
                for n in waves:
                    async def one():
                        async with s.post(f"http://127.0.0.1:{port}/invoke/nap", json={"s": 0.02}) as r:
                            return r.status
                    answers += await asyncio.wait_for(asyncio.gather(*(one() for _ in range(n))), 30)
        finally:
            await gw.stop()
        return answers

    answers = asyncio.run(main())
    gw.write(out)
    return answers


def test_kraken_served_live_from_a_vanilla_run(tmp_path):
    van, kr = tmp_path / "van", tmp_path / "kraken"
    answers = _vanilla_in_process(tmp_path, van, [4, 2, 6, 1])
    assert answers == [200] * 13
    vrows = _batches(van)
    assert list(vrows[0]) == list(BATCH_COLUMNS)
    assert sum(int(r["invocations"]) for r in vrows) == 13
    assert all(r["function"] == "nap" and r["func"] == "0" for r in vrows)
    assert all(r["sandboxes_planned"] == r["invocations"] == r["sandboxes_got"] for r in vrows)  # vanilla: 1 each
    ticks = [float(r["tick_s"]) for r in vrows]
    assert ticks == sorted(ticks) and ticks[0] > 0
    assert json.loads((van / "summary.json").read_text())["strategy"]["strategy"] == "vanilla"

    answers, err = _serve(tmp_path, kr, [5, 3, 6, 2, 4], "--strategy", "kraken", "--calibrate-from", str(van))
    assert answers == [200] * 20, err
    assert f"predictor perfect, calibrated from {van}" in err
    summary = json.loads((kr / "summary.json").read_text())
    assert summary["strategy"]["strategy"] == "kraken" and summary["strategy"]["predictor"] == "perfect"
    assert summary["strategy"]["calibrated_from"] == str(van)
    assert summary["completed"] == summary["accepted"] == 20
    cal = calibrate_from_run(van, {"nap": 0}, quantile=0.98)
    size = kraken_batch_size(cal.slo_s[0], cal.mean_exec_s[0])
    logged = cal.loads[0]
    krows = _batches(kr)
    assert sum(int(r["invocations"]) for r in krows) == 20
    for k, r in enumerate(krows):  # the k-th dispatch is predicted to carry vanilla's k-th load
        n = int(r["invocations"])
        load = logged[k] if k < len(logged) else n
        assert int(r["sandboxes_planned"]) == max(1, min(n, math.ceil(load / size))), (k, r, logged, size)
        assert int(r["sandboxes_got"]) == int(r["sandboxes_planned"])


def test_perfect_warns_when_vanilla_ticked_at_another_interval(tmp_path):
    van = write_run(tmp_path / "van", invocations=[("nap", "completed", 0.01, 0.05, 0.02)], batches=[("nap", 1)])
    res = _cli(tmp_path, "--strategy", "kraken", "--calibrate-from", str(van), "--dispatch-interval-s", "0.2",
               "--duration", "0.3", "--out", str(tmp_path / "out"), refused=False)
    assert res.exit_code == 0, res.output
    assert (f"warning: --calibrate-from {van}: Vanilla ran at dispatch interval 0.05 s, Kraken serves at 0.2 s "
            f"(its logged loads are per Vanilla's tick)") in res.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["strategy"]["calibrated_from"] == str(van)
    res = _cli(tmp_path, "--strategy", "kraken", "--calibrate-from", str(van), "--dispatch-interval-s", "0.2",
               "--param", "predictor=ewma", "--duration", "0.3", "--out", str(tmp_path / "out2"), refused=False)
    assert res.exit_code == 0 and "warning" not in res.stderr, res.output
    assert "predictor ewma, calibrated from" in res.stderr
