"""The pipeline: every module of a script, checked as a graph before anything runs.

Manual
------
Modules join the current pipeline when they are made (``with Pipeline() as p:`` makes one current;
otherwise a default pipeline is used, as in BESS scripts). :meth:`Pipeline.build` checks the graph
and cuts it into tasks:

- every output gate is connected (an unconnected gate would lose packets silently);
- every input gate of a module that is not a task root has a feeder (except gates the module
  declares in ``optional_igates``, such as a NAT's reverse direction);
- there is no cycle that does not pass through a queue (a cycle inside one run-to-completion
  task would never end);
- every module is reachable from some task root (a source or a queue).

Each failure is a :class:`~tailgate.core.errors.GraphError` naming the module and gate.

A *task* is rooted at a source or a queue and holds every module reachable from it without passing
through another queue; its modules run in longest-path order, so a module fed by several branches
runs after all of them and gets their batches merged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterator

from tailgate.core.errors import GraphError

if TYPE_CHECKING:  # pragma: no cover - a Module joins a Pipeline, so graph sits below module
    from tailgate.dataplane.module import Module

_current: list["Pipeline"] = []


def current_pipeline() -> "Pipeline":
    """The pipeline new modules join: the innermost ``with Pipeline():`` block, else a default one."""
    if not _current:
        _current.append(Pipeline())
    return _current[-1]


class Pipeline:
    def __init__(self) -> None:
        self.modules: dict[str, Module] = {}

    def __enter__(self) -> "Pipeline":
        _current.append(self)
        return self

    def __exit__(self, *exc) -> None:
        _current.remove(self)

    def add(self, m: Module) -> None:
        if m.name in self.modules:
            raise GraphError(f"{m.label}: a module named {m.name!r} already exists ({self.modules[m.name].label})")
        self.modules[m.name] = m

    def __getitem__(self, name: str) -> Module:
        try:
            return self.modules[name]
        except KeyError:
            raise GraphError(f"no module named {name!r} (modules: {', '.join(self.modules)})") from None

    def __iter__(self) -> Iterator[Module]:
        return iter(self.modules.values())

    def __len__(self) -> int:
        return len(self.modules)

    # -- checks -------------------------------------------------------------------------------------
    def check(self) -> None:
        if not self.modules:
            raise GraphError("the pipeline has no modules")
        for m in self:
            for g, c in enumerate(m._ogates):
                if c is None and g not in m.optional_ogates:
                    raise GraphError(f"{m.label}: output gate {g} is not connected")
            if not m.task_root:
                for g, feeders in enumerate(m._feeders):
                    if not feeders and g not in m.optional_igates:
                        raise GraphError(f"{m.label}: input gate {g} is not connected (the module would never run)")
        self._check_cycles()
        roots = [m for m in self if m.task_root]
        if not roots:
            raise GraphError("the pipeline has no source or queue to run")
        seen: set[int] = set()
        stack = list(roots)
        while stack:
            m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            stack.extend(dst for _, dst, _ in m.connected_ogates())
        for m in self:
            if id(m) not in seen:
                raise GraphError(f"{m.label}: not reachable from any source or queue")

    def _check_cycles(self) -> None:
        # Edges into a task root (a queue) end a run-to-completion chain, so they cannot close a cycle.
        WHITE, GREY, BLACK = 0, 1, 2
        color = {id(m): WHITE for m in self}
        path: list[Module] = []

        def visit(m: Module) -> None:
            color[id(m)] = GREY
            path.append(m)
            for _, dst, _ in m.connected_ogates():
                if dst.task_root:
                    continue
                c = color.get(id(dst), WHITE)
                if c == GREY:
                    cyc = path[path.index(dst):] + [dst]
                    raise GraphError("cycle without a queue: " + " -> ".join(x.label for x in cyc))
                if c == WHITE:
                    visit(dst)
            path.pop()
            color[id(m)] = BLACK

        for m in self:
            if color[id(m)] == WHITE:
                visit(m)

    # -- tasks -------------------------------------------------------------------------------------
    def task_modules(self, root: Module) -> list[Module]:
        """Modules of the task rooted at ``root`` in longest-path order (root first).

        A downstream queue belongs to the task (its ``process`` enqueues) but is not expanded.
        """
        depth: dict[int, int] = {id(root): 0}
        # Longest path in a DAG: relax in topological order (Kahn over the task's subgraph).
        reach: list[Module] = []
        stack = [root]
        seen = {id(root)}
        while stack:
            m = stack.pop()
            reach.append(m)
            if m.task_root and m is not root:
                continue
            for _, dst, _ in m.connected_ogates():
                if id(dst) not in seen:
                    seen.add(id(dst))
                    stack.append(dst)
        indeg = {id(m): 0 for m in reach}
        for m in reach:
            if m.task_root and m is not root:
                continue
            for _, dst, _ in m.connected_ogates():
                if dst is not root:
                    indeg[id(dst)] += 1
        ready = [root]
        order: list[Module] = []
        while ready:
            m = ready.pop()
            order.append(m)
            if m.task_root and m is not root:
                continue
            for _, dst, _ in m.connected_ogates():
                if dst is root:
                    continue
                depth[id(dst)] = max(depth.get(id(dst), 0), depth[id(m)] + 1)
                indeg[id(dst)] -= 1
                if indeg[id(dst)] == 0:
                    ready.append(dst)
        order.sort(key=lambda x: depth[id(x)])
        return order

    def roots(self) -> list[Module]:
        return [m for m in self if m.task_root]
