"""A docker daemon on demand (:func:`tailgate.faas.live.docker.daemon`) and the profile's CPU part
in docker sandboxes (``tailgate faas profile --cpu-sandbox docker``): the daemon that answers is
used, one is started (root, dockerd) and cleaned up when none does, and each thing missing is one
line. Tests that need a daemon are skipped, saying why, when none can be had."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tailgate.faas.live import docker as docker_mod
from tailgate.faas.live.profile import build_profile, cpu_since
from tailgate.faas.sim import load_profile

ROOT = Path(__file__).resolve().parents[3]
CLI = [str(Path(sys.executable).with_name("tailgate"))]
MANIFEST = str(ROOT / "examples/faas/manifest.yaml")


def dockerd_pids_of(folder: str) -> list[int]:
    """The dockerd processes whose command line names ``folder`` (one started by :func:`daemon`)."""
    out = []
    for p in psutil.process_iter(["name", "cmdline"]):
        if p.info["name"] == "dockerd" and any(folder in a for a in p.info["cmdline"] or ()):
            out.append(p.pid)
    return out


def test_no_client_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(docker_mod.DockerError) as e, docker_mod.daemon():
        pass
    assert "no docker client (apt-get install docker.io)" in str(e.value) and "\n" not in str(e.value)


def test_no_answering_daemon_and_no_start_is_one_line(tmp_path, monkeypatch):
    if shutil.which("docker") is None:
        pytest.skip("no docker client (apt-get install docker.io)")
    missing = f"unix://{tmp_path}/none.sock"
    monkeypatch.setenv("DOCKER_HOST", missing)
    assert not docker_mod.daemon_answers()
    with pytest.raises(docker_mod.DockerError) as e, docker_mod.daemon(start=False):
        pass
    msg = str(e.value)
    assert f"no docker daemon answers at {missing}" in msg and "starting one was not asked" in msg
    assert "\n" not in msg
    assert os.environ["DOCKER_HOST"] == missing


def test_a_started_daemon_answers_and_is_gone_after(tmp_path, monkeypatch):
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        pytest.skip("no docker client or no dockerd (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("starting a docker daemon needs root")
    missing = f"unix://{tmp_path}/none.sock"
    monkeypatch.setenv("DOCKER_HOST", missing)
    said = []
    with docker_mod.daemon(say=said.append) as env:
        host = env["DOCKER_HOST"]
        folder = host.removeprefix("unix://").rsplit("/", 1)[0]
        assert host.startswith("unix:///tmp/tg-dockerd-") and os.path.isdir(folder)
        assert os.environ["DOCKER_HOST"] == host and docker_mod.daemon_answers()
        assert docker_mod.daemon_answers({**os.environ, **env})
        assert dockerd_pids_of(folder)
    assert any("starting dockerd" in s for s in said) and any("stopping" in s for s in said)
    assert os.environ["DOCKER_HOST"] == missing  # restored
    assert not os.path.exists(folder)
    assert dockerd_pids_of(folder) == []


def test_a_daemon_that_does_not_answer_in_time_is_one_line_and_cleaned_up(tmp_path, monkeypatch):
    if shutil.which("docker") is None or shutil.which("dockerd") is None:
        pytest.skip("no docker client or no dockerd (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip("starting a docker daemon needs root")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    monkeypatch.setattr(docker_mod, "DOCKERD_START_TIMEOUT_S", 0.0)
    said = []
    with pytest.raises(docker_mod.DockerError) as e, docker_mod.daemon(say=said.append):
        pass
    msg = str(e.value)
    assert msg.startswith("docker: dockerd did not answer within 0 s: ") and "\n" not in msg
    line = next(s for s in said if "starting dockerd at unix://" in s)
    folder = line.split("starting dockerd at unix://")[1].split()[0].rsplit("/", 1)[0]
    assert folder.startswith("/tmp/tg-dockerd-")
    assert not os.path.exists(folder) and dockerd_pids_of(folder) == []


def test_the_daemon_that_answers_is_used_as_is(monkeypatch):
    if shutil.which("docker") is None or not docker_mod.daemon_answers():
        pytest.skip("no docker daemon answers here")
    before = os.environ.get("DOCKER_HOST")
    with docker_mod.daemon(start=False) as env:
        assert env == {} and os.environ.get("DOCKER_HOST") == before


def test_a_bad_cpu_sandbox_is_one_line(tmp_path):
    r = subprocess.run([*CLI, "faas", "profile", "--manifest", MANIFEST, "--out", str(tmp_path / "p"),
                        "--cpu-sandbox", "vm"], check=False, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "--cpu-sandbox 'vm': must be one of process, bwrap, docker" in r.stderr


def test_the_profile_records_its_cpu_sandbox():
    samples = {"fib.12.exec_ms": [1.0], "fib.16.exec_ms": [5.0], "cpu.cold_start_ms": [200.0],
               "io.cold_start_ms": [50.0], "s3io.exec_ms": [9.0], "s3io.exec_cached_ms": [3.0]}
    for kind in ("process", "docker"):
        prof = build_profile(samples, "fib", "s3io", [12, 16], 1, cpu_sandbox=kind)
        assert prof["cpu"]["measured"]["cpu_sandbox"] == kind and prof["io"]["measured"]["cpu_sandbox"] == kind
        assert load_profile(prof) is prof
    assert build_profile(samples, "fib", "s3io", [12, 16], 1)["cpu"]["measured"]["cpu_sandbox"] == "process"


def test_cpu_since_counts_growth_and_whole_new_processes():
    # pid 1 grew 0.5 s, pid 2 appeared with 0.25 s (a new shim), pid 3 went away (not subtracted)
    assert cpu_since({1: 1.0, 3: 4.0}, {1: 1.5, 2: 0.25}) == pytest.approx(0.75)


@pytest.fixture(scope="module")
def daemon_env():
    try:
        with docker_mod.daemon() as env:
            yield env
    except docker_mod.DockerError as e:
        pytest.skip(str(e))


@pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("moto", "boto3")),
                    reason="moto/boto3 not installed")
def test_a_docker_cpu_profile(daemon_env, tmp_path):
    out = tmp_path / "prof"
    proc = subprocess.Popen([*CLI, "faas", "profile", "--manifest", MANIFEST, "--repeats", "1", "--fib-n", "12,16",
                             "--size-bytes", "1024", "--cpu-sandbox", "docker", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "cpu part in docker sandboxes" in err and "x 1 in docker sandboxes" in err
    prof = json.loads((out / "profile.json").read_text())
    assert load_profile(prof) is prof
    assert prof["cpu"]["measured"]["cpu_sandbox"] == "docker"
    assert len(prof["cpu"]["cold_start_ms"]["samples"]) == 1 and prof["cpu"]["cold_start_ms"]["samples"][0] > 0
    assert [n for n, _ in prof["cpu"]["exec_ms"]["anchors"]] == [12, 16]
    assert all(ms > 0 for _, ms in prof["cpu"]["exec_ms"]["anchors"])
    # the client, the daemon's processes and the container's zygote: CPU the machine spends on a start
    assert 0 < prof["cpu"]["cold_start_cpu_share"] <= 1
    assert len(prof["cpu"]["answer_ms"]["samples"]) == 1
    # the I/O part as before, in process sandboxes
    for key in ("cold_start_ms", "exec_ms", "exec_cached_ms"):
        assert len(prof["io"][key]["samples"]) == 1
    left = subprocess.run(["docker", "ps", "-a", "--filter", f"name=^{docker_mod.container_name(proc.pid, 0)[:-1]}",
                           "--format", "{{.Names}}"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert left.split() == [], "the profile's containers left after it"
