"""The original's "I/O" function: construct an S3 client, send no request (for the side by side).

Lambda-style ``handler(event, context)``. As the reference's function did (reference §5), it builds
an S3 client from fixed parameters (region ap-southeast-1, SSL off; ``event["endpoint_url"]`` or
``$S3_ENDPOINT_URL`` if given, so it can point at the local server) and reports the construction
time as its execution time and the process's resident-memory change (psutil, when installed) as
its memory used. It issues no request: what it measures is client construction, which is what
the original's I/O results measured (reference §12). ``examples/faas/s3func.py`` does the real I/O.

Returns ``{"exec_ms": ..., "mem_used_mb": ... or None}``.
"""

from __future__ import annotations

import os
import time

import boto3

try:
    import psutil
except ImportError:  # memory is then not reported
    psutil = None


def handler(event, context):
    event = event or {}
    endpoint = event.get("endpoint_url") or os.environ.get("S3_ENDPOINT_URL") or None
    proc = psutil.Process() if psutil is not None else None
    rss0 = proc.memory_info().rss if proc is not None else 0
    t0 = time.perf_counter()
    boto3.client("s3", region_name="ap-southeast-1", use_ssl=False, endpoint_url=endpoint,
                 aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                 aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
    exec_ms = (time.perf_counter() - t0) * 1e3
    mem = (proc.memory_info().rss - rss0) / 2**20 if proc is not None else None
    return {"exec_ms": exec_ms, "mem_used_mb": mem}
