"""FaaSBatch: batching function invocations into sandboxes (reference: FaaSBatch, ICDCS '23 / TC '24).

The pure part: the workload (:mod:`tailgate.faas.trace`), the strategies and the warm pool
(:mod:`tailgate.faas.strategies`), the in-sandbox shared-object cache (:mod:`tailgate.faas.cache`)
and the virtual-time simulator (:mod:`tailgate.faas.sim`); ``tailgate faas`` runs them.
"""
