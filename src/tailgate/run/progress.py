"""The live view of a running pipeline, and the table printed when it ends.

Manual
------
:class:`LiveView` shows a ``rich.live.Live`` table (module, packets in, out, drops, time share %,
Mpps on the run's clock) on stderr, refreshed through ``Runtime.run(on_progress=...)``. It is on
only when stderr is a terminal and ``--quiet`` was not given; otherwise ``update`` does nothing.
:func:`final_table` is the compact table printed at the end of a run. Both list the modules in
data-flow order (:func:`tailgate.run.results.dataflow_order`): sources first, then each module
after what feeds it (a cycle through a queue aside), so a table reads as the packets travel.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from tailgate.run.results import dataflow_order, source_packets

#: the title of the module table printed at the end of a run
FINAL_TABLE_TITLE = "per module, over the whole run"

if TYPE_CHECKING:  # pragma: no cover
    from tailgate.dataplane.runtime import Runtime


def _fmt_int(n: int) -> str:
    return f"{n:,}"


def module_rows(runtime: "Runtime") -> list[tuple[str, str, int, int, int, float, float]]:
    """Per module, in data-flow order: name, class, packets in, out, drops, time share (%), Mpps
    (clock time)."""
    mods = dataflow_order(runtime.pipeline)
    total_ns = sum(int(m.time_ns) for m in mods) or 1
    elapsed_ns = runtime.clock.now_ns() - runtime.started_ns
    rows = []
    for m in mods:
        c = m.counters()
        pin = c["packets_in"]
        mpps = pin * 1e3 / elapsed_ns if elapsed_ns > 0 else 0.0
        rows.append((m.name, type(m).__name__, pin, c["packets_out"], c["drops"], 100.0 * m.time_ns / total_ns, mpps))
    return rows


def module_table(runtime: "Runtime", title: str | None = None) -> Table:
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None, header_style="bold")
    t.add_column("module")
    t.add_column("class", style="dim")
    for col in ("in", "out", "drops", "time %", "Mpps"):
        t.add_column(col, justify="right")
    for name, cls, pin, pout, drops, share, mpps in module_rows(runtime):
        t.add_row(
            name,
            cls,
            _fmt_int(pin),
            _fmt_int(pout),
            f"[red]{_fmt_int(drops)}[/red]" if drops else "0",
            f"{share:5.1f}",
            f"{mpps:.3f}",
        )
    return t


def _headline(runtime: "Runtime") -> str:
    elapsed_ns = runtime.clock.now_ns() - runtime.started_ns
    packets = source_packets(runtime)
    rate = packets * 1e3 / elapsed_ns if elapsed_ns > 0 else 0.0
    return f"{runtime.clock.name} clock {elapsed_ns / 1e9:.3f} s, {_fmt_int(packets)} packets, {rate:.3f} Mpps"


class LiveView:
    """A live module table on stderr; a no-op unless enabled (a terminal and not ``--quiet``)."""

    def __init__(self, console: Console | None = None, enabled: bool | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal if enabled is None else bool(enabled)
        self._live: Live | None = None

    def start(self, runtime: "Runtime") -> None:
        if not self.enabled or self._live is not None:
            return
        self._live = Live(
            self._render(runtime), console=self.console, refresh_per_second=4, transient=True, auto_refresh=False
        )
        self._live.start()

    def _render(self, runtime: "Runtime") -> Group:
        return Group(Text(_headline(runtime)), module_table(runtime))

    def update(self, runtime: "Runtime") -> None:
        if self._live is not None:
            self._live.update(self._render(runtime), refresh=True)

    def stop(self) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def final_table(runtime: "Runtime", stop_reason: str | None = None) -> Group:
    """A headline (clock time, packets, rate, why it stopped) over the module table, titled: both
    cover the whole run (counters are never reset; a Batchy run's warm-up and rounds included)."""
    reason = stop_reason or runtime.stop_reason
    table = module_table(runtime, title=FINAL_TABLE_TITLE)
    return Group(Text(f"{_headline(runtime)}; stopped: {reason}"), table)
