"""A warm parent for ``imgret`` child processes: it imports imgret once, then forks one child per run.

A fresh ``python -m imgret`` spends most of a short run importing numpy, onnxruntime, usearch and
Pillow. The reliability tests need real processes (killed with SIGKILL, crashing, leaving a library
half written) but not a fresh import each time, so :mod:`harness` starts this script once per test
process and asks it for children. Each child is a real process: its own pid, its own file
descriptors, killed for real; it runs ``imgret.__main__`` as ``python -m imgret`` does (same
``sys.argv``, environment, working directory, stdin from /dev/null, stdout and stderr to files) and
exits the way the interpreter would (non-daemon threads joined, ``atexit`` run, streams flushed).

The parent stays single-threaded and never opens a model, so forking it is safe. What a fork cannot
give is a fresh interpreter start: the harness runs a real ``python -m imgret`` whenever the
environment changes something read at start-up (``PYTHON*``, locale) or the caller needs
``subprocess`` options.

Protocol: one JSON request per line on stdin, one JSON reply per line on stdout. Arguments and
environment travel as hex of their OS bytes, so undecodable paths arrive exactly as ``exec`` would
pass them.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import pkgutil
import select
import shutil
import signal
import sys
import threading
import time
import traceback


def warm_up() -> None:
    """Import what an ``imgret`` run imports (onnxruntime first and quietly, as imgret does)."""
    from imgret.runtime.session import quiet_onnxruntime

    quiet_onnxruntime()
    import imgret.cli
    import imgret.runtime

    for info in pkgutil.iter_modules(imgret.runtime.__path__, "imgret.runtime."):
        if not info.name.endswith(".cluster"):  # dask: imported only by `index --cluster`
            importlib.import_module(info.name)
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401

    del imgret


def _redirect(path: str, fd: int, flags: int) -> None:
    new = os.open(path, flags, 0o600)
    os.dup2(new, fd)
    os.close(new)


def _exit_code(exc: SystemExit) -> int:
    """What the interpreter makes of ``sys.exit(value)``."""
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def child(req: dict) -> None:
    """Become ``python -m imgret ARGS`` in the request's environment; never returns."""
    code = 1
    try:
        os.chdir(req["cwd"])
        os.environb.clear()
        os.environb.update({bytes.fromhex(k): bytes.fromhex(v) for k, v in req["env"].items()})
        _redirect(os.devnull, 0, os.O_RDONLY)
        _redirect(req["stdout"], 1, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        _redirect(req["stderr"], 2, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        if req.get("file_limit") is not None:  # see harness.run_imgret_with_file_limit
            import resource

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (req["file_limit"], req["file_limit"]))
        sys.argv = ["-m", *(os.fsdecode(bytes.fromhex(a)) for a in req["args"])]
        import runpy

        try:
            runpy.run_module("imgret", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc)
        except BaseException:
            sys.excepthook(*sys.exc_info())
            code = 1
        threading._shutdown()  # as the interpreter does at exit: join non-daemon threads, then atexit
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                code = 120  # what CPython exits with when flushing stdout fails at exit
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def wait(pid: int, timeout: float) -> int | None:
    """The child's exit code (negative: killed by that signal), or ``None`` if it ran past ``timeout``."""
    deadline = time.monotonic() + timeout
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            left = deadline - time.monotonic()
            if left <= 0:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return None
            if pidfd is not None:
                select.select([pidfd], [], [], left)
            else:
                time.sleep(min(left, 0.005))
    finally:
        if pidfd is not None:
            os.close(pidfd)


def serve(folder: str) -> None:
    """Answer requests until stdin closes (the test process ended, however it ended), then remove
    ``folder``, the harness's scratch folder for the children's output."""
    try:
        warm_up()
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        for line in sys.stdin:
            req = json.loads(line)
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                child(req)
            code = wait(pid, req["timeout"])
            sys.stdout.write(json.dumps({"code": code}) + "\n")
            sys.stdout.flush()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.path[0] = os.getcwd()  # as for `python -m`: the working folder, not this script's
    serve(sys.argv[1])
