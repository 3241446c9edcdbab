"""The ``tailgate`` command.

Manual
------
::

    tailgate run SCRIPT [k=v ...] [--clock wall|virtual] [--out DIR] [--burst N]
                                  [--seconds S] [--packets N] [--quiet]
    tailgate pcap info FILE [--json]
    tailgate pcap gen OUT [--packets N] [--flows N] [--size BYTES|imix] [--seed S]
                          [--rate-pps R] [--format pcap|pcapng]
    tailgate modules [NAME]
    tailgate bench [--json] [--quick] [--suite packet|sched|live|all]
    tailgate sched sim|policies ...      (see tailgate.cli.sched)

Every user error (a bad argument, a graph that does not connect, a capture that is not one) is
one line ``error: ...`` on stderr and exit code 2, never a traceback. A capture damaged part-way
is used up to the damage and reported (by ``pcap info``; by ``run`` as a warning) with exit
code 1. Ctrl-C stops a run, still writes its results directory, and exits with 130.
"""

from __future__ import annotations

import sys

import typer

from tailgate.cli.batchy import batchy_app
from tailgate.cli.bench import bench_cmd
from tailgate.cli.errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, fail
from tailgate.cli.modules import modules_cmd
from tailgate.cli.pcap import pcap_app
from tailgate.cli.profile import profile_cmd
from tailgate.cli.run import run
from tailgate.cli.sched import sched_app
from tailgate.core.errors import TailgateError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="tailgate: batched packet processing under latency objectives, measured honestly.",
)
app.command("run", context_settings={"allow_interspersed_args": True})(run)
app.add_typer(pcap_app, name="pcap")
app.command("modules")(modules_cmd)
app.command("bench")(bench_cmd)
app.add_typer(sched_app, name="sched")
app.add_typer(batchy_app, name="batchy")
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

