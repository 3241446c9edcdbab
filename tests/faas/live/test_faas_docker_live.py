"""The docker sandbox, live: image made on first use, fib and the real S3 function in containers, cold
start measured, a container's zygote killed with -9 mid-batch, no container left after stop, and
one clear line for each thing that can be missing (client, daemon, image).

A module fixture uses the docker daemon that answers; when none does it starts ``dockerd``
itself with :func:`tailgate.faas.live.docker.daemon` (root only, ``--bridge=none
--iptables=false``, its socket, data and exec roots in a temporary folder, ``DOCKER_HOST``
pointing there), and stops and removes it at the end. Without dockerd or root the live tests are
skipped, saying why.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import threading
import time
import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path

import aiohttp
import pytest

from tailgate.faas.live import docker as docker_mod
from tailgate.faas.live.gateway import Gateway
from tailgate.faas.live.registry import load_manifest
from tailgate.faas.live.sandbox import SandboxError, make_backend
from tailgate.faas.strategies import Pool, make_strategy

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "faas"
CLI = [str(Path(sys.executable).with_name("tailgate"))]

HANDLERS = '''
import time

def fib(event, context):
    def f(n):
        return n if n < 2 else f(n - 1) + f(n - 2)
    return f(event.get("n", 15))

def slow(event, context):
    time.sleep(event.get("s", 0.5))
    return {"slept": event.get("s", 0.5)}
'''

MANIFEST = '''
path: .
functions:
  - {name: fib, handler: th:fib, kind: cpu}
  - {name: slow, handler: th:slow, kind: io}
'''


@pytest.fixture(scope="module")
def dockerd():
    """A docker daemon for this module (:func:`docker_mod.daemon`): the one that answers, else one
    started here (and stopped); the live tests are skipped, saying why, when none can be had."""
    try:
        with docker_mod.daemon() as env:
            yield env.get("DOCKER_HOST")
    except docker_mod.DockerError as e:
        pytest.skip(str(e))


@pytest.fixture
def manifest(tmp_path):
    (tmp_path / "th.py").write_text(HANDLERS)
    (tmp_path / "m.yaml").write_text(MANIFEST)
    return load_manifest(tmp_path / "m.yaml")


def containers_left() -> list[str]:
    out = subprocess.run(["docker", "ps", "-a", "--filter", "name=tailgate-faas", "--format", "{{.Names}}"],
                         capture_output=True, text=True, timeout=30, check=True).stdout
    return out.split()


def run(manifest, body, interval_s=0.05):
    async def main():
        gw = Gateway(manifest, make_strategy("faasbatch", dispatch_interval_s=interval_s), sandbox="docker",
                     pool=Pool(max_per_function=5, max_total=10), grace_s=2.0)
        port = await gw.start(port=0)
        try:
            async with aiohttp.ClientSession() as s:
                out = await asyncio.wait_for(body(gw, s, f"http://127.0.0.1:{port}"), 60)
        finally:
            summary = await gw.stop()
        return out, summary

    out, summary = asyncio.run(main())
    assert containers_left() == [], "containers left after stop"
    return out, summary


async def post(s, url, fn, event):
    async with s.post(f"{url}/invoke/{fn}", json=event) as r:
        return r.status, await r.json()


def test_the_image_tar_holds_mount_points_and_the_hosts_usr_links():
    with tarfile.open(fileobj=BytesIO(docker_mod.image_tar())) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {"proc", "dev", "sys", "tmp", "etc"} <= set(members)
    for name in docker_mod.USR_LINKS:
        if os.path.islink(f"/{name}"):
            assert members[name].issym() and members[name].linkname == os.readlink(f"/{name}")
        else:
            assert members[name].isdir()


def test_no_docker_client_is_one_line(manifest, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SandboxError) as e:
        asyncio.run(make_backend("docker", manifest).start())
    assert "--sandbox docker" in str(e.value) and "docker client" in str(e.value) and "\n" not in str(e.value)


def test_no_daemon_is_one_line_saying_how_to_start_one(manifest, tmp_path, monkeypatch):
    if shutil.which("docker") is None:
        pytest.skip("no docker client")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(SandboxError) as e:
        asyncio.run(make_backend("docker", manifest).start())
    msg = str(e.value)
    assert "no docker daemon answers" in msg and "dockerd --bridge=none" in msg and "\n" not in msg


def test_an_image_that_cannot_be_made_is_one_line_with_dockers_message(dockerd, manifest):
    with pytest.raises(SandboxError) as e:
        asyncio.run(make_backend("docker", manifest, image="Not A Valid:Name").start())
    msg = str(e.value)
    assert msg.startswith("--sandbox docker: cannot create the image Not A Valid:Name (")
    assert "reference" in msg and "\n" not in msg


def test_fib_runs_in_a_container_with_a_measured_cold_start(dockerd, manifest, capsys):
    async def body(gw, s, url):
        return await asyncio.gather(*(post(s, url, "fib", {"n": 20}) for _ in range(3)))

    out, summary = run(manifest, body)
    err = capsys.readouterr().err
    assert "faas: sandbox docker: docker run (image tailgate-faas), no network" in err
    assert all(st == 200 and ans["result"] == 6765 for st, ans in out), out
    cold = max(ans["timing"]["cold_start_s"] for _, ans in out)
    assert cold > 0
    print(f"docker sandbox cold start: {cold * 1e3:.0f} ms")
    assert summary["sandbox"] == "docker" and summary["completed"] == 3 and summary["sandboxes"]["created"] == 1


def test_a_killed_container_fails_its_invocations_and_is_replaced(dockerd, manifest):
    async def body(gw, s, url):
        tasks = [asyncio.ensure_future(post(s, url, "slow", {"s": 5})) for _ in range(3)]
        for _ in range(1000):  # until the batch is in a sandbox
            busy = [sb for sb in gw.pool.sandboxes.values() if sb.busy == 3]
            if busy:
                break
            await asyncio.sleep(0.01)
        assert busy[0].container.startswith(f"tailgate-faas-{os.getpid()}-")
        pid = (await docker_mod.docker("inspect", "--format", "{{.State.Pid}}", busy[0].container)).strip()
        os.kill(int(pid), signal.SIGKILL)  # the zygote: the container's first process
        killed = await asyncio.gather(*tasks)
        after = await post(s, url, "slow", {"s": 0.01})
        return killed, after

    (killed, after), summary = run(manifest, body)
    for status, ans in killed:
        assert status == 502 and "closed its channel" in ans["error"] and "slow" in ans["error"], ans
    assert after[0] == 200 and after[1]["timing"]["cold_start_s"] > 0
    assert summary["sandbox_died"] == 3 and summary["failed"] == 3 and summary["completed"] == 1
    assert summary["sandboxes"]["created"] == 2


def test_containers_of_a_dead_gateway_are_removed_at_start(dockerd, manifest, capsys):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    asyncio.run(docker_mod.ensure_image(docker_mod.IMAGE))
    name = docker_mod.container_name(dead.pid, 7)
    subprocess.run(["docker", "create", "--name", name, docker_mod.IMAGE, "/bin/true"], capture_output=True,
                   check=True, timeout=30)

    async def main():
        b = make_backend("docker", manifest)
        await b.start()
        await b.stop()

    asyncio.run(main())
    assert name not in containers_left()
    assert "removed 1 container(s) of gateways that died" in capsys.readouterr().err


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("moto", "boto3")),
                    reason="moto/boto3 not installed")
def test_the_s3_function_does_real_io_from_a_container(dockerd, tmp_path):
    (tmp_path / "m.yaml").write_text(f"path: [{EXAMPLES}]\nfunctions:\n"
                                     "  - {name: s3io, handler: s3func:handler, kind: io, limits: {timeout_s: 30}}\n")
    proc = subprocess.Popen([*CLI, "faas", "serve", "--manifest", str(tmp_path / "m.yaml"), "--port", "0",
                             "--sandbox", "docker", "--dispatch-interval-s", "0.05", "--out", str(tmp_path / "out"),
                             "--s3", "local"], stderr=subprocess.PIPE, text=True)
    port, lines = None, []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and port is None:
            line = proc.stderr.readline()
            lines.append(line)
            if "listening on" in line:
                port = int(line.split("http://127.0.0.1:")[1].split()[0])
            elif not line and proc.poll() is not None:
                break
        assert port is not None, "".join(lines) + proc.stderr.read()
        answers = []

        def call(k):
            req = urllib.request.Request(f"http://127.0.0.1:{port}/invoke/s3io", data=json.dumps(
                {"size_bytes": 4096 + k}).encode(), headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=60) as r:
                    answers.append((r.status, json.loads(r.read())))
            except urllib.error.HTTPError as e:
                answers.append((e.code, json.loads(e.read())))

        threads = [threading.Thread(target=call, args=(k,)) for k in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        rc = proc.wait(30)
        err = proc.stderr.read()
    assert rc == 0, err
    assert "docker run (image tailgate-faas), host network" in "".join(lines)
    assert sorted(a["result"]["get_bytes"] for _, a in answers) == [4096, 4097], answers
    assert all(a["timing"]["cold_start_s"] >= 0 for _, a in answers)
    assert containers_left() == []
