"""Running pipelines: the script API (:mod:`~tailgate.run.script`), the results directory
(:mod:`~tailgate.run.results`) and the progress view (:mod:`~tailgate.run.progress`)."""
