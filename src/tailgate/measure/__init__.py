"""Measurement: latency histograms and percentile accounting."""
from tailgate.measure.hist import LatencyHistogram

__all__ = ["LatencyHistogram"]
