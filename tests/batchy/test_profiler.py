"""The module profiler: it recovers a known cost, its file round-trips and merges, the command's errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tailgate.batchy.profiler import fixtures, harness, store
from tailgate.cli import app
from tailgate.core.errors import ArgError


@pytest.fixture(autouse=True)
def profile_file(tmp_path, monkeypatch):
    """Every test gets its own profile file: nothing touches ~/.cache."""
    p = tmp_path / "cache" / "profile.json"
    monkeypatch.setenv(store.ENV_VAR, str(p))
    return p


def test_bypass_known_cost_is_recovered():
    t0, t1 = 3000.0, 200.0
    e = harness.profile_module("Bypass", max_batch=12, reps=150, args={"t0_ns": t0, "t1_ns": t1})
    # Bypass spins a little past its deadline (one more clock read): T_0 a bit above t0
    assert e["T_0"] == pytest.approx(t0, rel=0.25, abs=300)
    assert e["T_1"] == pytest.approx(t1, rel=0.15)
    assert e["r2"] > 0.9
    assert e["stat"] == "median"
    assert [p[0] for p in e["points"]] == list(range(1, 13))
    assert e["batches"] == [150] * 12
    assert e["overhead_ns"] > 0


def test_real_modules_cost_something():
    for name in ("IPv4Lookup", "DecTTL"):
        e = harness.profile_module(name, max_batch=16, reps=200)
        assert e["T_0"] >= 0 and e["T_1"] > 0, (name, e["points"])
        assert 0.0 <= e["r2"] <= 1.0


def test_fixtures_hit_the_real_work():
    # the lookup's packets all have routes, the ACL's all match a rule at some depth
    fx = fixtures.fixture("IPv4Lookup")
    out, _ = _drive(fx)
    assert sum(len(v) for v in out.values()) == len(fx.lengths) and fx.module.drop_counts.sum() == 0
    assert len(out) > 1  # spread over several next hops
    fx = fixtures.fixture("ACL")
    _drive(fx)
    hits = fx.module.hits
    assert fx.module.table.n == 700 and hits[-1] == 0 and hits[:-1].sum() == len(fx.lengths)
    assert hits[:-1].nonzero()[0].mean() > 50  # packets walk past many rules


def _drive(fx):
    from tailgate.dataplane.drive import drive

    return drive(fx.module, [fx.frames[k, : fx.lengths[k]].tobytes() for k in range(len(fx.lengths))])


def test_fit_is_clamped_and_exact_on_a_line():
    assert harness.fit_linear([(1, 12.0), (2, 14.0), (3, 16.0)]) == pytest.approx((10.0, 2.0, 1.0))
    t0, t1, r2 = harness.fit_linear([(1, 10.0), (2, 8.0), (3, 6.0)])  # falling: flat line at the mean
    assert (t0, t1) == pytest.approx((8.0, 0.0)) and r2 == 0.0
    t0, t1, _ = harness.fit_linear([(1, 1.0), (2, 4.0), (3, 7.0)])  # negative intercept: through 0
    assert t0 == 0.0 and t1 > 0


def test_profile_writes_merges_and_round_trips(profile_file):
    profile_file.parent.mkdir(parents=True)
    profile_file.write_text(json.dumps({"Foo": {"T_0": 1.5, "T_1": 2.5, "stat": "average"}}))
    new = harness.profile(["DecTTL", "decttl"], max_batch=4, reps=20)
    assert list(new) == ["DecTTL"]
    on_disk = store.load_profile()
    assert on_disk["Foo"] == {"T_0": 1.5, "T_1": 2.5, "stat": "average"}  # kept
    assert on_disk["DecTTL"] == json.loads(json.dumps(new["DecTTL"]))
    assert store.module_cost("Foo", on_disk) == (1.5, 2.5)
    assert store.module_cost("DecTTL", on_disk) == (new["DecTTL"]["T_0"], new["DecTTL"]["T_1"])
    again = harness.profile(["Merge"], max_batch=4, reps=20)
    assert set(store.load_profile()) == {"Foo", "DecTTL", "Merge"} and list(again) == ["Merge"]


def test_env_var_and_default_path(profile_file, monkeypatch, tmp_path):
    assert store.profile_path() == profile_file
    assert store.load_profile() == {}  # no file yet
    monkeypatch.delenv(store.ENV_VAR)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert store.profile_path() == tmp_path / "home" / ".cache" / "tailgate" / "profile.json"


def test_explicit_out_wins_over_the_env_var(profile_file, tmp_path):
    out = tmp_path / "elsewhere.json"
    harness.profile(["Timestamp"], max_batch=3, reps=10, out=out)
    assert "Timestamp" in store.load_profile(out) and not profile_file.exists()


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"DecTTL": 3}', '{"DecTTL": {"T_0": 1}}',
                                  '{"DecTTL": {"T_0": -1, "T_1": 2}}', '{"DecTTL": {"T_0": "1", "T_1": 2}}'])
def test_damaged_file_is_an_error_naming_it(profile_file, text):
    profile_file.parent.mkdir(parents=True)
    profile_file.write_text(text)
    with pytest.raises(ArgError, match=str(profile_file)) as ei:
        store.load_profile()
    assert "\n" not in str(ei.value)
    with pytest.raises(ArgError, match=str(profile_file)):  # and nothing is measured or overwritten
        harness.profile(["DecTTL"], max_batch=2, reps=1)
    assert profile_file.read_text() == text


def test_module_cost_of_a_missing_class_is_none():
    assert store.module_cost("NoSuchModule", {}) is None
    assert store.module_cost("NoSuchModule", {"DecTTL": {"T_0": 1, "T_1": 2}}) is None
    assert store.module_cost("DecTTL", {"DecTTL": {"T_0": 1, "T_1": 2}}) == (1.0, 2.0)


def test_unknown_module_and_bad_max_batch_are_arg_errors():
    with pytest.raises(ArgError, match=r"'Nope'.*known: ACL, Bypass"):
        harness.profile(["DecTTL", "Nope"])
    for bad in (1, 0, 1025, 2.5, True):
        with pytest.raises(ArgError, match="max_batch"):
            harness.profile_module("DecTTL", max_batch=bad)


def one_error_line(res) -> str:
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in res.output, res.output
    assert err.startswith("error: "), err
    return err


def test_cli_errors_are_one_line_exit_2(profile_file):
    r = CliRunner()
    res = r.invoke(app, ["profile", "DecTTL", "NoSuchNF"])
    assert res.exit_code == 2
    assert "NoSuchNF" in one_error_line(res) and "IPv4Lookup" in res.stderr
    for mb in ("1", "2000"):
        res = r.invoke(app, ["profile", "DecTTL", "--max-batch", mb])
        assert res.exit_code == 2 and "--max-batch" in one_error_line(res)
    profile_file.parent.mkdir(parents=True)
    profile_file.write_text("{oops")
    res = r.invoke(app, ["profile", "DecTTL"])
    assert res.exit_code == 2 and str(profile_file) in one_error_line(res)


def test_cli_json_and_table(tmp_path):
    out = tmp_path / "p.json"
    res = CliRunner().invoke(app, ["profile", "MACRewrite", "--max-batch", "4", "--seconds", "0.2", "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    entries = json.loads(res.stdout)
    assert list(entries) == ["MACRewrite"] and entries["MACRewrite"]["T_0"] >= 0
    assert store.load_profile(out)["MACRewrite"] == entries["MACRewrite"]
    res = CliRunner().invoke(app, ["profile", "SetMetadata", "--max-batch", "4", "--seconds", "0.2", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "SetMetadata" in res.stdout and "controllable" in res.stdout and f"profile: {out}" in res.stdout
    assert set(store.load_profile(out)) == {"MACRewrite", "SetMetadata"}
