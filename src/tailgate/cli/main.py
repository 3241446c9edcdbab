"""The ``tailgate`` command.

Manual
------
::

    tailgate run SCRIPT [k=v ...] [--clock wall|virtual] [--out DIR] [--burst N]
                                  [--seconds S] [--packets N] [--quiet] [--plot]
    tailgate pcap info FILE [--json]
    tailgate pcap gen OUT [--packets N] [--flows N] [--size BYTES|imix] [--seed S]
                          [--rate-pps R] [--format pcap|pcapng]
    tailgate modules [NAME]
    tailgate bench [--json] [--quick] [--suite packet|sched|live|all] [--runs N]
    tailgate bench --markdown [--runs N] [--out DIR] [--readme README.md]   (see tailgate.cli.bench)
    tailgate sched sim|policies|workloads ...      (see tailgate.cli.sched)
    tailgate batchy report|controllers ...         (see tailgate.cli.batchy)
    tailgate faas sim|strategies|serve ...         (see tailgate.cli.faas)
    tailgate --version

The help of every command shows an option's value type (``<int>``, ``<path>``) only where the
option takes a value: a flag (``--json``, ``--quiet``) shows none.

Every user error (a bad argument, a graph that does not connect, a capture that is not one) is
one line ``error: ...`` on stderr and exit code 2, never a traceback. A capture damaged part-way
is used up to the damage and reported (by ``pcap info``; by ``run`` as a warning) with exit
code 1. Ctrl-C stops a run, still writes its results directory, and exits with 130 (SIGTERM: 143).
"""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as installed_version

import typer
from typer.core import TyperGroup

from tailgate.cli.batchy import batchy_app
from tailgate.cli.bench import bench_cmd
from tailgate.cli.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, fail
from tailgate.cli.faas import faas_app
from tailgate.cli.modules import modules_cmd
from tailgate.cli.pcap import pcap_app
from tailgate.cli.profile import profile_cmd
from tailgate.cli.run import run
from tailgate.cli.sched import sched_app
from tailgate.core.errors import TailgateError


def _hide_flag_types(params: list) -> None:
    """A flag takes no value, so its help row shows no ``<bool>`` type (an empty metavar)."""
    for p in params:
        if p is not None and getattr(p, "is_flag", False) and p.metavar is None:
            p.metavar = ""


class FlagGroup(TyperGroup):
    """A command group whose help, and its commands' help, show no value type for flags."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        _hide_flag_types(params)
        return params

    def get_command(self, ctx, cmd_name):
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            _hide_flag_types([*cmd.params, cmd.get_help_option(ctx)])
        return cmd


def tailgate_version() -> str:
    """The installed tailgate's version (``unknown`` when run from a tree never installed)."""
    try:
        return installed_version("tailgate")
    except PackageNotFoundError:
        return "unknown"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tailgate {tailgate_version()}")
        raise typer.Exit()


app = typer.Typer(
    cls=FlagGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="tailgate: batched packet processing under latency objectives, measured honestly.",
)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="print the version and exit"),
) -> None:
    """tailgate: batched packet processing under latency objectives, measured honestly."""


app.command("run", context_settings={"allow_interspersed_args": True})(run)
app.add_typer(pcap_app, name="pcap", cls=FlagGroup)
app.command("modules")(modules_cmd)
app.command("bench")(bench_cmd)
app.add_typer(sched_app, name="sched", cls=FlagGroup)
app.add_typer(batchy_app, name="batchy", cls=FlagGroup)
app.add_typer(faas_app, name="faas", cls=FlagGroup)
app.command("profile")(profile_cmd)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tailgate`` command."""
    try:
        app(args=argv, prog_name="tailgate", standalone_mode=True)
    except SystemExit as e:
        code = e.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    except TailgateError as e:  # pragma: no cover - commands catch their own
        fail(str(e))
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

