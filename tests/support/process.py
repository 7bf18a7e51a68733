"""Child processes of the tests (brokers, database servers, workers): started with their output appended
to a log file, stopped with a signal and a bounded wait, SIGKILLed. Standard library only."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path


class ChildProcess:
    """``pid`` and ``running`` of the one child process an object starts and owns, kept in ``_proc``
    (None before it was started)."""

    _proc: subprocess.Popen | None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None


def spawn_logged(
    argv: Sequence[str], log_path: Path, banner: str, *, cwd: Path, **popen: object
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in a session of its own (a Ctrl-C in the terminal reaches pytest, which stops the
    child in order), stdin from /dev/null, stdout and stderr appended to ``log_path`` after the line
    ``banner``. ``popen`` goes to :class:`subprocess.Popen` as is (``env``, ``user``, ...)."""
    with open(log_path, "ab") as log:
        log.write(banner.encode())
        log.flush()
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
            **popen,
        )


def stop_process(
    proc: subprocess.Popen, timeout: float, sig: int = signal.SIGTERM, kill_wait: float = 30.0
) -> int | None:
    """Send ``sig`` unless ``proc`` has exited, wait up to ``timeout`` s, then SIGKILL it and wait up to
    ``kill_wait`` s more. Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(kill_wait)
    return proc.returncode


def kill_process(proc: subprocess.Popen, wait: float = 30.0) -> int | None:
    """SIGKILL unless ``proc`` has exited, and reap it (waiting up to ``wait`` s). Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
    proc.wait(wait)
    return proc.returncode
