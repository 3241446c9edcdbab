"""tailgate: batched packet and request processing under latency objectives."""
__version__ = "0.1.0"
