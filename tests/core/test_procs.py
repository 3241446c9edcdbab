"""core.procs: a child stops on SIGTERM, or is killed with its group after the grace period."""

import subprocess
import sys
import time

from tailgate.core.procs import stop_group

STUBBORN = ("import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); print('up', flush=True); "
            "time.sleep(60)")


def test_a_child_that_ignores_sigterm_is_killed_with_its_group_after_the_grace():
    p = subprocess.Popen([sys.executable, "-c", STUBBORN], start_new_session=True, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "up"
    t0 = time.monotonic()
    stop_group(p, grace_s=0.5)
    assert p.returncode == -9 and 0.4 < time.monotonic() - t0 < 10
    p.stdout.close()
    # the grandchild was in the group: nothing of it is left
    deadline = time.monotonic() + 5  # killed at once; its reaping (by init) may take a moment
    while subprocess.run(["pgrep", "-g", str(p.pid)], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "a process of the group is still there"
        time.sleep(0.05)


def test_an_exited_child_is_only_reaped():
    p = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    time.sleep(0.5)
    stop_group(p, grace_s=0.1, term_group=False)
    assert p.returncode == 0
