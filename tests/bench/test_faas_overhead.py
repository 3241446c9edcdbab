"""``tailgate faas overhead``: a no-op through the live faasbatch gateway, accounted on both sides."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from tailgate.bench.faas_overhead import (
    OVERHEAD_ARGS,
    analyse,
    connections_for,
    run_overhead,
)
from tailgate.cli.main import app
from tailgate.core.args import undocumented
from tailgate.core.errors import ArgError
from tailgate.faas.io.load import STATUSES, LoadConfig, Records, plan, poisson_trace


def test_quick_run_accounts_every_invocation_and_measures_the_overhead(tmp_path):
    r = run_overhead(200, 2, 0.2, tmp_path, say=lambda text: None)
    c, g, o = r["client"], r["gateway"], r["overhead_ms"]
    assert c["invocations"] == c["sent"] + c["unsent"]
    assert c["sent"] == c["ok"] + c["failed"] + c["timeout"] + c["error"]
    assert g["accepted"] == g["completed"] + g["failed"] + g["abandoned"] + g["in_flight"]
    assert g["accepted"] == c["sent"] and g["completed"] == c["ok"] and r["nothing_lost"], r["lost_reasons"]
    # a no-op waits for its tick: at p50 about half an interval; generous for a busy 2-core machine
    assert 0 <= o["p50"] <= r["bound_ms"] + 300 and o["p98"] >= o["p50"]
    assert r["bound_ms"] == pytest.approx(202.0)
    assert r["achieved_rate_per_s"] > 0 and set(r["send_lag_ms"]) == {"p50", "p99", "max"}
    assert isinstance(r["client_trustworthy"], bool) and r["client_verdict"]
    saved = json.loads((tmp_path / "overhead.json").read_text())
    assert saved["overhead_ms"] == o and saved["holds"] == r["holds"]
    assert (tmp_path / "serve" / "summary.json").exists() and (tmp_path / "load" / "invocations.csv").exists()


def test_losses_are_named_not_hidden():
    p = plan(poisson_trace(100, 0.1, seed=1), LoadConfig())
    rec = Records(p)
    n = len(p)
    rec.status[:] = STATUSES.index("ok")
    rec.status[0] = STATUSES.index("timeout")
    rec.sent_s[:] = p.due_s
    rec.done_s[:] = p.due_s + 0.1
    rec.timing["exec_ms"][:] = 1.0
    load = {"invocations": n, "unsent": 0, "ok": n - 1, "failed": 0, "timeout": 1, "error": 0,
            "send_lag_us": {"p50": 10.0, "p99": 20.0, "max": 30.0}, "trustworthy": True, "verdict": "ok",
            "scheduled_rate_per_s": 100.0}
    gw = {"accepted": n - 1, "completed": n - 1, "failed": 0, "abandoned": 0, "in_flight": 0}
    r = analyse(load, rec, gw, 0.2)
    assert not r["nothing_lost"] and not r["holds"]
    assert any("1 timed out" in s for s in r["lost_reasons"])
    assert any(f"accepted {n - 1} of {n} sent" in s for s in r["lost_reasons"])
    assert r["overhead_ms"]["p50"] == pytest.approx(99.0)
    assert r["p50_within_bound"]
    ok = dict(load, ok=n, timeout=0)
    rec.status[0] = STATUSES.index("ok")
    r = analyse(ok, rec, dict(gw, accepted=n, completed=n), 0.2)
    assert r["nothing_lost"] and r["holds"]
    assert np.isclose(r["send_lag_ms"]["p99"], 0.02)


def test_connections_cover_the_invocations_in_flight():
    assert connections_for(2000, 0.2) >= 2000 * 0.2 * 2
    assert connections_for(1, 0.01) >= 64


def test_bad_arguments_are_one_line(tmp_path):
    assert undocumented(OVERHEAD_ARGS) == []
    with pytest.raises(ArgError, match="rate_per_s"):
        run_overhead(0, 1, 0.2, tmp_path, say=lambda text: None)
    res = CliRunner().invoke(app, ["faas", "overhead", "--interval", "0", "--out", str(tmp_path / "o")])
    assert res.exit_code == 2 and res.output.startswith("error:") and "interval_s" in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1
    f = tmp_path / "file"
    f.write_text("")
    res = CliRunner().invoke(app, ["faas", "overhead", "--out", str(f)])
    assert res.exit_code == 2 and "not a directory" in res.output
