"""Real I/O for FaaSBatch: the local S3 server, the transparent client-reuse hook, the I/O example functions.

Everything talks to a real moto S3 server on 127.0.0.1 through real boto3; the server is stopped
whatever happens (module fixture, context manager)."""

from __future__ import annotations

import importlib.util
import socket
import sys
import uuid
from pathlib import Path

import boto3
import botocore.session
import pytest

from tailgate.core.errors import ArgError
from tailgate.faas.io import reuse
from tailgate.faas.io.s3server import S3Server, S3ServerError

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "faas"


def _example(name: str):
    spec = importlib.util.spec_from_file_location(f"faas_example_{name}", EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def s3():
    with S3Server(ready_timeout_s=30) as server:
        yield server
    assert not server.running


@pytest.fixture(autouse=True)
def aws_env(monkeypatch, tmp_path, s3):
    """Credentials for the local server only: nothing read from ~/.aws, no instance-metadata lookups."""
    for k, v in s3.endpoint_env().items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)  # a default session made from this environment
    yield
    reuse.disable()


def test_server_answers_real_put_and_get(s3):
    assert s3.running and s3.endpoint_url.startswith("http://127.0.0.1:") and s3.start_s < 30
    c = s3.client()
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    c.create_bucket(Bucket=bucket)
    body = bytes(range(256)) * 256  # 64 KiB
    c.put_object(Bucket=bucket, Key="k", Body=body)
    assert c.get_object(Bucket=bucket, Key="k")["Body"].read() == body
    assert [o["Key"] for o in c.list_objects_v2(Bucket=bucket)["Contents"]] == ["k"]


def test_server_stops_and_frees_its_port():
    server = S3Server().start()
    port, pid = server.port, server.proc.pid
    server.stop()
    server.stop()  # twice is harmless
    assert not server.running
    with pytest.raises(ProcessLookupError):
        import os

        os.kill(pid, 0)
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0


def test_server_start_failures_are_one_line(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(S3ServerError, match=f"cannot listen on 127.0.0.1:{port}"):
            S3Server(port=port).start()
    monkeypatch.setattr(sys, "executable", "/bin/false")  # a child that exits at once
    server = S3Server(ready_timeout_s=5)
    with pytest.raises(S3ServerError, match="exited with code 1 before it answered"):
        server.start()
    assert not server.running
    with pytest.raises(ArgError, match="ready_timeout_s"):
        S3Server(ready_timeout_s=0)


def test_hook_hits_return_the_same_client(s3):
    original = botocore.session.Session.create_client
    with reuse.reused() as hook:
        assert botocore.session.Session.create_client is not original
        a = boto3.client("s3", endpoint_url=s3.endpoint_url)
        b = boto3.client("s3", endpoint_url=s3.endpoint_url)
        assert a is b and (hook.hits, hook.misses) == (1, 1)
        c = boto3.client("s3", s3.endpoint_env()["AWS_DEFAULT_REGION"], endpoint_url=s3.endpoint_url)  # positional
        assert c is not a  # region None (from the environment) and a region given are different arguments
        assert boto3.client("s3", region_name=s3.endpoint_env()["AWS_DEFAULT_REGION"],
                            endpoint_url=s3.endpoint_url) is c  # positional and keyword: one key
        assert (hook.hits, hook.misses) == (2, 2)
        # a fresh session with the same configuration is the same factory (identity="config")
        d = boto3.session.Session().client("s3", endpoint_url=s3.endpoint_url)
        assert d is a and hook.hits == 3
        # the reused client does real I/O
        bucket = f"h-{uuid.uuid4().hex[:12]}"
        a.create_bucket(Bucket=bucket)
        b.put_object(Bucket=bucket, Key="x", Body=b"y" * 1000)
        assert d.get_object(Bucket=bucket, Key="x")["Body"].read() == b"y" * 1000
    assert botocore.session.Session.create_client is original
    assert boto3.client("s3", endpoint_url=s3.endpoint_url) is not a  # disabled: built afresh


def test_hook_keys_region_endpoint_credentials_and_identity(s3):
    with reuse.reused() as hook:
        base = boto3.client("s3", region_name="us-east-1", endpoint_url=s3.endpoint_url)
        other_region = boto3.client("s3", region_name="eu-west-1", endpoint_url=s3.endpoint_url)
        other_endpoint = boto3.client("s3", region_name="us-east-1", endpoint_url="http://127.0.0.1:1")
        other_creds = boto3.session.Session(aws_access_key_id="other", aws_secret_access_key="x").client(
            "s3", region_name="us-east-1", endpoint_url=s3.endpoint_url)
        explicit = boto3.client("s3", region_name="us-east-1", endpoint_url=s3.endpoint_url,
                                aws_access_key_id="k2", aws_secret_access_key="secret2")
        objs = [base, other_region, other_endpoint, other_creds, explicit]
        assert len({id(o) for o in objs}) == 5 and hook.misses == 5 and hook.hits == 0
        assert all("secret2" not in repr(k) for k in hook.keys())  # secrets only as a digest
        # a Config compares by its options, not by object
        from botocore.config import Config

        x = boto3.client("s3", endpoint_url=s3.endpoint_url, config=Config(retries={"max_attempts": 2}))
        y = boto3.client("s3", endpoint_url=s3.endpoint_url, config=Config(retries={"max_attempts": 2}))
        z = boto3.client("s3", endpoint_url=s3.endpoint_url, config=Config(retries={"max_attempts": 3}))
        assert x is y and z is not x
    with reuse.reused(identity="object") as hook:
        a = boto3.session.Session().client("s3", endpoint_url=s3.endpoint_url)
        b = boto3.session.Session().client("s3", endpoint_url=s3.endpoint_url)
        assert a is not b and hook.misses == 2
        assert boto3.client("s3", endpoint_url=s3.endpoint_url) is boto3.client("s3", endpoint_url=s3.endpoint_url)


def test_hook_threads_of_one_batch_share_one_build(s3):
    import threading

    got, barrier = [], threading.Barrier(8)

    def invocation():
        barrier.wait()
        got.append(boto3.client("s3", region_name="ap-southeast-1", endpoint_url=s3.endpoint_url))

    with reuse.reused() as hook:
        threads = [threading.Thread(target=invocation) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert len(got) == 8 and len({id(c) for c in got}) == 1
        assert (hook.misses, hook.hits) == (1, 7)


def test_hook_evicts_at_its_bound_and_counts(s3):
    with reuse.reused(capacity=2) as hook:
        r1 = boto3.client("s3", region_name="us-east-1", endpoint_url=s3.endpoint_url)
        boto3.client("s3", region_name="us-west-1", endpoint_url=s3.endpoint_url)
        boto3.client("s3", region_name="us-west-2", endpoint_url=s3.endpoint_url)  # evicts us-east-1 (LRU)
        assert hook.evictions == 1 and len(hook.cache) == 2
        assert boto3.client("s3", region_name="us-east-1", endpoint_url=s3.endpoint_url) is not r1
        assert hook.counters() == {"policy": "lru", "capacity": 2, "identity": "config", "hits": 0, "misses": 4,
                                   "evictions": 2, "held": 2}
        # resources are memoized too, and their inner client is not counted
        res1 = boto3.resource("s3", endpoint_url=s3.endpoint_url)
        res2 = boto3.resource("s3", endpoint_url=s3.endpoint_url)
        assert res1 is res2 and hook.misses == 5 and hook.hits == 1
    with pytest.raises(ArgError, match="policy"):
        reuse.enable(policy="fifo")
    assert reuse.current() is None


def test_s3func_does_real_io_and_the_hook_saves_construction(s3):
    s3func = _example("s3func")
    bucket = f"f-{uuid.uuid4().hex[:12]}"
    r = s3func.handler({"bucket": bucket, "size_bytes": 65536, "delete": False, "key": "obj"}, None)
    assert r["put_bytes"] == r["get_bytes"] == 65536 and r["bucket"] == bucket
    assert all(r[k] > 0 for k in ("client_ms", "put_ms", "get_ms", "total_ms"))
    assert s3.client().head_object(Bucket=bucket, Key="obj")["ContentLength"] == 65536
    r = s3func.handler({"bucket": bucket, "size_bytes": 0, "endpoint_url": s3.endpoint_url}, None)
    assert r["get_bytes"] == 0 and r["delete_ms"] > 0
    with reuse.reused() as hook:
        first = s3func.handler({"bucket": bucket}, None)
        second = s3func.handler({"bucket": bucket}, None)
        assert (hook.misses, hook.hits) == (1, 1) and second["get_bytes"] == 65536
        assert second["client_ms"] < first["client_ms"]
    with pytest.raises(ValueError, match="size_bytes"):
        s3func.handler({"size_bytes": -1}, None)


def test_s3func_without_endpoint_and_s3construct(monkeypatch, s3):
    s3func = _example("s3func")
    monkeypatch.delenv("S3_ENDPOINT_URL")
    with pytest.raises(ValueError, match="no S3 endpoint"):
        s3func.handler({}, None)
    r = _example("s3construct").handler({}, None)
    assert r["exec_ms"] > 0 and set(r) == {"exec_ms", "mem_used_mb"}
