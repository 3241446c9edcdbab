"""Batchy's module profiler: what each network function costs per batch on this machine.

- :mod:`~tailgate.batchy.profiler.store` — the profile file: where it lives, load, save (merge),
  one class's ``(T_0, T_1)``;
- :mod:`~tailgate.batchy.profiler.fixtures` — per class, a realistic instance and its frames;
- :mod:`~tailgate.batchy.profiler.harness` — the measurement: timed rounds, the overhead taken
  off, the fit ``T(b) = T_0 + T_1·b``; ``tailgate profile`` runs it.
"""
