"""Stopping a child process and what it started, politely and then for sure.

Manual
------
:func:`stop_group` sends ``SIGTERM`` (to the child alone, or to its whole process group when it
was started with ``start_new_session=True``), waits up to ``grace_s``, then ``SIGKILL``\\ s the
group and reaps the child. A child that already exited is only reaped; a group that is gone is
not an error.

>>> import subprocess, sys
>>> p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
>>> stop_group(p, grace_s=5.0)
>>> p.returncode is not None
True
"""

from __future__ import annotations

import os
import signal
import subprocess


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def stop_group(proc: subprocess.Popen, grace_s: float, term_group: bool = True) -> None:
    """SIGTERM ``proc`` (its process group with ``term_group``), SIGKILL its group after ``grace_s`` s; reap it."""
    if proc.poll() is not None:
        proc.wait()
        return
    if term_group:
        _signal_group(proc.pid, signal.SIGTERM)
    else:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
