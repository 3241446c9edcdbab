"""Core: clocks, errors and argument declarations shared by every layer."""
