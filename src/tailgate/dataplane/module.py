"""Modules: one small class, one job, one ``process(batch)`` per batch.

Manual
------
A module class declares, once:

- ``n_igates`` / ``n_ogates`` — its gate counts (an instance may change ``n_ogates`` in ``setup``,
  e.g. a split with ``gates=4``);
- ``args`` — its arguments (:class:`~tailgate.core.args.Arg`, with units and defaults), validated at
  construction and then available as attributes (``self.t0_ns``);
- ``drop_reasons`` — the names under which it counts dropped packets;
- ``cost_ns`` — the modeled cost ``(T0, T1)`` of one call on ``b`` packets, ``T0 + T1·b`` ns, used
  by the virtual clock. Any instance can override it: ``DecTTL(cost_ns=(40, 8))``.

``process(batch)`` does the work for one batch and hands packets on with

- ``self.emit(batch, gate)`` — the whole batch to one output gate;
- ``self.emit_codes(batch, codes)`` — per packet: ``codes[i] >= 0`` is an output gate,
  ``codes[i] < 0`` drops packet ``i`` under reason ``drop_reasons[-codes[i] - 1]``;
- ``self.drop(batch, reason)`` — drop a whole batch under a reason.

Dropped packets go straight back to the pool. Wiring reads like the data flow::

    src >> check >> lookup          # gate 0 to gate 0, returns the right-hand module
    lookup[1] >> nat >> sink        # output gate 1 of lookup
    a >> merge.input(1)             # input gate 1 of merge

Before a runtime is built a graph can be changed through public calls only (Batchy splices its
buffers this way): ``nf.splice_in_front(buf)`` puts ``buf`` between ``nf``'s input 0 and
everything that fed it, ``m.rewire(gate, other)`` moves one output gate; ``m.feeders(igate)``,
``m.ogate_peer(gate)``, ``m.open_ogates()`` and ``m.n_ogates_built`` read the wiring. A module
driven by hand, outside a runtime, keeps what it emits on unwired gates:
``m.open_outputs(pool)``, then ``m.process(batch)``, then ``m.drain_outputs()`` returns
``[(gate, batch), ...]`` (see :mod:`tailgate.dataplane.drive`).

Counters are plain attributes updated once per batch and readable by name while a pipeline runs:
``m.counter("drops.bad_ttl")``, ``m.counters()`` (a flat dict), and every argument is a knob:
``m.get("rate_pps")``, ``m.set("rate_pps", 2e6)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from numba import njit

from tailgate.core.args import Arg, bind_args
from tailgate.core.errors import ArgError, GraphError
from tailgate.dataplane.graph import current_pipeline

if TYPE_CHECKING:  # pragma: no cover
    from tailgate.packet.pool import Batch


class OGate:
    """An output gate reference, ``module[k]``; ``>>`` connects it."""

    __slots__ = ("module", "gate")

    def __init__(self, module: "Module", gate: int) -> None:
        self.module = module
        self.gate = gate

    def __rshift__(self, other):
        return self.module._connect(self.gate, other)


class IGate:
    """An input gate reference, ``module.input(k)``."""

    __slots__ = ("module", "gate")

    def __init__(self, module: "Module", gate: int) -> None:
        self.module = module
        self.gate = gate


class Module:
    """Base class of every network function (see the module manual above)."""

    n_igates: ClassVar[int] = 1
    n_ogates: int = 1
    #: Input gates that may stay unconnected (e.g. the reverse direction of a NAT).
    optional_igates: ClassVar[tuple[int, ...]] = ()
    #: Output gates that may stay unconnected; packets sent there are freed and counted in
    #: ``unconnected_drops`` (as are packets given a gate or drop reason the module lacks).
    optional_ogates: ClassVar[tuple[int, ...]] = ()
    args: ClassVar[tuple[Arg, ...]] = ()
    drop_reasons: ClassVar[tuple[str, ...]] = ()
    cost_ns: tuple[float, float] = (0.0, 0.0)
    #: True for modules that own a task: sources and queues. The runtime calls ``run_task``.
    task_root: ClassVar[bool] = False
    _instances: ClassVar[dict[str, int]] = {}

    def __init__(self, name: str | None = None, *, cost_ns: tuple[float, float] | None = None, **kwargs: Any) -> None:
        cls = type(self)
        if name is None:
            k = Module._instances.get(cls.__name__, 0)
            Module._instances[cls.__name__] = k + 1
            name = f"{cls.__name__.lower()}{k}"
        if not isinstance(name, str) or not name:
            raise ArgError(f"{cls.__name__}: module name must be a non-empty string, got {name!r}")
        self.name = name
        values = bind_args(self.label, cls.args, kwargs)
        for k, v in values.items():
            setattr(self, k, v)
        if cost_ns is not None:
            try:
                t0, t1 = (float(x) for x in cost_ns)
            except (TypeError, ValueError):
                raise ArgError(f"{self.label}: cost_ns must be a pair (T0_ns, T1_ns), got {cost_ns!r}") from None
            if t0 < 0 or t1 < 0:
                raise ArgError(f"{self.label}: cost_ns must not be negative, got {cost_ns!r}")
            self.cost_ns = (t0, t1)
        # Set by the runtime before the first call.
        self.clock = None
        self.pool = None
        self.runtime = None
        self.current_igate = 0
        self.setup()
        self._ogates: list[tuple[Module, int] | None] = [None] * self.n_ogates
        # Per output gate, the pending list of the input gate it feeds (None: unconnected):
        # emit appends there without looking the connection up.
        self._ogate_pending: list[list["Batch"] | None] = [None] * self.n_ogates
        self._feeders: list[list[tuple[Module, int]]] = [[] for _ in range(self.n_igates)]
        # Per-igate pending batches within a task round (filled by upstream emits).
        self._pending: list[list["Batch"]] = [[] for _ in range(self.n_igates)]
        self._igate_range = range(self.n_igates)
        self._out: list[tuple[int, "Batch"]] = []
        self.reset_counters()
        current_pipeline().add(self)

    # -- identity -------------------------------------------------------------------------------
    @property
    def label(self) -> str:
        return f"{type(self).__name__}({self.name})"

    def __repr__(self) -> str:
        return self.label

    def setup(self) -> None:
        """Derive state from the validated arguments (tables, gate counts). Raise ArgError on trouble."""

    # -- wiring ---------------------------------------------------------------------------------
    def __getitem__(self, gate: int) -> OGate:
        if not isinstance(gate, int) or not 0 <= gate < self.n_ogates:
            raise GraphError(f"{self.label}: no output gate {gate!r} (it has {self.n_ogates})")
        return OGate(self, gate)

    def input(self, gate: int) -> IGate:
        if not isinstance(gate, int) or not 0 <= gate < self.n_igates:
            raise GraphError(f"{self.label}: no input gate {gate!r} (it has {self.n_igates})")
        return IGate(self, gate)

    def __rshift__(self, other):
        return self._connect(0, other)

    def _connect(self, ogate: int, other) -> "Module":
        dst, igate = self._target(ogate, other)
        if self.n_ogates == 0:
            raise GraphError(f"{self.label}: has no output gates")
        if dst.n_igates == 0:
            raise GraphError(f"{dst.label}: has no input gates; cannot connect {self.label} to it")
        if self._ogates[ogate] is not None:
            prev, pg = self._ogates[ogate]
            raise GraphError(f"{self.label}: output gate {ogate} is already connected to {prev.label} input {pg}")
        self._ogates[ogate] = (dst, igate)
        self._ogate_pending[ogate] = dst._pending[igate]
        dst._feeders[igate].append((self, ogate))
        return dst

    def _target(self, ogate: int, other) -> tuple["Module", int]:
        if isinstance(other, IGate):
            return other.module, other.gate
        if isinstance(other, Module):
            return other, 0
        raise GraphError(f"{self.label}: cannot connect output gate {ogate} to {other!r} (not a module)")

    def connected_ogates(self):
        return [(g, c[0], c[1]) for g, c in enumerate(self._ogates) if c is not None]

    # -- graph surgery and read-only views (for Batchy, the profiler, gate-counting NFs) ---------
    @property
    def n_ogates_built(self) -> int | None:
        """How many output gates the module was built with; None while ``setup`` runs (the gates
        do not exist yet and ``n_ogates`` may still change). A knob changed later cannot add gates,
        so a setter checks gate numbers against this."""
        ogates = getattr(self, "_ogates", None)
        return None if ogates is None else len(ogates)

    def ogate_peer(self, gate: int) -> tuple["Module", int] | None:
        """Where output ``gate`` leads, ``(module, input gate)``; None while it is open."""
        return self._ogates[self[gate].gate]

    def open_ogates(self) -> list[int]:
        """The output gates not connected to anything, in order."""
        return [g for g, c in enumerate(self._ogates) if c is None]

    def feeders(self, igate: int = 0) -> list[tuple["Module", int]]:
        """Who feeds input ``igate``: ``(module, output gate)`` pairs in the order they were
        connected (a copy: rewire with :meth:`rewire` or :meth:`splice_in_front`)."""
        return list(self._feeders[self.input(igate).gate])

    def rewire(self, ogate: int, other) -> "Module":
        """Move output ``ogate`` from wherever it leads to ``other`` (a module, meaning its input 0,
        or ``module.input(k)``); an open gate is simply connected. Returns the new peer.

        Only before a runtime is built: a task caches each module's input lists on its first
        round, so rewiring a running graph would lose packets. GraphError otherwise.
        """
        self[ogate]  # (validates the gate number)
        dst, _igate = self._target(ogate, other)
        for m in (self, dst):
            if m.runtime is not None:
                raise GraphError(f"{m.label}: cannot rewire a module that a runtime already runs")
        peer = self._ogates[ogate]
        if peer is not None:
            old, old_igate = peer
            old._feeders[old_igate].remove((self, ogate))
            self._ogates[ogate] = None
            self._ogate_pending[ogate] = None
        return self._connect(ogate, other)

    def splice_in_front(self, front: "Module", igate: int = 0) -> None:
        """Insert ``front`` (an unwired one-in module: a buffer, a queue) before input ``igate``:
        every feeder of that input now feeds ``front``'s input 0, in the same order, and
        ``front``'s output 0 feeds the input. Only before a runtime is built (see :meth:`rewire`).
        ::

            split[0] >> nf            # split -> nf
            nf.splice_in_front(buf)   # split -> buf -> nf
        """
        for up, og in self.feeders(igate):
            up.rewire(og, front)
        front._connect(0, self.input(igate))

    # -- driving a module by hand (tests, the profiler) -------------------------------------------
    def open_outputs(self, pool, *, igate: int = 0, clock=None) -> None:
        """Run this module outside any runtime: it takes packets from ``pool``, its calls arrive on
        input ``igate``, ``clock`` (when given) is its clock, and what it emits on an unwired gate
        is kept for :meth:`drain_outputs` instead of being dropped. Forgets anything kept before."""
        self.pool = pool
        if clock is not None:
            self.clock = clock
        self.runtime = None
        self.current_igate = igate
        self._out.clear()

    def drain_outputs(self) -> list[tuple[int, "Batch"]]:
        """What the module emitted on unwired gates since the last drain, ``(gate, batch)`` in
        order. The batches stay allocated: the caller reads them, frees them, or passes them on."""
        out = self._out
        self._out = []
        return out

    @staticmethod
    def reset_auto_names() -> dict[str, int]:
        """Number automatic module names (``bypass0``, ``bypass1``, ...) from 0 again, as every
        script run does so that runs repeat; returns the counters it replaced, for
        :meth:`restore_auto_names`."""
        saved = dict(Module._instances)
        Module._instances.clear()
        return saved

    @staticmethod
    def restore_auto_names(saved: dict[str, int]) -> None:
        """Put back the automatic-name counters that :meth:`reset_auto_names` returned."""
        Module._instances.clear()
        Module._instances.update(saved)

    # -- processing -----------------------------------------------------------------------------
    def process(self, batch: "Batch") -> None:
        raise NotImplementedError(f"{type(self).__name__}.process")

    def emit(self, batch: "Batch", gate: int = 0) -> None:
        n = len(batch.idx)
        if n:
            pending = self._ogate_pending[gate]
            if pending is None:
                if self.runtime is not None:
                    # An optional gate left open in a running pipeline.
                    self.unconnected_drops += n
                    batch.free()
                else:
                    # Not wired (a module driven by hand, e.g. in a test): keep it for the caller.
                    self._out.append((gate, batch))
                return
            pending.append(batch)
            self.packets_out[gate] += n

    def emit_codes(self, batch: "Batch", codes: np.ndarray) -> None:
        """Per-packet fate: ``codes >= 0`` output gate, ``codes < 0`` drop reason ``-code-1``.

        Packets of one gate keep their order. When every packet goes to one gate the batch itself
        is passed on (its parsed headers stay cached for the next module). With one output gate
        every code >= 0 means gate 0; with several, a code >= ``n_ogates`` is freed and counted in
        ``unconnected_drops``, and so is a drop code beyond ``drop_reasons``.
        """
        n = len(batch.idx)
        if n == 0:
            return
        n_og = self.n_ogates
        # One numba scan for the usual case (one fate for the whole batch), then at most one
        # numba counting sort: numpy's min/any/bincount/select/argsort chain costs ~10x more.
        g = _uniform_fate(codes, n_og)
        if g >= 0:
            self.emit(batch, g)
            return
        out = np.empty(n + n_og + 1, np.int32)
        n_bad_gate = _partition_fates(batch.idx, codes, n_og, self.drop_counts, out)
        if n_bad_gate:
            self.unconnected_drops += n_bad_gate
        pool = batch.pool
        pos = 0
        for gate, c in enumerate(out[n:].tolist()):
            if c:
                if gate < n_og:
                    self.emit(type(batch)(pool, out[pos : pos + c]), gate)
                elif c == n:
                    batch.free()
                else:
                    pool.free_idx(out[pos:n])
                pos += c

    def drop(self, batch: "Batch", reason: str | int = 0) -> None:
        if not len(batch):
            return
        r = reason if isinstance(reason, int) else self.drop_reasons.index(reason)
        self.drop_counts[r] += len(batch)
        batch.free()

    # -- counters and knobs ---------------------------------------------------------------------------
    def reset_counters(self) -> None:
        self.packets_in = 0
        self.batches_in = 0
        self.unconnected_drops = 0
        self.time_ns = 0
        self.packets_out = [0] * max(self.n_ogates, 1)
        self.drop_counts = np.zeros(max(len(self.drop_reasons), 1), dtype=np.int64)

    def counters(self) -> dict[str, int]:
        """Every counter by name: packets_in, batches_in, time_ns, out.G, drops, drops.REASON."""
        c = {
            "packets_in": int(self.packets_in),
            "batches_in": int(self.batches_in),
            "packets_out": int(sum(self.packets_out)),
            "time_ns": int(self.time_ns),
            "drops": int(self.drop_counts[: len(self.drop_reasons)].sum()) + self.unconnected_drops,
        }
        for g in range(self.n_ogates):
            c[f"out.{g}"] = int(self.packets_out[g])
        for i, r in enumerate(self.drop_reasons):
            c[f"drops.{r}"] = int(self.drop_counts[i])
        if self.unconnected_drops:
            c["drops.unconnected"] = self.unconnected_drops
        c.update(self.extra_counters())
        return c

    def extra_counters(self) -> dict[str, int | float]:
        """Module-specific counters (override)."""
        return {}

    def counter(self, name: str) -> int | float:
        c = self.counters()
        if name not in c:
            raise ArgError(f"{self.label}: no counter {name!r} (counters: {', '.join(c)})")
        return c[name]

    def get(self, name: str) -> Any:
        """Read an argument (knob) by name."""
        if name not in {a.name for a in type(self).args}:
            raise ArgError(f"{self.label}: no argument {name!r}")
        return getattr(self, name)

    def set(self, name: str, value: Any) -> None:
        """Write an argument (knob) by name while running; validated like at construction."""
        decl = {a.name: a for a in type(self).args}
        if name not in decl:
            raise ArgError(f"{self.label}: no argument {name!r}")
        setattr(self, name, decl[name].convert(self.label, value))
        self.on_set(name)

    def on_set(self, name: str) -> None:
        """Called after a knob changed (override to rebuild derived state)."""

    def rebuild_or_roll_back(self, rebuild, *, changed: str | None = None, one_of: tuple[str, ...] = ()) -> None:
        """Run ``rebuild()`` (derive tables from the arguments; ArgError on trouble), all or nothing.

        On success the arguments are remembered. On ArgError every argument gets back the value
        it had at the last success and the error goes on, so a knob change that fails leaves the
        module as it was: its old table (``rebuild`` assigns derived state only once it cannot
        fail) and its old arguments. ``one_of`` names arguments of which only one is given (a
        file or an inline list): when ``changed``, one of them, is set to something, the others
        are set to None first. Call it from ``setup`` and from ``on_set``::

            def setup(self):
                self.rebuild_or_roll_back(self._compile)

            def on_set(self, name):
                if name in ("rules", "rules_file", "default_gate"):
                    self.rebuild_or_roll_back(self._compile, changed=name, one_of=("rules", "rules_file"))
        """
        try:
            if changed in one_of and getattr(self, changed) is not None:
                for other in one_of:
                    if other != changed:
                        setattr(self, other, None)
            rebuild()
        except ArgError:
            for k, v in self.__dict__.get("_args_built", {}).items():
                setattr(self, k, v)
            raise
        self._args_built = {a.name: getattr(self, a.name) for a in type(self).args}

    def config(self) -> dict[str, Any]:
        """The module's arguments, for the results directory's configuration echo."""
        out = {}
        for a in type(self).args:
            v = getattr(self, a.name)
            out[a.name] = v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
        return out

    # -- task roots -----------------------------------------------------------------------------
    def run_task(self, burst: int) -> int:
        """Task roots only: produce up to ``burst`` packets with ``emit``; return how many."""
        raise NotImplementedError(f"{type(self).__name__} is not a task root")

    def next_event_ns(self) -> int | None:
        """Task roots only: when this root next has work, if known (None: unknown or never)."""
        return None

    def exhausted(self) -> bool:
        """Task roots only: True when this root will never produce again (pcap EOF, count reached)."""
        return False

    def overloaded(self) -> bool:
        """Queues only: True while asking upstream tasks to hold back (backpressure)."""
        return False

    def finish(self) -> None:
        """Called once when a run ends (flush and close files)."""


@njit(cache=True)
def _uniform_fate(codes, n_gates):
    """The output gate of every packet when they all share one (any code >= 0 counts as gate 0
    with one gate), else -1."""
    n = codes.shape[0]
    c0 = np.int64(codes[0])
    if c0 < 0 or (c0 >= n_gates and n_gates != 1):
        return -1
    for k in range(1, n):
        c = np.int64(codes[k])
        if c != c0 and (n_gates != 1 or c < 0):
            return -1
    return 0 if n_gates == 1 else c0


@njit(cache=True)
def _partition_fates(idx, codes, n_gates, drop_counts, out):
    """Counting sort of ``idx`` by fate into ``out``: ``out[:n]`` holds the packets of gate 0,
    gate 1, ..., then those to free (drops and gates out of range), order kept in each part;
    ``out[n + g]`` the count of gate g, ``out[n + n_gates]`` the count to free. Adds the drops
    to ``drop_counts`` per reason; returns how many had a gate or drop reason out of range."""
    n = idx.shape[0]
    nb = n_gates + 1
    counts = out[n:]
    counts[:] = 0
    n_reasons = drop_counts.shape[0]
    n_bad_gate = 0
    for k in range(n):
        c = np.int64(codes[k])
        if c < 0:
            r = -c - 1
            if r < n_reasons:
                drop_counts[r] += 1
            else:
                n_bad_gate += 1  # an undeclared reason: still freed, and counted, never lost
            counts[n_gates] += 1
        elif n_gates == 1:
            counts[0] += 1
        elif c < n_gates:
            counts[c] += 1
        else:
            n_bad_gate += 1
            counts[n_gates] += 1
    start = np.empty(nb, np.int64)
    s = 0
    for b in range(nb):
        start[b] = s
        s += counts[b]
    for k in range(n):
        c = np.int64(codes[k])
        if c < 0 or (c >= n_gates and n_gates != 1):
            b = n_gates
        elif n_gates == 1:
            b = 0
        else:
            b = c
        out[start[b]] = idx[k]
        start[b] += 1
    return n_bad_gate
