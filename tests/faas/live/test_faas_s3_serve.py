"""`tailgate faas serve --s3 local`: the local S3 server lives as long as the gateway, its sandboxes
reach it (real put/get from examples/faas/s3func.py), the reuse hook is on in io sandboxes for
faasbatch and off for vanilla (or as --reuse/--no-reuse say), and the server is gone after stop."""

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
import pytest

pytest.importorskip("moto")
pytest.importorskip("boto3")

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "faas"
CLI = [str(Path(sys.executable).with_name("tailgate"))]

PROBE = '''
from tailgate.faas.io import reuse

def probe(event, context):
    import boto3, os
    boto3.client("s3", region_name="us-east-1", endpoint_url=os.environ["S3_ENDPOINT_URL"])
    hook = reuse.current()
    return {"reuse": hook is not None, "endpoint": os.environ.get("S3_ENDPOINT_URL")}
'''

MANIFEST = f'''
path: [., {EXAMPLES}]
functions:
  - {{name: s3io, handler: s3func:handler, kind: io, limits: {{timeout_s: 30}}}}
  - {{name: probe, handler: probe:probe, kind: io}}
'''


def _post(url: str, event: dict, answers: list) -> None:
    req = urllib.request.Request(url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            answers.append((r.status, json.loads(r.read())))
    except urllib.error.HTTPError as e:
        answers.append((e.code, json.loads(e.read())))


def _serve(tmp_path: Path, *extra: str):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    proc = subprocess.Popen([*CLI, "faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--port", "0",
                             "--dispatch-interval-s", "0.05", "--out", str(tmp_path / "out"), "--s3", "local", *extra],
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if "listening on" in line:
            port = int(line.split("http://127.0.0.1:")[1].split()[0])
            return proc, port, line
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"faas serve --s3 local did not start: {proc.stderr.read()}")


def _stop(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(30)
    err = proc.stderr.read()
    assert rc == 0, err
    return err


def test_serve_s3_local_real_put_get_reuse_on_and_server_gone_after_stop(tmp_path):
    proc, port, line = _serve(tmp_path, "--strategy", "faasbatch")
    try:
        assert "reuse on" in line and "s3 http://127.0.0.1:" in line, line
        endpoint = line.split("s3 ")[1].rstrip(")\n")
        moto = [p for p in psutil.Process(proc.pid).children(recursive=True)
                if "moto.server" in " ".join(p.cmdline())]
        assert len(moto) == 1
        url = f"http://127.0.0.1:{port}/invoke/"
        answers: list = []
        threads = [threading.Thread(target=_post, args=(url + "s3io", {"size_bytes": 4096 + k}, answers))
                   for k in range(3)]
        threads.append(threading.Thread(target=_post, args=(url + "probe", {}, answers)))
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        if proc.poll() is None:
            err = _stop(proc)
    assert len(answers) == 4
    assert all(code == 200 for code, _ in answers), answers
    puts = sorted(a["result"]["put_bytes"] for _, a in answers if "put_bytes" in a["result"])
    gets = sorted(a["result"]["get_bytes"] for _, a in answers if "get_bytes" in a["result"])
    assert puts == gets == [4096, 4097, 4098]
    probe = next(a["result"] for _, a in answers if "reuse" in a["result"])
    assert probe == {"reuse": True, "endpoint": endpoint}
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["reuse"] is True and summary["completed"] == 4
    # the server is gone with the gateway
    time.sleep(0.2)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in moto), err
    with pytest.raises(OSError):
        urllib.request.urlopen(endpoint + "/", timeout=2)


@pytest.mark.parametrize("extra, expect", [(("--strategy", "vanilla"), False),
                                           (("--strategy", "vanilla", "--reuse"), True),
                                           (("--strategy", "faasbatch", "--no-reuse"), False)])
def test_reuse_default_follows_the_strategy_and_flags_override(tmp_path, extra, expect):
    proc, port, line = _serve(tmp_path, *extra)
    try:
        assert f"reuse {'on' if expect else 'off'}" in line, line
        answers: list = []
        _post(f"http://127.0.0.1:{port}/invoke/probe", {}, answers)
    finally:
        if proc.poll() is None:
            _stop(proc)
    assert answers[0][0] == 200 and answers[0][1]["result"]["reuse"] is expect


def test_bad_s3_mode_is_one_line(tmp_path):
    (tmp_path / "probe.py").write_text(PROBE)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    r = subprocess.run([*CLI, "faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--s3", "aws"],
                       check=False, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip() == "error: --s3 'aws': must be one of none, local"
