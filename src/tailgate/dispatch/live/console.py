"""What the live server and the load client print on the terminal (stderr, through rich).

Manual
------
* :func:`make_console` — the console both print to (stderr; ``quiet`` prints nothing);
* :func:`tick_line` — the server's one-line progress, once a second: requests received,
  dispatched (and the rate), completed, dropped, bad input;
* :func:`print_server_stats` — the server's counters table when it stops (drops and abandoned
  requests by reason, and the line ``accepted = completed + dropped + abandoned``), and DARC's
  reservation;
* :func:`print_client_summary` — the client's three lines: what it offered, sent and got back,
  its send lag and verdict, the latency percentiles.

Example::

    console = make_console(quiet=False)
    print_server_stats(srv.stats(), console)
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

#: Counters printed red when they are not zero.
_ALARMS = ("dropped", "abandoned", "malformed", "ring_full", "table_full", "response_send_errors", "worker_deaths")
_SERVER_COUNTERS = ("rx_datagrams", "accepted", "dispatched", "completed", "responses_sent", "dropped",
                    "drop_answers", "abandoned", "unknown_type", "malformed", "preempted", "ring_full",
                    "response_send_errors", "worker_deaths", "worker_restarts")


def make_console(quiet: bool = False) -> Console:
    return Console(stderr=True, quiet=quiet, highlight=False)


def tick_line(counters: dict, elapsed_s: float) -> str:
    """The server's progress line from its :meth:`~tailgate.dispatch.live.dispatcher.Server.counters`."""
    c = counters
    rate = c["dispatched"] / elapsed_s if elapsed_s > 0 else 0.0
    bad = c["malformed"] + c["unknown_type"]  # drops are a full queue, not bad input: shown apart
    return (f"{elapsed_s:7.1f} s  rx {c['rx_datagrams']:,}  dispatched {c['dispatched']:,} "
            f"({rate:,.0f}/s)  completed {c['completed']:,}  dropped {c['dropped']:,}  bad input {bad:,}")


def print_server_stats(stats: dict, console) -> None:
    """The counters table printed when a server stops."""
    t = Table(title=f"tailgate serve: {stats['policy']} on {stats['workload']}, {stats['n_workers']} "
                    f"{stats['worker_kind']} workers", title_justify="left", box=None, show_edge=False)
    t.add_column("counter")
    t.add_column("value", justify="right")
    for k in _SERVER_COUNTERS:
        if k in stats:
            v = stats[k]
            t.add_row(k, f"[red]{v:,}[/red]" if v and k in _ALARMS else f"{v:,}")
        if k == "dropped":
            for reason, v in stats.get("dropped_by_reason", {}).items():
                if v:
                    t.add_row(f"  dropped: {reason}", f"{v:,}")
        if k == "abandoned":
            for reason, v in stats.get("abandoned_by_reason", {}).items():
                t.add_row(f"  abandoned: {reason}", f"{v:,}")
    for k, v in stats.get("malformed_by_reason", {}).items():
        t.add_row(f"  malformed: {k}", f"{v:,}")
    t.add_row("dispatch rate", f"{stats['dispatch_rate_rps']:,.0f} req/s over {stats['active_s']:.3f} s")
    console.print(t)
    if "abandoned" in stats:
        total = stats["completed"] + stats["dropped"] + stats["abandoned"]
        sign = "=" if total == stats["accepted"] else "[red]!=[/red]"
        console.print(f"accepted {stats['accepted']:,} {sign} completed {stats['completed']:,} + dropped "
                      f"{stats['dropped']:,} + abandoned {stats['abandoned']:,}")
    if stats.get("reservation"):
        for g in stats["reservation"]:
            console.print(f"  DARC group types {g['types']}: reserved {g['reserved']}, may steal {g['stealable']}")


def print_client_summary(s: dict, console) -> None:
    """The load client's summary (:func:`tailgate.dispatch.live.loadgen.load`'s result)."""
    lag = s["send_lag_ns"]
    us = (lambda v: "-" if v is None else f"{v / 1e3:,.1f}")
    console.print(f"load {s['workload']}: offered {s['offered_rps']:,.0f} req/s, sent {s['send_rate_rps']:,.0f}/s; "
                  f"answered {s['answered']:,}/{s['n_requests']:,}, dropped {s['dropped']:,}, lost {s['lost']:,}")
    console.print(f"  send lag us: p50 {us(lag['p50'])}  p99 {us(lag['p99'])}  p99.9 {us(lag['p99.9'])}  "
                  f"max {us(lag['max'])}  -> {s['verdict']}")
    m = s.get("metrics")
    if m and m.get("latency_ns"):
        la = m["latency_ns"]
        console.print(f"  latency us: p50 {us(la.get('p50'))}  p99 {us(la.get('p99'))}  p99.9 {us(la.get('p99.9'))}")
