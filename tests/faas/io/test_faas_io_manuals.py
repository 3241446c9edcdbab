"""The faas.io modules' manuals: every declared argument has a unit and help, the reuse example runs as written."""

from __future__ import annotations

import re
import textwrap

import boto3
import pytest

from tailgate.core.args import undocumented
from tailgate.faas.io import load, reuse, s3server


@pytest.mark.parametrize("mod, decl", [(s3server, s3server.S3SERVER_ARGS), (reuse, reuse.REUSE_ARGS),
                                       (load, load.LOAD_ARGS)])
def test_arguments_documented_in_the_manual(mod, decl):
    assert undocumented(decl) == []
    assert "Arguments" in mod.__doc__ and "{" + "args}" not in mod.__doc__
    for a in decl:
        assert a.name in mod.__doc__


def test_reuse_manual_example_runs(monkeypatch, tmp_path):
    for k, v in {"AWS_ACCESS_KEY_ID": "t", "AWS_SECRET_ACCESS_KEY": "t", "AWS_EC2_METADATA_DISABLED": "true",
                 "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(boto3, "DEFAULT_SESSION", None)
    block = reuse.__doc__.split("Example (needs boto3", 1)[1].split("::\n", 1)[1]
    code = textwrap.dedent(block)
    lines = [ln for ln in code.strip().splitlines()]
    expect = re.search(r"#\s*(\(.*\))", lines[-2]).group(1)
    ns = {"reuse": reuse, "boto3": boto3}
    try:
        exec("\n".join(lines[:-2]), ns)
        assert repr(eval(lines[-2].split("#")[0], ns)) == expect
    finally:
        exec(lines[-1], ns)
    assert reuse.current() is None
