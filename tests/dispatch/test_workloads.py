"""Workloads: the named catalogue, service-time distributions and YAML workload files."""
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from tailgate.core.errors import ArgError
from tailgate.dispatch.workloads import LONG, SHORT, RequestType, Workload, get_workload, load_workload


@pytest.mark.parametrize(
    "name, mean_us, rps_at_full",
    [("disp2", 50.5, 277.2e3), ("sbim2", 2.9975, 4.67e6), ("tpcc", 19.068, 734e3), ("rocksdb", 318.25, 44e3)],
)
def test_mean_service_and_full_load_rate_match_the_reference(name, mean_us, rps_at_full):
    wl = get_workload(name)
    assert wl.mean_service_ns == pytest.approx(mean_us * 1000, rel=1e-6)
    assert wl.rate_rps(1.0, 14) == pytest.approx(rps_at_full, rel=0.002)


def test_bad_workloads_are_named():
    with pytest.raises(ArgError, match="type 'A' has service time -1"):
        Workload("w", (RequestType("A", SHORT, -1, 1.0),))
    with pytest.raises(ArgError, match="shares add up to 0.5"):
        Workload("w", (RequestType("A", SHORT, 10, 0.5),))
    with pytest.raises(ArgError, match=r"load 1.6 is outside \(0, 1.5\]"):
        get_workload("disp2").rate_rps(1.6, 14)


# --- service-time distributions ------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sched" / "bimodal.yaml"


def test_existing_positional_construction_defaults_to_fixed():
    t = RequestType("A", SHORT, 1_000, 1.0)
    assert (t.dist, t.sigma, t.samples_ns) == ("fixed", 0.0, ())
    assert get_workload("disp2").types[0].dist == "fixed"


def test_fixed_is_exact_and_at_least_one_ns():
    rng = np.random.default_rng(0)
    assert set(RequestType("A", SHORT, 1_500, 1.0).sample_ns(rng, 100).tolist()) == {1_500}
    tiny = RequestType("A", SHORT, 0.2, 1.0).sample_ns(rng, 10)
    assert tiny.dtype == np.int64 and set(tiny.tolist()) == {1}


def test_exponential_has_the_mean_and_unit_coefficient_of_variation():
    x = RequestType("A", SHORT, 10_000, 1.0, "exp").sample_ns(np.random.default_rng(1), 200_000)
    assert x.mean() == pytest.approx(10_000, rel=0.01)
    assert x.std() / x.mean() == pytest.approx(1.0, rel=0.02)
    assert x.min() >= 1


def test_lognormal_keeps_the_mean_and_its_log_spread_is_sigma():
    x = RequestType("A", SHORT, 100_000, 1.0, "lognormal", sigma=0.5).sample_ns(np.random.default_rng(2), 400_000)
    assert x.mean() == pytest.approx(100_000, rel=0.01)
    assert np.log(x).std() == pytest.approx(0.5, rel=0.01)
    # The median of a lognormal sits below its mean by exp(sigma^2 / 2).
    assert np.median(x) == pytest.approx(100_000 / math.exp(0.125), rel=0.01)


def test_empirical_draws_only_its_samples_uniformly():
    t = RequestType.empirical("A", SHORT, [1_000, 2_000, 6_000], 1.0)
    assert t.service_ns == 3_000 and t.dist == "empirical"
    x = t.sample_ns(np.random.default_rng(3), 90_000)
    values, counts = np.unique(x, return_counts=True)
    assert values.tolist() == [1_000, 2_000, 6_000]
    assert counts.min() > 29_000 and counts.max() < 31_000


@pytest.mark.parametrize(
    "bad, message",
    [
        (RequestType("A", SHORT, 1_000, 1.0, "gamma"), "type 'A': unknown service-time distribution 'gamma'"),
        (RequestType("A", SHORT, 1_000, 1.0, "lognormal"), "type 'A': lognormal needs a shape sigma > 0"),
        (RequestType("A", SHORT, 1_000, 1.0, "empirical"), "type 'A': empirical needs a non-empty list"),
        (RequestType("A", SHORT, 1_000, 1.0, "empirical", samples_ns=(1_000, -1)), "must all be > 0"),
        (RequestType("A", SHORT, 1_000, 1.0, "empirical", samples_ns=(2_000,)), "samples' mean is 2000 ns"),
        (RequestType("A", SHORT, math.inf, 1.0), "service time inf ns"),
    ],
)
def test_bad_distributions_are_named(bad, message):
    with pytest.raises(ArgError, match=message.replace("(", r"\(")):
        Workload("w", (bad,))


def test_duplicate_ids_name_both_types():
    with pytest.raises(ArgError, match="'A' and 'B' are both 1"):
        Workload("w", (RequestType("A", SHORT, 1, 0.5), RequestType("B", SHORT, 2, 0.5)))


# --- YAML workload files -------------------------------------------------------------------------


def test_the_example_file_loads_by_path_and_through_get_workload():
    wl = load_workload(EXAMPLE)
    assert get_workload(str(EXAMPLE)) == wl
    assert wl.name == "bimodal"
    short, long_ = wl.types
    assert (short.name, short.type_id, short.service_ns, short.ratio, short.dist) == ("SHORT", SHORT, 1_000, 0.9, "fixed")
    assert (long_.type_id, long_.service_ns, long_.dist, long_.sigma) == (LONG, 100_000, "lognormal", 1.0)
    assert wl.mean_service_ns == pytest.approx(10_900)


def write(tmp_path, text, name="w.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_yaml_forms(tmp_path):
    path = write(
        tmp_path,
        """
types:
  - {name: A, id: 1, service_ns: 1e3, ratio: 0.5, dist: exp}
  - {name: B, id: 7, ratio: 0.25, dist: empirical, samples_us: [1, 3]}
  - {name: C, id: 8, service_us: 2.0, ratio: 0.25, dist: empirical, samples_ns: [1990, 2000]}
""",
        name="mine.yml",
    )
    wl = get_workload(str(path))
    assert wl.name == "mine"  # the file's stem when the file gives no name
    a, b, c = wl.types
    assert (a.service_ns, a.dist) == (1_000, "exp")  # PyYAML reads 1e3 as a string; it still counts
    assert (b.service_ns, b.samples_ns) == (2_000, (1_000, 3_000))
    assert (c.service_ns, c.samples_ns) == (2_000, (1_990, 2_000))  # stated mean within 1 %


GOOD = "{name: A, id: 1, service_us: 1, ratio: 0.5}"


@pytest.mark.parametrize(
    "text, fragment",
    [
        ("types: [{name: A, id: 1, service_us: 1}]", "type 'A': field 'ratio' is missing"),
        ("types: [{name: A, id: 1, ratio: 1}]", "type 'A': field 'service_us' (or 'service_ns') is missing"),
        ("types: [{id: 1, service_us: 1, ratio: 1}]", "type '#1': field 'name' is missing"),
        ("types: [{name: A, service_us: 1, ratio: 1}]", "type 'A': field 'id' is missing"),
        ("types: [{name: A, id: 1, service_us: -1, ratio: 1}]", "type 'A': field 'service_us' is -1; it must be > 0"),
        ("types: [{name: A, id: 1, service_ns: 0, ratio: 1}]", "type 'A': field 'service_ns' is 0; it must be > 0"),
        ("types: [{name: A, id: 1, service_ns: .nan, ratio: 1}]", "type 'A': field 'service_ns' must be finite"),
        ("types: [{name: A, id: 1, service_ns: soon, ratio: 1}]", "type 'A': field 'service_ns' must be a number"),
        ("types: [{name: A, id: 1, service_us: 1, ratio: -1}]", "type 'A': field 'ratio' is -1"),
        ("types: [{name: A, id: 1, service_us: 1, ratio: 1, dist: gamma}]", "type 'A': field 'dist' is 'gamma'"),
        ("types: [{name: A, id: 1, service_us: 1, ratio: 1, dist: lognormal}]", "type 'A': field 'sigma' is missing"),
        ("types: [{name: A, id: 1, service_us: 1, ratio: 1, sigma: 2}]", "type 'A': field 'sigma' belongs to"),
        ("types: [{name: A, id: 1, service_us: 1, ratio: 1, dist: empirical}]", "type 'A': dist: empirical needs"),
        ("types: [{name: A, id: 1, service_us: 1, ratio: 1, samples_us: [1]}]", "type 'A': samples belong to"),
        ("types: [{name: A, id: 1, ratio: 1, dist: empirical, samples_us: []}]", "type 'A': field 'samples_us' is an empty"),
        ("types: [{name: A, id: 1, service_us: 1, service_ns: 1000, ratio: 1}]", "type 'A': give one of 'service_us'"),
        ("types: [{name: A, id: 1, service_us: [1, 2], ratio: 1}]", "type 'A': the service time must be one number"),
        ("types: [{name: A, id: 1, service_us: 1, ratio: 1, colour: red}]", "type 'A': unknown field 'colour'"),
        ("types: [{name: A, id: one, service_us: 1, ratio: 1}]", "type 'A': field 'id' must be an integer"),
        ("types: [{name: A, id: 300, service_us: 1, ratio: 1}]", "type 'A' has id 300"),
        (f"types: [{GOOD}]", "shares add up to 0.5, not 1"),
        (f"types: [{GOOD}, {GOOD}]", "'A' and 'A' are both 1"),
        ("types: []", "field 'types' must be a non-empty list"),
        ("types: [3]", "type '#1': expected a mapping"),
        ("name: w", "field 'types' must be a non-empty list"),
        ("- 1\n- 2", "expected a mapping with 'name' and 'types', got list"),
        ("", "expected a mapping with 'name' and 'types', got NoneType"),
        (f"name: w\ntypes: [{GOOD}]\nrate: 5", "unknown field 'rate'"),
        ("types: [{name: A, id: 1,\n  service_us: 1", "not valid YAML at line"),
        ("a: b: c", "not valid YAML at line 1"),
    ],
)
def test_bad_yaml_raises_one_clear_error_naming_the_file(tmp_path, text, fragment):
    path = write(tmp_path, text)
    with pytest.raises(ArgError) as err:
        load_workload(path)
    message = str(err.value)
    assert message.startswith(str(path) + ":")
    assert fragment in message
    assert "\n" not in message


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(ArgError, match=r"nope\.yaml: no such workload file"):
        get_workload(str(tmp_path / "nope.yaml"))
    with pytest.raises(ArgError, match="cannot read the workload file"):
        load_workload(tmp_path)  # a directory
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ArgError, match=r"bin\.yaml: cannot read"):
        load_workload(tmp_path / "bin.yaml")


def test_a_name_that_is_not_a_path_is_still_looked_up_by_name():
    with pytest.raises(ArgError, match="or a .yaml file"):
        get_workload("disp9")
    assert get_workload("DISP2") is get_workload("disp2")


type_entries = st.fixed_dictionaries(
    {
        "service_ns": st.integers(1, 10**7),
        "weight": st.integers(1, 100),
        "dist": st.sampled_from(["fixed", "exp", "lognormal"]),
        "sigma": st.floats(0.1, 3.0),
    }
)


@settings(max_examples=60, deadline=None)
@given(st.lists(type_entries, min_size=1, max_size=8))
def test_a_workload_written_as_yaml_reads_back_equal(tmp_path_factory, entries):
    total = sum(e["weight"] for e in entries)
    types = []
    for i, e in enumerate(entries):
        sigma = e["sigma"] if e["dist"] == "lognormal" else 0.0
        types.append(RequestType(f"T{i}", i + 1, float(e["service_ns"]), e["weight"] / total, e["dist"], sigma))
    wl = Workload("roundtrip", tuple(types))
    doc = {"name": wl.name, "types": []}
    for t in wl.types:
        entry = {"name": t.name, "id": t.type_id, "service_ns": t.service_ns, "ratio": t.ratio, "dist": t.dist}
        if t.dist == "lognormal":
            entry["sigma"] = t.sigma
        doc["types"].append(entry)
    path = tmp_path_factory.mktemp("wl") / "w.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert load_workload(path) == wl
