"""`tailgate faas serve`: SIGTERM mid-run accounts for every accepted invocation and leaves no
process behind; a bad manifest or argument is one line."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil

HANDLERS = '''
import time

def nap(event, context):
    time.sleep(event.get("s", 0.1))
    return {"ok": True}

def fib(event, context):
    def f(n):
        return n if n < 2 else f(n - 1) + f(n - 2)
    return f(event.get("n", 10))
'''

MANIFEST = '''
path: .
functions:
  - {name: nap, handler: h:nap, kind: io}
  - {name: fib, handler: h:fib, kind: cpu}
'''

CLI = [str(Path(sys.executable).with_name("tailgate"))]


def _post(url: str, event: dict, answers: list) -> None:
    req = urllib.request.Request(url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            answers.append((r.status, json.loads(r.read())))
    except urllib.error.HTTPError as e:
        answers.append((e.code, json.loads(e.read())))
    except OSError as e:
        answers.append((None, str(e)))


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, int]:
    (tmp_path / "h.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    proc = subprocess.Popen([*CLI, "faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--port", "0",
                             "--out", str(tmp_path / "out"), *extra], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            return proc, int(line.split("http://127.0.0.1:")[1].split()[0])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"faas serve did not start: {proc.stderr.read()}")


def test_sigterm_accounts_for_every_invocation_and_leaves_no_process(tmp_path):
    proc, port = _start(tmp_path, "--dispatch-interval-s", "0.05", "--grace-s", "0.3")
    try:
        url = f"http://127.0.0.1:{port}/invoke/"
        answers: list = []
        threads = [threading.Thread(target=_post, args=(url + "nap", {"s": 0.05}, answers)) for _ in range(6)]
        threads += [threading.Thread(target=_post, args=(url + "nap", {"s": 3}, answers)) for _ in range(4)]
        threads += [threading.Thread(target=_post, args=(url + "fib", {"n": 12}, answers)) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # the short ones done, the long ones in their sandboxes
        family = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        assert family, "no zygote or sandbox process seen"
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(20)
        rc = proc.wait(20)
        err = proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rc == 0, err
    assert len(answers) == 13
    codes = sorted(st for st, _ in answers)
    assert codes.count(200) == 9 and codes.count(503) == 4, [(c, a.get("error"), a.get("result")) for c, a in answers]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["accepted"] == 13
    assert (summary["completed"], summary["failed"], summary["abandoned"]) == (9, 0, 4)
    assert summary["accepted"] == summary["completed"] + summary["failed"] + summary["abandoned"]
    assert "accepted 13 = completed 9 + failed 0 + abandoned 4" in err
    rows = (tmp_path / "out" / "invocations.csv").read_text().splitlines()
    assert rows[0].startswith("arrival_s,func,function,input_n,schedule_s,cold_start_s,queue_s,exec_s,e2e_s,mem_mb")
    assert len(rows) == 14
    time.sleep(0.2)
    alive = [p for p in family if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphan processes after SIGTERM: {alive}"


def test_a_bad_manifest_is_one_line(tmp_path):
    (tmp_path / "m.yaml").write_text("functions:\n  - {name: a, handler: h:f, kind: gpu}\n")
    r = subprocess.run([*CLI, "faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip() == f"error: {tmp_path / 'm.yaml'}: functions[0].kind: must be cpu or io, got 'gpu'"


def test_a_handler_that_cannot_be_imported_is_one_line(tmp_path):
    (tmp_path / "m.yaml").write_text("functions:\n  - {name: a, handler: no_such_module:f, kind: io}\n")
    r = subprocess.run([*CLI, "faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--port", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines()[-1] == ("error: function a: cannot import handler no_such_module:f: "
                                                 "ModuleNotFoundError: No module named 'no_such_module'")
