"""The ``tailgate`` command: run, pcap info/gen, modules, bench; errors are one line."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
from pathlib import Path

import dpkt
import pytest
from typer.testing import CliRunner

from tailgate.cli import app

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TAILGATE = Path(sys.executable).with_name("tailgate")


def invoke(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_error_line(res) -> str:
    err = res.stderr.strip()
    assert "\n" not in err and "Traceback" not in res.output, res.output
    assert err.startswith("error: "), err
    return err


# ------------------------------------------------------------------------------------------------
# run
# ------------------------------------------------------------------------------------------------
def test_run_pipeline_twice_gives_identical_counters(tmp_path):
    outs = []
    for k in range(2):
        out = tmp_path / f"r{k}"
        res = invoke("run", EXAMPLES / "pipeline.py", "seconds=0.03", "--clock", "virtual", "--out", out)
        assert res.exit_code == 0, res.output
        assert f"results: {out}" in res.stdout
        assert "measure" in res.stdout and "stopped: time limit" in res.stdout  # the final table
        assert "…" not in res.stdout  # nothing cut off at 80 columns
        outs.append(out)
    a, b = ((o / "counters.csv").read_text() for o in outs)
    assert a == b and a.startswith("module,class,counter,value\n")
    for o in outs:
        assert sorted(p.name for p in o.iterdir()) == ["config.json", "counters.csv", "summary.json"]
    s = json.loads((outs[0] / "summary.json").read_text())
    assert s["clock"] == "virtual" and s["stop_reason"] == "time limit"
    assert s["measures"]["measure"]["all"]["packets"] > 0


def test_run_quiet_prints_only_the_results_path(tmp_path):
    script = tmp_path / "tiny.py"
    script.write_text('Source("src", packets=100) >> Sink("sink")\n')
    res = invoke("run", script, "--out", tmp_path / "o", "--quiet", "--clock", "virtual")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"results: {tmp_path / 'o'}"


def test_run_default_results_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "tiny.py"
    script.write_text('Source("src", packets=10) >> Sink("sink")\n')
    res = invoke("run", script, "--quiet", "--clock", "virtual")
    assert res.exit_code == 0, res.output
    (d,) = (tmp_path / "results").iterdir()
    assert d.name.startswith("tiny-") and (d / "summary.json").exists()


def test_unknown_script_argument(tmp_path):
    res = invoke("run", EXAMPLES / "pipeline.py", "seconds=0.01", "bogus=1", "--clock", "virtual", "--out", tmp_path / "o")
    assert res.exit_code == 2
    err = one_error_line(res)
    assert err.startswith("error: pipeline.py: unknown argument 'bogus' (the script reads: ")
    assert "rate_pps" in err and "seconds" in err
    assert not (tmp_path / "o").exists()


def test_wrong_type_script_argument(tmp_path):
    res = invoke("run", EXAMPLES / "pipeline.py", "rate_pps=fast", "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert one_error_line(res) == "error: pipeline.py: argument 'rate_pps' must be float, got 'fast'"


def test_script_error_line(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text('src = Source("src", packets=10)\n\nsink = Sink("sink")\nsrc >> sinc\n')
    res = invoke("run", script, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert one_error_line(res) == f"error: {script}:4: NameError: name 'sinc' is not defined; did you mean sink?"


def test_graph_error_is_one_line(tmp_path):
    script = tmp_path / "open.py"
    script.write_text('s = Source("src", packets=10)\ns >> WeightedRandomSplit("split", weights="1,1") >> Sink("sink")\n')
    res = invoke("run", script, "--out", tmp_path / "o")
    assert res.exit_code == 2
    assert one_error_line(res) == f"error: {script}:2: WeightedRandomSplit(split): output gate 1 is not connected"


@pytest.mark.parametrize(
    "args, message",
    [
        (["--burst", "0"], "error: --burst must be in 1..4096, got 0"),
        (["--seconds", "-1"], "error: --seconds must be positive, got -1.0"),
    ],
)
def test_bad_options(tmp_path, args, message):
    script = tmp_path / "tiny.py"
    script.write_text('Source("src", packets=10) >> Sink("sink")\n')
    res = invoke("run", script, *args)
    assert res.exit_code == 2
    assert one_error_line(res) == message


def test_missing_script(tmp_path):
    res = invoke("run", tmp_path / "nope.py")
    assert res.exit_code == 2
    assert one_error_line(res) == f"error: script not found: {tmp_path / 'nope.py'}"


def test_interrupt_exits_130_and_keeps_results(tmp_path):
    script = tmp_path / "ctrlc.py"
    script.write_text(
        "from tailgate.dataplane.module import Module\n"
        "class CtrlC(Module):\n"
        "    def process(self, batch):\n"
        "        if self.packets_in > 1000:\n"
        "            raise KeyboardInterrupt\n"
        "        self.emit(batch)\n"
        'Source("src", rate_pps=1e6) >> CtrlC("c") >> Sink("sink")\n'
    )
    res = invoke("run", script, "--clock", "virtual", "--out", tmp_path / "o", "--quiet")
    assert res.exit_code == 130
    s = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert s["stop_reason"] == "interrupted" and s["modules"]["sink"]["counters"]["packets_in"] >= 1000
    assert (tmp_path / "o" / "counters.csv").exists()


def test_make_demo_command_in_a_subprocess(tmp_path):
    """Exactly what ``make demo`` runs, with the installed entry point."""
    (tmp_path / "examples").symlink_to(EXAMPLES)
    p = subprocess.run(
        [str(TAILGATE), "run", "examples/pipeline.py", "seconds=0.2", "--clock", "virtual", "--out", "results/demo"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert p.returncode == 0, p.stdout + p.stderr
    assert "results: results/demo" in p.stdout
    s = json.loads((tmp_path / "results" / "demo" / "summary.json").read_text())
    assert s["stop_reason"] == "time limit" and 49_000 <= s["packets"] <= 50_001


# ------------------------------------------------------------------------------------------------
# pcap info / gen
# ------------------------------------------------------------------------------------------------
MAC_A, MAC_B = b"\x02\x00\x00\x00\x00\x01", b"\x02\x00\x00\x00\x00\x02"


def _l4(kind: str, v6: bool):
    if kind == "udp":
        return dpkt.udp.UDP(sport=1234, dport=53, ulen=8 + 10, data=b"u" * 10)
    if kind == "tcp":
        return dpkt.tcp.TCP(sport=1234, dport=80, off=5, flags=dpkt.tcp.TH_ACK, data=b"t" * 10)
    if v6:
        return dpkt.icmp6.ICMP6(type=128, code=0, data=b"\x00\x01\x00\x01" + b"i" * 8)
    return dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"i" * 8))


def ip4(kind: str) -> bytes:
    l4 = bytes(_l4(kind, False))
    proto = {"udp": 17, "tcp": 6, "icmp": 1}[kind]
    ip = dpkt.ip.IP(src=socket.inet_aton("10.0.0.1"), dst=socket.inet_aton("10.0.0.2"), p=proto, ttl=64, data=l4)
    ip.len = 20 + len(l4)
    return bytes(ip)


def ip6(kind: str) -> bytes:
    l4 = bytes(_l4(kind, True))
    nxt = {"udp": 17, "tcp": 6, "icmp": 58}[kind]
    ip = dpkt.ip6.IP6(src=socket.inet_pton(socket.AF_INET6, "fd00::1"), dst=socket.inet_pton(socket.AF_INET6, "fd00::2"),
                      nxt=nxt, hlim=64, plen=len(l4), data=l4)  # fmt: skip
    return bytes(ip)


def eth(ethertype: int, payload: bytes, vlan: int | None = None) -> bytes:
    tag = struct.pack("!HH", 0x8100, vlan) if vlan is not None else b""
    return MAC_B + MAC_A + tag + struct.pack("!H", ethertype) + payload


def crafted_frames() -> list[bytes]:
    frames = []
    frames += [eth(0x0800, ip4("udp"))] * 3 + [eth(0x0800, ip4("tcp"))] * 2 + [eth(0x0800, ip4("icmp"))]
    frames += [eth(0x86DD, ip6("udp"))] * 2 + [eth(0x86DD, ip6("tcp"))] + [eth(0x86DD, ip6("icmp"))] * 2
    frames += [eth(0x0800, ip4("udp"), vlan=100)] * 2 + [eth(0x86DD, ip6("tcp"), vlan=7)]
    frames += [eth(0x0806, b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20)] * 2  # ARP
    frames += [eth(0x88CC, b"\x02\x07\x04" + b"\x00" * 40)]  # LLDP
    bad_ihl = bytearray(eth(0x0800, ip4("udp")))
    bad_ihl[14] = 0x43
    frames += [bytes(bad_ihl), eth(0x0800, ip4("tcp"))[:30]]  # IHL 3; IPv4 header cut short
    return frames


def dpkt_counts(frames) -> dict[str, int]:
    """The same counts from dpkt's decoding of the same frames (the oracle)."""
    c = dict.fromkeys(("ipv4", "ipv6", "vlan", "tcp", "udp", "icmp", "other", "malformed"), 0)
    for f in frames:
        e = dpkt.ethernet.Ethernet(f)
        l3 = e.data
        if getattr(e, "vlan_tags", None):
            c["vlan"] += 1
        if isinstance(l3, dpkt.ip.IP):
            c["ipv4"] += 1
        elif isinstance(l3, dpkt.ip6.IP6):
            c["ipv6"] += 1
        elif isinstance(l3, (bytes, bytearray)) and e.type in (0x0800, 0x86DD):
            c["malformed"] += 1  # an IP ethertype whose header dpkt could not decode
            continue
        else:
            c["other"] += 1
            continue
        l4 = l3.data
        if isinstance(l4, dpkt.tcp.TCP):
            c["tcp"] += 1
        elif isinstance(l4, dpkt.udp.UDP):
            c["udp"] += 1
        elif isinstance(l4, (dpkt.icmp.ICMP, dpkt.icmp6.ICMP6)):
            c["icmp"] += 1
    return c


def write_pcap(path, frames, ts0=1_700_000_000.0, gap=0.5e-3):
    with open(path, "wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, fr in enumerate(frames):
            w.writepkt(fr, ts=ts0 + i * gap)
    return path


def test_pcap_info_counts_match_dpkt(tmp_path):
    frames = crafted_frames()
    cap = write_pcap(tmp_path / "mix.pcap", frames)
    res = invoke("pcap", "info", cap, "--json")
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["protocols"] == dpkt_counts(frames)
    assert info["protocols"] == {"ipv4": 8, "ipv6": 6, "vlan": 3, "tcp": 4, "udp": 7, "icmp": 3, "other": 3, "malformed": 2}
    assert info["malformed_reasons"] == {"truncated_l3": 1, "bad_ihl": 1}
    assert info["packets"] == len(frames)
    assert info["bytes"] == info["wire_bytes"] == sum(map(len, frames))
    assert info["format"] == "pcap" and info["linktype"] == 1
    assert info["first_ts_ns"] == 1_700_000_000 * 10**9
    assert info["duration_s"] == pytest.approx((len(frames) - 1) * 0.5e-3)
    assert info["first_ts"] == "2023-11-14T22:13:20.000000000Z"
    assert info["error"] is None


def test_pcap_info_human(tmp_path):
    cap = write_pcap(tmp_path / "mix.pcap", crafted_frames())
    res = invoke("pcap", "info", cap)
    assert res.exit_code == 0, res.output
    for word in ("packets", "19", "pcap", "Ethernet", "ipv4 8", "malformed 2", "duration", "bad_ihl 1"):
        assert word in res.stdout


def test_pcap_info_truncated_names_the_offset(tmp_path):
    frames = crafted_frames()
    cap = write_pcap(tmp_path / "cut.pcap", frames)
    data = cap.read_bytes()
    cap.write_bytes(data[:-5])
    offset = len(data) - 16 - len(frames[-1])  # the last record's header
    res = invoke("pcap", "info", cap, "--json")
    assert res.exit_code == 1
    info = json.loads(res.stdout)
    assert info["packets"] == len(frames) - 1 and info["error_offset"] == offset
    err = one_error_line(res)
    assert err.startswith(f"error: {cap}: byte {offset}: ") and f"{len(frames) - 1} packets before it" in err
    res = invoke("pcap", "info", cap)
    assert res.exit_code == 1 and f"byte {offset}" in res.stderr


def test_run_on_a_truncated_capture_warns_and_exits_1(tmp_path):
    frames = crafted_frames()
    cap = write_pcap(tmp_path / "cut.pcap", frames)
    data = cap.read_bytes()
    cap.write_bytes(data[:-5])
    offset = len(data) - 16 - len(frames[-1])
    script = tmp_path / "count.py"
    script.write_text('PcapSource("input", path=get_arg("pcap", type=str)) >> Sink("sink")\n')
    res = invoke("run", script, f"pcap={cap}", "--quiet", "--out", tmp_path / "res")
    assert res.exit_code == 1
    assert f"byte {offset}" in res.stderr
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["modules"]["sink"]["counters"]["packets_in"] == len(frames) - 1
    assert any(f"byte {offset}" in w for w in summary["warnings"])


@pytest.mark.parametrize("what", ["text", "linktype", "missing", "empty"])
def test_pcap_info_not_a_capture(tmp_path, what):
    p = tmp_path / "x.pcap"
    if what == "text":
        p.write_text("hello, I am not a capture\n")
    elif what == "linktype":
        p.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101))  # raw IP
    elif what == "empty":
        p.write_bytes(b"")
    res = invoke("pcap", "info", p)
    assert res.exit_code == 2
    err = one_error_line(res)
    assert str(p) in err
    if what == "linktype":
        assert "link type 101" in err
    if what == "missing":
        assert err == f"error: {p}: no such file"


@pytest.mark.parametrize("fmt", ["pcap", "pcapng"])
def test_pcap_gen_then_info(tmp_path, fmt):
    out = tmp_path / f"gen.{fmt}"
    res = invoke("pcap", "gen", out, "--packets", 300, "--flows", 5, "--size", 100, "--seed", 4, "--rate-pps", 1e5,
                 "--format", fmt)  # fmt: skip
    assert res.exit_code == 0, res.output
    with open(out, "rb") as f:
        pkts = list(dpkt.pcap.UniversalReader(f)) if fmt == "pcap" else list(dpkt.pcapng.Reader(f))
    assert len(pkts) == 300 and {len(b) for _, b in pkts} == {100}
    flows = {(e.data.src, e.data.dst, e.data.data.sport) for e in (dpkt.ethernet.Ethernet(b) for _, b in pkts)}
    assert len(flows) == 5
    assert float(pkts[1][0]) - float(pkts[0][0]) == pytest.approx(1e-5, abs=1e-7)
    info = json.loads(invoke("pcap", "info", out, "--json").stdout)
    assert info["format"] == fmt and info["packets"] == 300 and info["protocols"]["udp"] == 300
    # the same seed gives the same file
    again = tmp_path / f"again.{fmt}"
    invoke("pcap", "gen", again, "--packets", 300, "--flows", 5, "--size", 100, "--seed", 4, "--rate-pps", 1e5, "--format", fmt)
    assert again.read_bytes() == out.read_bytes()


def test_pcap_gen_bad_size(tmp_path):
    res = invoke("pcap", "gen", tmp_path / "x.pcap", "--size", "huge")
    assert res.exit_code == 2
    assert one_error_line(res) == "error: --size must be a number of bytes or 'imix', got 'huge'"


def test_pcap_commands_in_a_subprocess(tmp_path):
    out = tmp_path / "s.pcap"
    p = subprocess.run([str(TAILGATE), "pcap", "gen", str(out), "--packets", "50"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    p = subprocess.run([str(TAILGATE), "pcap", "info", str(out), "--json"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and json.loads(p.stdout)["packets"] == 50


# ------------------------------------------------------------------------------------------------
# modules, bench
# ------------------------------------------------------------------------------------------------
def test_modules_list_and_manual():
    from tailgate import nf

    res = invoke("modules")
    assert res.exit_code == 0
    for name in nf.registry():
        assert name in res.stdout
    assert "token-bucket policer" in res.stdout
    res = invoke("modules", "RateLimiter")
    assert res.exit_code == 0
    assert "RateLimiter — token-bucket policer" in res.stdout
    assert "burst_packets" in res.stdout and "drop reasons: over_rate" in res.stdout
    assert invoke("modules", "ratelimiter").exit_code == 0  # case does not matter


def test_modules_unknown():
    res = invoke("modules", "RateLimitr")
    assert res.exit_code == 2
    assert one_error_line(res) == "error: unknown module 'RateLimitr'; did you mean RateLimiter?"


def test_bench_table_and_json(monkeypatch):
    import tailgate.cli.bench as cli_bench

    calls = []

    def fake(quick: bool):
        calls.append(quick)
        return [{"name": "l2l3", "impl": "tailgate", "batch": 32, "mpps": 1.25}, {"name": "l2l3", "impl": "dpkt", "batch": 1, "mpps": 0.05}]

    monkeypatch.setattr(cli_bench, "run_bench", fake)
    monkeypatch.setattr(cli_bench, "bench_sim", lambda quick: [{"name": "sched_sim", "impl": "simpy"}])
    monkeypatch.setattr(cli_bench, "bench_live_records", lambda quick: [{"name": "sched_live", "rps": 9.0}])
    monkeypatch.setattr(cli_bench, "bench_faas", lambda quick: [{"name": "faas_sim", "impl": "naive"}])
    res = invoke("bench", "--quick", "--suite", "packet")
    assert res.exit_code == 0, res.output
    assert "l2l3" in res.stdout and "1.250" in res.stdout and "dpkt" in res.stdout and "sched" not in res.stdout
    res = invoke("bench", "--json")
    assert res.exit_code == 0
    records = json.loads(res.stdout)
    assert records[0] == {"name": "l2l3", "impl": "tailgate", "batch": 32, "mpps": 1.25}
    assert [r["name"] for r in records[2:]] == ["sched_sim", "sched_live", "faas_sim"]
    assert calls == [True, False]
    assert invoke("bench", "--suite", "nope").exit_code == 2


def test_live_view_renders_the_module_table(tmp_path):
    import io

    from rich.console import Console

    from tailgate.run.progress import LiveView, final_table
    from tailgate.run.script import ScriptRun

    script = tmp_path / "lv.py"
    script.write_text('Source("src", packets=64) >> Bypass("nf", t1_ns=5) >> Sink("sink")\n')
    buf = io.StringIO()
    view = LiveView(Console(file=buf, force_terminal=True, width=120), enabled=True)
    sr = ScriptRun(script, [], clock="virtual", out_dir=tmp_path / "o", view=view)
    sr.execute()
    view.start(sr.runtime)  # what on_progress shows, once more by hand
    view.update(sr.runtime)
    view.stop()
    text = buf.getvalue()
    assert "nf" in text and "Mpps" in text and "time %" in text
    out = io.StringIO()
    Console(file=out, width=100).print(final_table(sr.runtime))
    assert "stopped: input exhausted" in out.getvalue() and "sink" in out.getvalue()
    assert not LiveView(Console(file=io.StringIO())).enabled  # not a terminal: no live view


# ------------------------------------------------------------------------------------------------
# --version, help, listings
# ------------------------------------------------------------------------------------------------
def test_version():
    from importlib.metadata import version

    res = invoke("--version")
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == f"tailgate {version('tailgate')}"
    p = subprocess.run([str(TAILGATE), "--version"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.startswith("tailgate ")


@pytest.mark.parametrize("cmd", [(), ("run",), ("pcap", "info"), ("sched",), ("sched", "report"), ("sched", "load"),
                                 ("batchy", "report"), ("modules",), ("bench",)])
def test_help_shows_no_value_type_for_flags(cmd):
    """A flag (--json, --quiet, --help) takes no value: its help row shows no ``<bool>``."""
    res = invoke(*cmd, "--help")
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output
    assert "--help" in res.output


def test_help_still_shows_value_types_of_options():
    res = invoke("run", "--help")
    assert "<int>" in res.output and "<wall|virtual>" in res.output


def test_sched_workloads_lists_every_named_workload():
    from tailgate.dispatch.workloads import WORKLOADS

    res = invoke("sched", "workloads")
    assert res.exit_code == 0, res.output
    for name in WORKLOADS:
        assert name in res.stdout
    assert "SHORT 1 µs 50 %, LONG 100 µs 50 %" in res.stdout   # disp2
    assert "50.5" in res.stdout                                 # its mean service time


def test_sched_policies_lists_every_policy():
    from tailgate.dispatch.policy import POLICIES

    res = invoke("sched", "policies")
    assert res.exit_code == 0, res.output
    for name in POLICIES:
        assert f"\n{name}\n" in "\n" + res.stdout


def test_batchy_controllers_lists_what_resolve_controller_accepts():
    import re

    from tailgate.batchy.controllers import resolve_controller
    from tailgate.core.errors import ArgError

    from tailgate.cli.batchy import CONTROLLERS

    res = invoke("batchy", "controllers")
    assert res.exit_code == 0, res.output
    listed = [name for name, _ in CONTROLLERS]
    first_words = [ln.split()[0] for ln in res.stdout.splitlines() if ln.strip()]
    assert all(name in first_words for name in listed), res.stdout
    with pytest.raises(ArgError) as e:
        resolve_controller("no-such-controller")
    choose = re.sub(r"\s*\([^)]*\)", "", str(e.value).split("choose ", 1)[1])
    assert choose.split(", ") == listed      # the error's list and the listing agree
    for name in listed:
        resolve_controller(name.replace("fixedN", "fixed8"))   # every listed name is accepted
