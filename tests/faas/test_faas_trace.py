"""The workload: the generator's shape and the Azure 2019/2021 loaders on small files (good and bad rows)."""
from __future__ import annotations

import numpy as np
import pytest

from tailgate.core.errors import ArgError
from tailgate.faas.trace import (
    REFERENCE_WINDOW_S,
    Trace,
    TraceError,
    draw_fib_n,
    generate,
    load_azure_2019,
    load_azure_2021,
    load_reference_window,
    load_trace,
)


@pytest.mark.parametrize("seed", [1, 2, 5432])
def test_two_head_functions_carry_about_97_percent(seed):
    t = generate(invocations=20_000, functions=7, seed=seed)
    assert len(t) == 20_000 and t.n_functions == 7
    assert abs(t.head_share(2) - 0.97) < 0.01
    assert np.all(np.diff(t.arrival_s) >= 0) and t.arrival_s.min() >= 0 and t.arrival_s.max() <= 300


def test_same_seed_same_trace_and_bursty_minutes():
    a, b = generate(invocations=5000, seed=7), generate(invocations=5000, seed=7)
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.input_n, b.input_n)
    # bursty: inter-arrival gaps of the busiest function vary far more than a Poisson stream's (cv 1)
    gaps = np.diff(a.arrival_s[a.func == 0])
    assert gaps.std() / gaps.mean() > 1.5


def test_a_partial_minute_spreads_over_its_length():
    t = generate(invocations=3000, minutes=0.5, seed=2)
    assert t.arrival_s.max() <= 30.0 and np.mean(t.arrival_s > 29.9) < 0.01  # no pile at the end
    assert np.mean(t.arrival_s < 15.0) > 0.1


def test_fib_inputs_follow_the_reference_histogram():
    n = draw_fib_n(np.random.default_rng(3), 200_000)
    assert n.min() == 20 and n.max() == 35
    assert abs(np.mean((n >= 20) & (n <= 26)) - 0.6656) < 0.01
    assert abs(np.mean((n >= 34) & (n <= 35)) - 0.0885) < 0.005
    assert abs(np.mean(n == 29) - 0.0366) < 0.003


def test_a_trace_built_by_hand_is_checked():
    ok = Trace(np.array([1.0, 0.5]), np.array([0, 1]), np.array([20, 21]), ["a", "b"], ["cpu", "io"])
    assert list(ok.arrival_s) == [0.5, 1.0] and list(ok.func) == [1, 0]  # sorted by arrival
    with pytest.raises(TraceError, match="different lengths"):
        Trace(np.array([1.0]), np.array([0, 0]), np.array([20]), ["a"], ["cpu"])
    with pytest.raises(TraceError, match="function index"):
        Trace(np.array([1.0]), np.array([3]), np.array([20]), ["a"], ["cpu"])
    with pytest.raises(TraceError, match="one kind"):
        Trace(np.array([1.0]), np.array([0]), np.array([20]), ["a"], ["gpu"])
    with pytest.raises(TraceError, match="finite"):
        Trace(np.array([np.nan]), np.array([0]), np.array([20]), ["a"], ["cpu"])


def test_generate_refuses_bad_arguments_in_one_line():
    with pytest.raises(ArgError, match="head_share"):
        generate(head_share=1.5)
    with pytest.raises(ArgError, match="unknown argument 'invocation'"):
        generate(invocation=5)


def _write_2019(path, rows):
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, 1441))
    path.write_text(header + "\n" + "\n".join(rows) + "\n")


def _row(owner, app, fn, counts):
    full = list(counts) + [0] * (1440 - len(counts))
    return ",".join([owner, app, fn, "http"] + [str(c) for c in full])


def test_azure_2019_good_and_bad_rows(tmp_path):
    p = tmp_path / "invocations_per_function_md.anon.d01.csv"
    rows = [_row("o1", "a1", "f1", [3, 0, 2]), _row("o1", "a1", "f2", [1, 1]),
            "o1,a1,f3,http,1,2",                                   # line 4: too few fields
            _row("o1", "a2", "f4", [1]).replace(",1,", ",x,", 1),   # line 5: not an integer
            _row("o1", "a2", "f5", [-1]),                           # line 6: negative
            _row("o2", "a3", "f6", [0, 0, 0, 4])]
    _write_2019(p, rows)
    t = load_azure_2019(p)
    assert len(t) == 3 + 2 + 2 + 4 and sorted(t.names) == ["f1", "f2", "f6"]
    assert t.bad_rows == 3
    assert [q.split(": ", 1)[0] for q in t.problems] == [f"{p}:4", f"{p}:5", f"{p}:6"]
    f1 = t.names.index("f1")
    minute = np.floor(t.arrival_s[t.func == f1] / 60).astype(int)
    assert list(np.bincount(minute, minlength=3)) == [3, 0, 2]
    assert len(load_azure_2019(p, first_minute=4, minutes=1)) == 4
    assert len(load_azure_2019(p, apps=["a1"])) == 7
    assert len(load_trace(p)) == len(t)


def test_azure_2019_unusable_files_are_one_error_naming_the_file(tmp_path):
    with pytest.raises(TraceError, match="no such"):
        load_azure_2019(tmp_path / "missing.csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(TraceError, match=r"bad.csv:1: not an Azure 2019"):
        load_azure_2019(bad)
    with pytest.raises(TraceError, match="not a file"):
        load_trace(tmp_path)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(TraceError, match=r"b.csv:1: not a text file"):
        load_trace(binary)
    empty = tmp_path / "d.csv"
    _write_2019(empty, ["o,a,f,http,1"])
    with pytest.raises(TraceError, match=r"no invocation.*1 bad rows, first: .*d.csv:2"):
        load_azure_2019(empty)


def test_azure_2021_arrival_is_end_minus_duration_and_bad_rows_counted(tmp_path):
    p = tmp_path / "AzureFunctionsInvocationTraceForTwoWeeksJan2021.txt"
    p.write_text("app,func,end_timestamp,duration\n"
                 "A,f1,10.5,0.5\n"
                 "A,f2,12.0,1.0\n"
                 "B,f1,20.0,2.0\n"
                 "A,f1,abc,1\n"          # line 5
                 "A,f1,30\n"             # line 6
                 "A,f1,40,-1\n")         # line 7
    t = load_azure_2021(p)
    assert len(t) == 3 and t.bad_rows == 3
    assert [q.split(": ", 1)[0] for q in t.problems] == [f"{p}:5", f"{p}:6", f"{p}:7"]
    assert list(t.arrival_s) == [0.0, 1.0, 8.0]  # relative to the first arrival (10.0)
    assert list(t.duration_s) == [0.5, 1.0, 2.0]
    assert len(load_azure_2021(p, app="A")) == 2
    assert len(load_azure_2021(p, window_s=(10.5, 30.0))) == 2
    with pytest.raises(TraceError, match="app 'C'"):
        load_azure_2021(p, app="C")


def test_reference_window_preset_keeps_the_five_minutes_and_the_busiest_app(tmp_path):
    w0, w1 = REFERENCE_WINDOW_S
    lines = ["app,func,end_timestamp,duration"]
    lines += [f"busy,f409,{w0 + 1 + k},0.5" for k in range(6)]
    lines += [f"other,g,{w0 + 2},0.1", f"busy,f409,{w0 - 10},0.1", f"busy,f410,{w1 + 5},0.1"]
    p = tmp_path / "day13.txt"
    p.write_text("\n".join(lines) + "\n")
    t = load_reference_window(p, kind="io")
    assert len(t) == 6 and t.names == ["f409"] and t.kinds == ["io"]
    assert t.arrival_s[0] == pytest.approx(0.5) and "busy" in t.source
    assert len(load_reference_window(p, app="other")) == 1
