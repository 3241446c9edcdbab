"""The I/O function: an S3 client, then real object I/O — a put and a get of ``size_bytes``.

Lambda-style ``handler(event, context)``. The event (every field optional):

============== ================================================================= ================
field          meaning                                                           default
============== ================================================================= ================
endpoint_url   the S3 server                                                     $S3_ENDPOINT_URL
region         the client's region                                               $AWS_DEFAULT_REGION or us-east-1
bucket         the bucket (created on first use)                                 tailgate-faas
key            the object key                                                    a fresh uuid
size_bytes     bytes put and got back (0 .. 64 MiB)                              65536
delete         delete the object afterwards (keeps the in-memory server small)   true
============== ================================================================= ================

It builds its client at every invocation with ``boto3.client("s3", ...)``, as unchanged Lambda
code does; the reuse hook (:mod:`tailgate.faas.io.reuse`), when the sandbox enables it, turns all
but the first of those into cache hits. It returns the sizes and the time of each step in ms:
``client_ms`` (construction), ``put_ms``, ``get_ms``, ``delete_ms`` (0 without delete),
``total_ms``, and ``put_bytes``/``get_bytes``; a get that does not return the bytes put raises.
Credentials come from the environment (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``; the
local server takes any: ``S3Server.endpoint_env()``).

    S3_ENDPOINT_URL=http://127.0.0.1:PORT python -c 'import s3func; print(s3func.handler({}, None))'
"""

from __future__ import annotations

import os
import time
import uuid

import boto3

MAX_SIZE_BYTES = 64 << 20


def handler(event, context):
    event = event or {}
    endpoint = event.get("endpoint_url") or os.environ.get("S3_ENDPOINT_URL")
    if not endpoint:
        raise ValueError("s3func: no S3 endpoint: give event['endpoint_url'] or set S3_ENDPOINT_URL")
    region = event.get("region") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    bucket = str(event.get("bucket", "tailgate-faas"))
    key = str(event.get("key") or f"obj-{uuid.uuid4().hex}")
    size = event.get("size_bytes", 65536)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_SIZE_BYTES:
        raise ValueError(f"s3func: size_bytes must be an integer in 0..{MAX_SIZE_BYTES}, got {size!r}")
    t0 = time.perf_counter()
    s3 = boto3.client("s3", region_name=region, endpoint_url=endpoint)
    t1 = time.perf_counter()
    body = os.urandom(size)
    try:
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    except s3.exceptions.NoSuchBucket:
        try:
            s3.create_bucket(Bucket=bucket)
        except (s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
            pass  # another invocation made it first
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    t2 = time.perf_counter()
    got = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    t3 = time.perf_counter()
    if got != body:
        raise RuntimeError(f"s3func: got {len(got)} bytes back for s3://{bucket}/{key}, not the {size} put")
    if event.get("delete", True):
        s3.delete_object(Bucket=bucket, Key=key)
    t4 = time.perf_counter()
    return {"bucket": bucket, "key": key, "put_bytes": size, "get_bytes": len(got),
            "client_ms": (t1 - t0) * 1e3, "put_ms": (t2 - t1) * 1e3, "get_ms": (t3 - t2) * 1e3,
            "delete_ms": (t4 - t3) * 1e3, "total_ms": (t4 - t0) * 1e3}
