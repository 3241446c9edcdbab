"""``tailgate modules [NAME]``: list the network functions, or print one's manual."""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tailgate import nf
from tailgate.cli.errors import fail
from tailgate.core.args import REQUIRED


def _summary_line(cls: type) -> str:
    """The first sentence of a class's manual, without its name and without reST quoting."""
    doc = inspect.getdoc(cls) or ""
    para = " ".join(doc.strip().split("\n\n", 1)[0].split())
    name = cls.__name__
    for sep in (" — ", " - ", ": "):
        if para.startswith(name + sep):
            para = para[len(name) + len(sep) :]
            break
    m = re.match(r"(.+?\.)(\s|$)", para)
    return (m.group(1) if m else para).replace("``", "")


def _arg_rows(cls: type) -> list[tuple[str, str, str, str, str]]:
    rows = []
    for a in getattr(cls, "args", ()):
        tname = getattr(a.type, "__name__", str(a.type))
        if tname == "any_value":
            tname = "any"
        default = "required" if a.default is REQUIRED else repr(a.default)
        rng = []
        if a.min is not None:
            rng.append(f">= {a.min:g}")
        if a.max is not None:
            rng.append(f"<= {a.max:g}")
        if a.choices is not None:
            rng.append("one of " + ", ".join(map(str, a.choices)))
        rows.append((a.name, tname, default, a.unit, "; ".join([a.help] if a.help else []) + (" (" + ", ".join(rng) + ")" if rng else "")))
    return rows



def modules_cmd(name: Optional[str] = typer.Argument(None, help="a module class: print its manual")) -> None:
    """List the network functions, or print one's manual and arguments."""
    reg = nf.registry()
    console = Console(highlight=False)
    if name is None:
        t = Table(box=None, pad_edge=False, header_style="bold")
        t.add_column("module")
        t.add_column("summary")
        for n in sorted(reg):
            t.add_row(n, escape(_summary_line(reg[n])))
        console.print(t)
        return
    cls = reg.get(name) or {k.lower(): v for k, v in reg.items()}.get(name.lower())
    if cls is None:
        close = difflib.get_close_matches(name, list(reg), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else f" (modules: {', '.join(sorted(reg))})"
        raise fail(f"unknown module {name!r}{hint}")
    console.print(f"[bold]{cls.__name__}[/bold]  ({cls.__module__})")
    console.print(inspect.getdoc(cls) or "(no manual)", markup=False, soft_wrap=True)
    rows = _arg_rows(cls)
    console.print()
    if rows:
        t = Table(title="arguments", title_justify="left", box=None, pad_edge=False, header_style="bold")
        for col in ("name", "type", "default", "unit", "help"):
            t.add_column(col)
        for r in rows:
            t.add_row(*map(escape, r))
        console.print(t)
    else:
        console.print("arguments: none")
    extras = []
    if getattr(cls, "drop_reasons", ()):
        extras.append("drop reasons: " + ", ".join(cls.drop_reasons))
    cost = getattr(cls, "cost_ns", None)
    if cost is not None and not isinstance(cost, property):
        extras.append(f"modeled cost: T0={cost[0]:g} ns + T1={cost[1]:g} ns per packet")
    if getattr(cls, "task_root", False):
        extras.append("task root (owns a task)")
    for e in extras:
        console.print(e, markup=False)

