"""Errors a user can see. Each carries one clear line that names the file, module or argument.

The command line catches :class:`TailgateError` and prints its message without a traceback.
"""


class TailgateError(Exception):
    """Base class of every error meant for the user (one line, names what is wrong)."""


class ArgError(TailgateError, ValueError):
    """A bad module or script argument."""


class GraphError(TailgateError):
    """A pipeline graph that cannot run: unconnected gate, cycle without a queue, ..."""
