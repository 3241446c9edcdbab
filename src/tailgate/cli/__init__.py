"""The ``tailgate`` command: one module per command group (:mod:`~tailgate.cli.main` wires them)."""
from tailgate.cli.main import app, main

__all__ = ["app", "main"]
