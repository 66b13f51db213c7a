"""Worker processes die with their parent: no decode worker outlives a killed ``imgret index``.

A parent killed with SIGKILL (or by the OOM killer) cannot tell its workers to stop, and an idle pool
worker blocked on its task queue would wait for ever (and keep multiprocessing's resource tracker alive
with it). Two guards, installed by :func:`die_with_parent` as the first thing a worker does:

- on Linux, ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: the kernel kills the worker the moment its parent dies;
- everywhere, a daemon thread that checks every :data:`CHECK_SECONDS` whether the parent is still the
  one that started us (an orphan is re-parented, so ``os.getppid()`` changes) and exits if not.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

CHECK_SECONDS = 0.5
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(parent_pid: int) -> None:
    """Make this process exit when ``parent_pid`` (the process that started it) dies."""
    _set_parent_death_signal()
    if os.getppid() != parent_pid:  # the parent died before the guard was in place
        os._exit(1)
    watchdog = threading.Thread(target=_watch, args=(parent_pid,), name="imgret-lifeline", daemon=True)
    watchdog.start()


def _set_parent_death_signal() -> bool:
    """Ask the Linux kernel to SIGKILL us when our parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch(parent_pid: int) -> None:
    stop = threading.Event()
    while not stop.wait(CHECK_SECONDS):
        if os.getppid() != parent_pid:
            os._exit(1)  # not sys.exit: nothing of a dead run is worth cleaning up, and threads may hang
