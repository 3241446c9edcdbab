"""FaaSBatch's real I/O: a local S3 server, the transparent client-reuse hook, the open-loop load client.

:mod:`tailgate.faas.io.s3server` starts and stops an S3-compatible server on 127.0.0.1 (moto's
server mode); :mod:`tailgate.faas.io.reuse` memoizes boto3/botocore client construction inside a
sandbox process for unchanged Lambda-style code; :mod:`tailgate.faas.io.load` replays a trace
against a gateway's ``/invoke/{function}`` in open loop and reports its own send lag.
"""
