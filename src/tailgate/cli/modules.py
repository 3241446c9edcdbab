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
from tailgate.core.args import render_args


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


def _extras(cls: type) -> list[str]:
    """Drop reasons, modeled cost and task-root status: what the class declares besides its args."""
    extras = []
    if getattr(cls, "drop_reasons", ()):
        extras.append("drop reasons: " + ", ".join(cls.drop_reasons))
    cost = getattr(cls, "cost_ns", None)
    if cost is not None and not isinstance(cost, property):
        extras.append(f"modeled cost: T0={cost[0]:g} ns + T1={cost[1]:g} ns per packet")
    if getattr(cls, "task_root", False):
        extras.append("task root (owns a task)")
    return extras


def manual(cls: type, fmt: str = "text") -> str:
    """A module's whole manual: its docstring (what it does, gates, drop reasons, an example),
    then the argument table generated from its ``Arg`` declarations, then what else it declares."""
    doc = inspect.getdoc(cls) or "(no manual)"
    table = render_args(getattr(cls, "args", ()), fmt)
    extras = _extras(cls)
    if fmt == "markdown":
        head = f"## {cls.__name__}\n\n`{cls.__module__}`"
        body = "```text\n" + doc + "\n```"
        tail = "\n".join(f"- {e}" for e in extras)
        return "\n\n".join(p for p in (head, body, table, tail) if p)
    head = f"{cls.__name__}  ({cls.__module__})"
    return "\n\n".join([head, doc, table, "\n".join(extras)]).rstrip()


def modules_cmd(
    name: Optional[str] = typer.Argument(None, help="a module class: print its manual"),
    markdown: bool = typer.Option(False, "--markdown", help="print the manual as markdown"),
) -> None:
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
    if markdown:
        typer.echo(manual(cls, "markdown"))
        return
    text = manual(cls)
    title, rest = text.split("\n", 1)
    console.print(f"[bold]{escape(title)}[/bold]")
    console.print(rest, markup=False, soft_wrap=True)
