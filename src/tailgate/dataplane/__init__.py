"""Data plane: modules with gates, the pipeline graph, tasks and workers."""
from tailgate.dataplane.graph import Pipeline, current_pipeline
from tailgate.dataplane.module import Module
from tailgate.dataplane.runtime import Task, Worker

__all__ = ["Module", "Pipeline", "Task", "Worker", "current_pipeline"]
