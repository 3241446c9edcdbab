"""Where a Batchy module's cost ``T0 + T1·b`` (ns) comes from.

Manual
------
:meth:`CostBook.costs` answers, for a module being added to a task, ``(T0, T1, source)``:

- plumbing (:func:`tailgate.batchy.spec.is_plumbing`): ``0, 0, "plumbing"``;
- a Bypass: its own ``t0_ns``/``t1_ns`` (``cost_ns``), on either clock: it spins exactly that
  long on the wall clock and is charged that on the virtual one;
- virtual clock: ``add_module(..., T_0=, T_1=)`` (``"given"``; the module's ``cost_ns`` is set to
  them, so the clock charges what the model assumes), else the module's ``cost_ns``;
- wall clock: what this machine's profile measured (``"profile"``, :mod:`tailgate.batchy.profiler.store`).
  A class the profile lacks is profiled on the spot (about a second,
  :func:`tailgate.batchy.profiler.harness.profile`) and added to the file; only when that cannot
  be done, the given or nominal cost with a warning, and ``0, 0, "none"`` (uncontrolled) with a
  warning naming the module.

``T_0`` and ``T_1`` come together or not at all, and are never negative (ArgError).

Example::

    book = CostBook()
    book.costs(Bypass(t0_ns=400, t1_ns=40), None, None, virtual=True)   # (400.0, 40.0, "cost_ns")
"""

from __future__ import annotations

import logging

from tailgate.batchy.profiler.fixtures import known_modules
from tailgate.batchy.profiler.harness import profile
from tailgate.batchy.profiler.store import load_profile, module_cost, profile_path
from tailgate.batchy.spec import is_plumbing
from tailgate.core.errors import ArgError

log = logging.getLogger("tailgate.batchy")

#: a wall-clock run profiles a class missing from the profile for at most this long (s)
ON_THE_SPOT_BUDGET_S = 1.0


class CostBook:
    """Module costs for one Batchy run; reads the profile once, profiles a missing class once."""

    def __init__(self) -> None:
        self._profile: dict | None = None
        self._profile_failed: set[str] = set()

    def costs(self, module, T_0, T_1, virtual: bool) -> tuple[float, float, str]:
        """(T0, T1, where they came from) for a module being added (see the manual)."""
        if (T_0 is None) != (T_1 is None):
            raise ArgError(f"module {module.name}: give both T_0 and T_1 (ns) or neither")
        if T_0 is not None:
            T0, T1 = float(T_0), float(T_1)
            if T0 < 0 or T1 < 0:
                raise ArgError(f"module {module.name}: T_0 and T_1 must not be negative, got {T_0}, {T_1}")
        if is_plumbing(module):
            return 0.0, 0.0, "plumbing"
        cls = type(module).__name__
        if cls == "Bypass":
            return float(module.cost_ns[0]), float(module.cost_ns[1]), "cost_ns"
        if virtual:
            if T_0 is not None:
                module.cost_ns = (T0, T1)       # the virtual clock charges what the model assumes
                return T0, T1, "given"
            if any(module.cost_ns):
                return float(module.cost_ns[0]), float(module.cost_ns[1]), "cost_ns"
        # The wall clock: what this module costs on this machine, measured.
        cost = self.profiled(cls)
        if cost is not None:
            return float(cost[0]), float(cost[1]), "profile"
        if T_0 is not None:
            log.warning("module %s (%s): no profile on this machine; the given T_0/T_1 (%g/%g ns) model "
                        "other hardware", module.name, cls, T0, T1)
            return T0, T1, "given"
        if any(module.cost_ns):
            log.warning("module %s (%s): no profile on this machine; using its nominal cost %s ns",
                        module.name, cls, tuple(module.cost_ns))
            return float(module.cost_ns[0]), float(module.cost_ns[1]), "cost_ns"
        log.warning("module %s (%s): no cost given and no profile for it (run `tailgate profile %s`); "
                    "modeled as 0/0 ns and not controlled", module.name, cls, cls)
        return 0.0, 0.0, "none"

    def profiled(self, cls: str) -> tuple[float, float] | None:
        """The profile's ``(T0, T1)`` of class ``cls``, profiling it now if the file lacks it."""
        if self._profile is None:
            try:
                self._profile = load_profile()
            except Exception as e:   # a broken profile file: say so once, run unprofiled
                log.warning("cannot read the module profile (%s); unprofiled modules cost 0", e)
                self._profile = {}
        cost = module_cost(cls, self._profile)
        if cost is None and cls in known_modules() and cls not in self._profile_failed:
            log.warning("module class %s is not in the profile %s: profiling it now (`tailgate profile %s`)",
                        cls, profile_path(), cls)
            try:
                self._profile.update(profile([cls], budget_s=ON_THE_SPOT_BUDGET_S))
            except Exception as e:
                log.warning("profiling %s failed (%s); it is modeled without a profile", cls, e)
                self._profile_failed.add(cls)
            cost = module_cost(cls, self._profile)
        return cost
