"""Odradek broker processes for tests: start, stop, SIGKILL, restart on the same port and data.

The contract with ``odradek serve`` (src/odradek/cli.py):

* ``python -m odradek.cli serve --listen HOST:PORT --data-dir DIR [--set KEY=VALUE ...]``
* the first line on stdout is exactly ``odradek listening on HOST:PORT <data-dir>`` once the socket
  accepts connections (PORT is the bound one when 0 was asked for);
* SIGTERM is a clean shutdown (exit code 0); stderr is the broker's log.

The child runs the working tree's code: ``<repo>/src`` is put first on its PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .net import tail
from .process import ChildProcess, kill_process, stop_process

REPO_ROOT = Path(__file__).resolve().parents[2]
SRC_DIR = REPO_ROOT / "src"

_READY_RE = re.compile(r"^odradek listening on (?P<host>\S+):(?P<port>\d+) (?P<data_dir>.+)$")


class OdradekStartError(RuntimeError):
    pass


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC_DIR), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("PYTHONFAULTHANDLER", "1")
    if extra:
        env.update(extra)
    return env


class OdradekBroker(ChildProcess):
    """One ``odradek serve`` process on ``data_dir``.

    ``settings`` become ``--set k=v`` arguments (Kafka configuration names). The broker's stderr
    (and any stdout after the ready line) is appended to ``<data_dir.parent>/<data_dir.name>.log``,
    across restarts. Usable as a context manager (start / stop).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        listen: str = "127.0.0.1:0",
        settings: Mapping[str, str] | None = None,
        start_timeout: float = 10.0,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.listen = listen
        self.settings = dict(settings or {})
        self.start_timeout = start_timeout
        self.extra_args = list(extra_args)
        self.env = dict(env or {})
        self.host: str | None = None
        self.port: int | None = None
        self.returncode: int | None = None
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._pump: threading.Thread | None = None

    # -- addresses and state --------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    @property
    def bootstrap(self) -> str:
        if self.port is None:
            raise RuntimeError("OdradekBroker has not been started")
        return f"{self.host}:{self.port}"

    def argv(self, listen: str | None = None) -> list[str]:
        args = [sys.executable, "-m", "odradek.cli", "serve"]
        if "listeners" not in self.settings:  # the listeners config names every address itself
            args += ["--listen", listen or self.listen]
        args += ["--data-dir", str(self.data_dir)]
        for k, v in self.settings.items():
            args += ["--set", f"{k}={v}"]
        return args + self.extra_args

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, listen: str | None = None) -> OdradekBroker:
        if self.running:
            raise RuntimeError(f"odradek already running (pid {self.pid})")
        t0 = time.monotonic()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        argv = self.argv(listen)
        log = open(self.log_path, "ab")  # handed to the child and the pump thread
        log.write(f"\n===== odradek tests: starting {' '.join(argv)}\n".encode())
        log.flush()
        self.returncode = None
        self._proc = proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            env=child_env(self.env),
            cwd=self.data_dir.parent,
            start_new_session=True,
        )
        first: list[bytes] = []
        got_line = threading.Event()

        def pump() -> None:
            # First stdout line -> the caller; everything after -> the log, so the child never blocks.
            try:
                first.append(proc.stdout.readline())
                got_line.set()
                for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                    log.write(chunk)
                    log.flush()
            finally:
                got_line.set()
                log.close()

        self._pump = threading.Thread(target=pump, name=f"odradek-stdout-{proc.pid}", daemon=True)
        self._pump.start()
        if not got_line.wait(self.start_timeout):
            self.kill()
            raise OdradekStartError(
                f"odradek printed no ready line within {self.start_timeout:.0f}s: {' '.join(argv)}\n"
                f"log {self.log_path}:\n{tail(self.log_path)}"
            )
        line = first[0].decode("utf-8", "replace").rstrip("\r\n") if first else ""
        m = _READY_RE.match(line)
        if m is None:
            self.kill()
            code = proc.returncode
            raise OdradekStartError(
                f"odradek did not start (exit {code}, first stdout line {line!r}): {' '.join(argv)}\n"
                f"log {self.log_path}:\n{tail(self.log_path)}"
            )
        self.host = m.group("host").strip("[]")
        self.port = int(m.group("port"))
        self.start_seconds = time.monotonic() - t0
        return self

    def _reap(self, timeout: float) -> int | None:
        proc = self._proc
        assert proc is not None
        proc.wait(timeout)
        if self._pump is not None:
            self._pump.join(5)
        if proc.stdout is not None:
            proc.stdout.close()
        self.returncode = proc.returncode
        return self.returncode

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM and wait; SIGKILL if it is still alive after ``timeout``. Returns the exit code
        (0 for a clean shutdown; -9 means the broker ignored SIGTERM and had to be killed)."""
        proc = self._proc
        if proc is None:
            return None
        stop_process(proc, timeout)
        return self._reap(30)

    def kill(self) -> int | None:
        """SIGKILL: the crash in crash tests. Returns the exit code (-9)."""
        proc = self._proc
        if proc is None:
            return None
        kill_process(proc)
        return self._reap(30)

    def restart(self, *, hard: bool = False) -> OdradekBroker:
        """Stop (SIGKILL with ``hard=True``) and start on the same data dir and the same port."""
        if hard:
            self.kill()
        else:
            self.stop()
        listen = f"{self.host}:{self.port}" if self.port is not None else None
        return self.start(listen=listen)

    def __enter__(self) -> OdradekBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else f"exited {self.returncode}"
        return f"<OdradekBroker {self.bootstrap if self.port else '-'} {self.data_dir} {state}>"
