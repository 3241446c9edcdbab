"""Pipeline scripts: plain Python run with a small API, as BESS and Batchy scripts are.

Manual
------
``tailgate run SCRIPT [k=v ...]`` runs SCRIPT with these globals:

=====================  ==========================================================================
name                   what it is
=====================  ==========================================================================
every NF class         ``Source``, ``PcapSource``, ``IPv4Lookup`` ... (``tailgate modules`` lists them)
``get_arg``            ``get_arg(name, default, type)`` — a command-line argument converted to
                       ``type`` (int, float, str, bool or any callable); without a default the
                       argument is required
``add_worker``         ``add_worker(name, policy="rr"|"wfq", resource="packets"|"time")`` — a
                       :class:`~tailgate.dataplane.runtime.Worker`; ``w.add_task(root, share=1)``
``run``                ``run(seconds=None, packets=None)`` — checks the graph and builds the
                       runtime on the first call, runs, returns the summary dict; call it again to
                       go on (after changing knobs, say). Without limits it uses the command
                       line's ``--seconds`` / ``--packets``
``pipeline``           the :class:`~tailgate.dataplane.graph.Pipeline` the modules join
``clock``              the run's clock (``clock.now_ns()``)
``FlowTemplate``       :class:`tailgate.packet.synth.FlowTemplate`, to describe flows by hand
``results_dir``        the run's results directory (a ``pathlib.Path``; write extra files here)
``log``                a ``logging.Logger``
``batchy``             SLO-driven batch scheduling (:mod:`tailgate.batchy.api`): workers,
                       tasks, flows, controllers, ``batchy.run(rounds, control_period_s)``
=====================  ==========================================================================

A script may also import these names, for editors and linters: ``from tailgate.run.script import
get_arg, results_dir, PcapSource`` gives the very objects the runner injects (the running script's;
outside a running script the per-run names are a one-line error). docs/scripts.md is the user's
manual of all this.

Arguments are ``k=v`` words or comma-separated lists, as in Batchy:
``rounds=100,delay_slo1=55_000`` (underscores in numbers are allowed; a piece without ``=``
continues the previous value, so ``weights=9,1`` is one argument). A value of the wrong type is
an error naming the argument; an argument the script never reads is an error listing the ones
it does read. That check happens when the script first calls ``run()`` (so read every argument
before running) and, if it never does, when the script ends — before anything runs.

If the script does not call ``run()``, the pipeline runs after it with the command-line limits;
without limits until the input is exhausted, except that a synthetic ``Source`` without a packet
limit runs for 1 s of clock time.

An exception in the script becomes one line, ``SCRIPT:LINE: ExcType: message`` (the line is the
script's own, not tailgate's), raised as :class:`ScriptError`; a misspelt name ends with
``; did you mean NAME?``. A graph error about a module (an unconnected gate) names the line that
made the module (:class:`ScriptGraphError`). Once a run has started the results
directory is always written, also after an error or an interrupt (see :mod:`tailgate.run.results`).
"""

from __future__ import annotations

import builtins
import contextlib
import difflib
import inspect
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator

from tailgate import nf
from tailgate.batchy.api import Batchy
from tailgate.core.clock import Clock, make_clock
from tailgate.core.errors import ArgError, GraphError, TailgateError
from tailgate.dataplane.graph import Pipeline
from tailgate.dataplane.module import Module
from tailgate.dataplane.runtime import Runtime, Worker
from tailgate.nf.basic import Source
from tailgate.packet.pool import DEFAULT_BURST
from tailgate.packet.synth import FlowTemplate
from tailgate.run import results as _results

_REQUIRED = object()
#: A synthetic source with no packet limit and no time limit runs this long (clock time).
DEFAULT_SYNTHETIC_SECONDS = 1.0


class ScriptError(TailgateError):
    """An exception raised by a script, as one line naming the script file and line."""


class ScriptArgError(ArgError):
    """A bad script argument: unknown, missing, or of the wrong type."""


class ScriptGraphError(ScriptError, GraphError):
    """A graph error about one module, as ``SCRIPT:LINE: message`` with the line that made it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread by :func:`sigterm_stops_run`.

    A ``KeyboardInterrupt``, so a run stops as it does on Ctrl-C and still writes its results
    directory; its ``stop_reason`` is ``"terminated"`` instead of ``"interrupted"``.
    """


def stop_reason_of(interrupt: KeyboardInterrupt) -> str:
    """``"terminated"`` for SIGTERM (:class:`Terminated`), ``"interrupted"`` for Ctrl-C."""
    return "terminated" if isinstance(interrupt, Terminated) else "interrupted"


@contextlib.contextmanager
def sigterm_stops_run() -> Iterator[None]:
    """Inside the block, SIGTERM raises :class:`Terminated` (as SIGINT raises KeyboardInterrupt).

    Outside the main thread, where Python cannot set signal handlers, the block runs unchanged.
    The previous handler is restored at the end.
    """

    def handler(signum: int, frame: Any) -> None:
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ------------------------------------------------------------------------------------------------
# arguments
# ------------------------------------------------------------------------------------------------
def parse_script_args(words: list[str] | tuple[str, ...], script: str = "script") -> dict[str, str]:
    """``["a=1", "b=2,c=x"]`` -> ``{"a": "1", "b": "2", "c": "x"}`` (values stay strings)."""
    out: dict[str, str] = {}
    last: str | None = None
    for word in words:
        for piece in word.split(","):
            if "=" not in piece:
                if last is None:
                    if not piece.strip():
                        continue
                    raise ScriptArgError(f"{script}: argument {piece!r} is not of the form name=value")
                out[last] += "," + piece
                continue
            name, _, value = piece.partition("=")
            name = name.strip()
            if not name.isidentifier():
                raise ScriptArgError(f"{script}: bad argument name {name!r} in {word!r}")
            if name in out:
                raise ScriptArgError(f"{script}: argument {name!r} given twice")
            out[name] = value.strip()
            last = name
    return out


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def convert_arg(script: str, name: str, raw: Any, type_: Callable[[Any], Any]) -> Any:
    """Convert one argument value; an :class:`ScriptArgError` naming it when that fails."""
    tname = getattr(type_, "__name__", str(type_))
    try:
        if not isinstance(raw, str):
            return raw if type_ is bool and isinstance(raw, bool) else type_(raw)
        s = raw.strip()
        if type_ is bool:
            low = s.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(raw)
        if type_ is int:
            s = s.replace("_", "")
            try:
                return int(s, 0)
            except ValueError:
                f = float(s)  # "1e6" is an integer too
                if not f.is_integer():
                    raise
                return int(f)
        if type_ is float:
            return float(s.replace("_", ""))
        if type_ is str:
            return raw
        return type_(raw)
    except (TypeError, ValueError, OverflowError):
        raise ScriptArgError(f"{script}: argument {name!r} must be {tname}, got {raw!r}") from None


# ------------------------------------------------------------------------------------------------
# where an exception happened
# ------------------------------------------------------------------------------------------------
def _script_line(exc: BaseException, filename: str) -> int | None:
    if isinstance(exc, SyntaxError) and exc.filename == filename:
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _module_in_traceback(exc: BaseException) -> Module | None:
    """The innermost module whose method raised (to name it when the error is inside tailgate)."""
    found = None
    tb = exc.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if isinstance(obj, Module):
            found = obj
        tb = tb.tb_next
    return found


def did_you_mean(name: str, names: Any) -> str | None:
    """The one of ``names`` closest to a misspelt ``name`` (case first), or None."""
    names = [n for n in names if isinstance(n, str) and not n.startswith("__")]
    by_lower = {n.lower(): n for n in names}
    if name.lower() in by_lower and by_lower[name.lower()] != name:
        return by_lower[name.lower()]
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return close[0] if close else None


def describe_exception(exc: BaseException, filename: str, names: Any = ()) -> str:
    """``FILE:LINE: ExcType: message`` (no type for tailgate's own one-line errors).

    ``names`` are the names the script could use (its globals): a ``NameError`` for a name close
    to one of them ends with ``; did you mean NAME?``.
    """
    if isinstance(exc, (ScriptArgError, ScriptGraphError)):
        return str(exc)
    if isinstance(exc, SyntaxError):
        msg = f"SyntaxError: {exc.msg}"
    elif isinstance(exc, TailgateError):
        msg = str(exc)
    else:
        text = str(exc)
        msg = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        m = _module_in_traceback(exc)
        if m is not None:
            msg += f" (in {m.label})"
        if isinstance(exc, NameError) and exc.name:
            close = did_you_mean(exc.name, list(names) + dir(builtins))
            if close is not None:
                msg += f"; did you mean {close}?"
    line = _script_line(exc, filename)
    return f"{filename}:{line}: {msg}" if line is not None else f"{filename}: {msg}"


# ------------------------------------------------------------------------------------------------
# the script's pipeline: remembers the line that made each module
# ------------------------------------------------------------------------------------------------
def script_line_of_caller(filename: str) -> int | None:
    """The line of ``filename`` that is running now (the innermost frame of that file), or None."""
    frame = inspect.currentframe()
    try:
        while frame is not None:
            if frame.f_code.co_filename == filename:
                return frame.f_lineno
            frame = frame.f_back
        return None
    finally:
        del frame


class ScriptPipeline(Pipeline):
    """A :class:`~tailgate.dataplane.graph.Pipeline` that notes the script line making each module,
    so that a graph error about a module names the line: ``router.py:12: IPv4Lookup(lookup):
    output gate 1 is not connected``."""

    def __init__(self, script: str) -> None:
        super().__init__()
        self.script = script
        self.lines: dict[str, int] = {}  # module name -> the script line that made it

    def add(self, m: Module) -> None:
        super().add(m)
        line = script_line_of_caller(self.script)
        if line is not None:
            self.lines[m.name] = line

    def locate(self, error: GraphError) -> GraphError:
        """``error`` as a :class:`ScriptGraphError` at the line that made the module it names
        first (its message starts with the module's label); else ``error`` itself."""
        text = str(error)
        for m in self:
            if text.startswith(f"{m.label}:") and m.name in self.lines:
                return ScriptGraphError(f"{self.script}:{self.lines[m.name]}: {text}")
        return error


# ------------------------------------------------------------------------------------------------
# one run of one script
# ------------------------------------------------------------------------------------------------
class ScriptRun:
    """Runs one script in a fresh pipeline and leaves its results directory.

    ``view`` (optional) is told ``start(runtime)``, ``update(runtime)`` (progress) and ``stop()``;
    the CLI passes a :class:`tailgate.run.progress.LiveView`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        args: dict[str, Any] | list[str] | tuple[str, ...] = (),
        *,
        clock: str | Clock = "wall",
        burst: int = DEFAULT_BURST,
        seconds: float | None = None,
        packets: int | None = None,
        out_dir: str | os.PathLike | None = None,
        view: Any = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.path = os.fspath(path)
        self.name = os.path.basename(self.path)
        if isinstance(args, dict):
            self.args = {str(k): v for k, v in args.items()}
        else:
            self.args = parse_script_args(list(args), self.name)
        self.clock = make_clock(clock) if isinstance(clock, str) else clock
        if not 1 <= int(burst) <= 4096:
            raise ArgError(f"--burst must be in 1..4096, got {burst}")
        if seconds is not None and not seconds > 0:
            raise ArgError(f"--seconds must be positive, got {seconds}")
        if packets is not None and packets <= 0:
            raise ArgError(f"--packets must be positive, got {packets}")
        self.burst = int(burst)
        self.seconds = seconds
        self.packets = packets
        self.out_dir = Path(out_dir) if out_dir is not None else _results.default_out_dir(self.path)
        self.view = view
        self.log = log or logging.getLogger(f"tailgate.run.script.{Path(self.path).stem}")
        self.pipeline = ScriptPipeline(self.path)
        self.workers: list[Worker] = []
        self.runtime: Runtime | None = None
        self.read: dict[str, Any] = {}  # argument name -> converted value (or default)
        self.runs = 0
        self.error: str | None = None
        self.stop_reason: str | None = None
        self.summary: dict[str, Any] | None = None
        self.results_written = False
        self._made_out_dir = False

    # -- the script API ----------------------------------------------------------------------------
    def get_arg(self, name: str, default: Any = _REQUIRED, type: Callable[[Any], Any] | None = None) -> Any:  # noqa: A002
        if type is None:
            type = builtins.type(default) if default is not _REQUIRED and default is not None else str  # noqa: A001
        if name in self.args:
            value = convert_arg(self.name, name, self.args[name], type)
        elif default is _REQUIRED:
            raise ScriptArgError(f"{self.name}: missing required argument {name!r} (give it as {name}=VALUE)")
        else:
            value = default
        self.read[name] = value
        return value

    def add_worker(self, name: str, policy: str = "rr", resource: str = "packets") -> Worker:
        if self.runtime is not None:
            raise ArgError("add_worker() must come before the first run()")
        if any(w.name == name for w in self.workers):
            raise ArgError(f"a worker named {name!r} already exists")
        w = Worker(name, policy=policy, resource=resource)
        self.workers.append(w)
        return w

    def run(self, seconds: float | None = None, packets: int | None = None, summary: bool = True) -> dict[str, Any] | None:
        """Run the pipeline for ``seconds`` of its clock or ``packets`` packets; returns the run's
        summary, or None with ``summary=False`` (a control loop that runs many short periods on
        the wall clock: a summary takes ~15 ms, during which buffered packets wait)."""
        if self.runtime is None:
            self.check_unknown_args()
            self._start()
        duration_ns, max_packets = self._limits(seconds, packets)
        rt = self.runtime
        self.runs += 1
        wall0 = time.perf_counter()
        try:
            self.stop_reason = rt.run(
                duration_ns=duration_ns,
                max_packets=max_packets,
                on_progress=self._progress if self.view is not None else None,
            )
        except KeyboardInterrupt as e:
            self._stopped_abruptly(wall0, stop_reason_of(e), None)
            raise
        except BaseException as e:
            self._stopped_abruptly(wall0, "error", f"{type(e).__name__}: {e}")
            raise
        self.log.info(
            "run %d: %d packets in %.6f s of %s clock (%s)",
            self.runs, _results.source_packets(rt), (rt.stopped_ns - rt.started_ns) / 1e9, rt.clock.name,
            self.stop_reason,
        )  # fmt: skip
        return _results.summarize(rt, self.pipeline, runs=self.runs) if summary else None

    # -- internals -------------------------------------------------------------------------------
    def check_unknown_args(self) -> None:
        unknown = [k for k in self.args if k not in self.read]
        if not unknown:
            return
        reads = ", ".join(sorted(self.read)) if self.read else "none"
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, list(self.read), n=1)
            if close:
                hints.append(f"{k!r}: did you mean {close[0]!r}?")
        s = "s" if len(unknown) > 1 else ""
        msg = f"{self.name}: unknown argument{s} {', '.join(map(repr, unknown))} (the script reads: {reads})"
        if hints:
            msg += "; " + "; ".join(hints)
        raise ScriptArgError(msg)

    def _start(self) -> None:
        try:
            self.runtime = Runtime(self.pipeline, self.clock, burst=self.burst, workers=self.workers)
        except GraphError as e:
            raise self.pipeline.locate(e) from None
        self._ensure_out_dir()
        self._write_config()
        if self.view is not None:
            self.view.start(self.runtime)

    def _write_config(self) -> None:
        try:
            self._write_config_file()
        except OSError as e:
            raise ArgError(f"cannot write results to {self.out_dir}: {e.strerror or e}") from None

    def _write_config_file(self) -> None:
        _results.write_config(
            self.out_dir,
            script=self.path,
            args={k: str(v) for k, v in self.args.items()},
            clock=self.clock.name,
            burst=self.burst,
            limits={"seconds": self.seconds, "packets": self.packets},
            pipeline=self.pipeline,
            runtime=self.runtime,
        )

    def _progress(self, rt: Runtime) -> None:
        self.view.update(rt)

    def _ensure_out_dir(self) -> None:
        if self.out_dir.is_dir():
            return
        if self.out_dir.exists():
            raise ArgError(f"results directory {self.out_dir}: exists and is not a directory")
        try:
            self.out_dir.mkdir(parents=True)
        except OSError as e:
            raise ArgError(f"cannot make results directory {self.out_dir}: {e.strerror or e}") from None
        self._made_out_dir = True

    def _stopped_abruptly(self, wall0: float, reason: str, error: str | None) -> None:
        rt = self.runtime
        rt.wall_s += time.perf_counter() - wall0
        rt.stopped_ns = rt.clock.now_ns()
        rt.stop_reason = reason
        self.stop_reason = reason
        if error and self.error is None:
            self.error = error

    def _limits(self, seconds: float | None, packets: int | None) -> tuple[int | None, int | None]:
        if seconds is None and packets is None:
            seconds, packets = self.seconds, self.packets
        if seconds is not None and not seconds > 0:
            raise ArgError(f"run(): seconds must be positive, got {seconds}")
        if packets is not None and packets <= 0:
            raise ArgError(f"run(): packets must be positive, got {packets}")
        if seconds is None and packets is None and self._unbounded_source():
            seconds = DEFAULT_SYNTHETIC_SECONDS
            self.log.info("no --seconds or --packets: running %.1f s of clock time", seconds)
        if packets is None and self._virtual_time_stands_still():
            raise ArgError(
                "the virtual clock would never advance: a Source with rate_pps=0 feeds modules that all "
                "cost 0 ns; give a packet limit (--packets, run(packets=N)), a rate or module costs (cost_ns)"
            )
        duration_ns = None if seconds is None else int(round(seconds * 1e9))
        return duration_ns, (None if packets is None else int(packets))

    def _unbounded_source(self) -> bool:
        return any(isinstance(r, Source) and not r.packets for r in self.runtime.roots)

    def _virtual_time_stands_still(self) -> bool:
        if not self.clock.virtual:
            return False
        free_running = any(isinstance(r, Source) and not r.packets and not r.rate_pps for r in self.runtime.roots)
        return free_running and all(not any(m.cost_ns) for m in self.pipeline)

    def _globals(self) -> dict[str, Any]:
        g: dict[str, Any] = {"__name__": "__main__", "__file__": self.path, "__builtins__": builtins}
        g.update(nf.registry())
        g["FlowTemplate"] = FlowTemplate
        g.update(
            get_arg=self.get_arg,
            add_worker=self.add_worker,
            run=self.run,
            pipeline=self.pipeline,
            clock=self.clock,
            results_dir=self.out_dir,
            log=self.log,
        )

        self.batchy = g["batchy"] = Batchy(self)
        return g

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        """Inside the block, this run is the one that ``from tailgate.run.script import NAME`` serves."""
        _running.append(self)
        try:
            yield
        finally:
            _running.remove(self)

    def execute(self) -> dict[str, Any]:
        """Run the script (and then the pipeline, if the script did not); returns the summary.

        Raises :class:`ScriptError` / :class:`~tailgate.core.errors.TailgateError` (one line) or
        ``KeyboardInterrupt``; the results directory is written in every case once a run started.
        """
        try:
            with open(self.path, encoding="utf-8") as f:
                source = f.read()
        except FileNotFoundError:
            raise ArgError(f"script not found: {self.path}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise ArgError(f"cannot read script {self.path}: {e}") from None
        saved_names = Module.reset_auto_names()  # fresh module names (bypass0, ...) per script, so runs repeat
        script_dir = os.path.dirname(os.path.abspath(self.path))
        sys.path.insert(0, script_dir)
        try:
            self._ensure_out_dir()  # the script may write its own files there
            with self.pipeline, self._active():
                script_globals: dict[str, Any] = {}
                try:
                    code = compile(source, self.path, "exec")
                    script_globals = self._globals()
                    exec(code, script_globals)  # noqa: S102 - running the user's script is the point
                except KeyboardInterrupt:
                    raise
                except ScriptArgError:
                    raise
                except BaseException as e:
                    if isinstance(e, SystemExit) and not e.code:
                        pass  # sys.exit() / sys.exit(0) ends the script normally
                    else:
                        raise ScriptError(describe_exception(e, self.path, script_globals)) from None
                if self.runtime is None:
                    self.check_unknown_args()
                    try:
                        self.run()
                    except (KeyboardInterrupt, TailgateError):
                        raise
                    except Exception as e:
                        raise ScriptError(describe_exception(e, self.path)) from None
        except BaseException as e:
            if isinstance(e, KeyboardInterrupt):
                self.stop_reason = stop_reason_of(e)
            elif self.runtime is not None and self.error is None:
                self.error = str(e) or type(e).__name__
            raise
        finally:
            try:
                self._finish()
            finally:
                Module.restore_auto_names(saved_names)
                try:
                    sys.path.remove(script_dir)
                except ValueError:
                    pass
        return self.summary

    def _finish(self) -> None:
        if self.view is not None:
            self.view.stop()
        rt = self.runtime
        if rt is None:
            for m in self.pipeline:  # close files the modules opened
                try:
                    m.finish()
                except Exception:
                    pass
            if self._made_out_dir:
                try:
                    self.out_dir.rmdir()  # only if the script left nothing in it
                except OSError:
                    pass
            return
        warnings = []
        batchy = getattr(self, "batchy", None)
        if batchy is not None:
            try:
                batchy.stop()  # what Batchy's buffers still hold goes on to its sinks
            except Exception as e:
                warnings.append(f"releasing the packets held in Batchy's buffers failed: {type(e).__name__}: {e}")
        try:
            rt.finish()
        except Exception as e:
            warnings.append(f"finishing the modules failed: {type(e).__name__}: {e}")
        summary = _results.summarize(rt, self.pipeline, stop_reason=self.stop_reason, error=self.error, runs=self.runs)
        summary["warnings"].extend(warnings)
        summary = {"script": self.path, "args": {k: str(v) for k, v in self.args.items()}, **summary}
        if batchy is not None and batchy.rows:
            # the controller's view (flow rates and delays, means of the rounds it names) beside the
            # whole run's packets and rate above
            summary["batchy"] = _results.jsonable(batchy.summary())
        self.summary = summary
        try:
            _results.write_results(self.out_dir, self.pipeline, summary)
        except OSError as e:
            raise ArgError(f"cannot write results to {self.out_dir}: {e.strerror or e}") from None
        self.results_written = True


# ------------------------------------------------------------------------------------------------
# the same names, imported explicitly: ``from tailgate.run.script import get_arg, results_dir``
# ------------------------------------------------------------------------------------------------
_running: list[ScriptRun] = []  # the runs whose scripts are executing, innermost last

#: The names ``tailgate run`` gives a script besides the network function classes (docs/scripts.md).
SCRIPT_NAMES = ("get_arg", "add_worker", "run", "pipeline", "clock", "results_dir", "log", "batchy", "FlowTemplate")

# What the names served by ``__getattr__`` below are, for editors and type checkers (annotations
# only: the values belong to the script that is running).
pipeline: Pipeline
clock: Clock
results_dir: Path
log: logging.Logger
batchy: Batchy


def current_run(name: str = "the script API") -> ScriptRun:
    """The :class:`ScriptRun` whose script is executing; a one-line error naming ``name`` outside one."""
    if not _running:
        raise TailgateError(
            f"tailgate.run.script.{name}: no script is running (run the file with `tailgate run SCRIPT`)"
        )
    return _running[-1]


def get_arg(name: str, default: Any = _REQUIRED, type: Callable[[Any], Any] | None = None) -> Any:
    """The running script's command-line argument ``name``, converted to ``type`` (see the manual above)."""
    return current_run("get_arg").get_arg(name, default, type)


def add_worker(name: str, policy: str = "rr", resource: str = "packets") -> Worker:
    """A worker of the running script's pipeline (see the manual above)."""
    return current_run("add_worker").add_worker(name, policy, resource)


def run(seconds: float | None = None, packets: int | None = None, summary: bool = True) -> dict[str, Any] | None:
    """Run the running script's pipeline (see :meth:`ScriptRun.run`)."""
    return current_run("run").run(seconds, packets, summary)


def __getattr__(name: str) -> Any:
    """``pipeline``, ``clock``, ``results_dir``, ``log``, ``batchy`` of the running script, and the
    network function classes (as ``tailgate.nf`` has them)."""
    if name in ("pipeline", "clock", "results_dir", "log", "batchy"):
        sr = current_run(name)
        return sr.out_dir if name == "results_dir" else getattr(sr, name)
    classes = nf.registry()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
