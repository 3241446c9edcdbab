"""Dispatch: typed request workloads and scheduling policies (Perséphone's DARC and its rivals).

This layer is being built (issue 4). What stands so far: the workload catalogue
(:mod:`tailgate.dispatch.workloads`) and DARC's reservation algorithm
(:mod:`tailgate.dispatch.darc`), both pure and tested against the reference sheet.
"""
