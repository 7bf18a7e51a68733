"""Private database servers for tests: PostgreSQL, MariaDB and Redis, each on a free loopback port.

Each class starts its own server process in a fresh temporary directory, waits until a real client can
log in (not only until the port accepts), and at :meth:`stop` signals the pid it started, waits, and
removes the directory. Nothing system-wide is touched: no service, no shared socket, no config file
(``--no-defaults`` for MariaDB, every PostgreSQL setting on the command line).

Binaries are looked up on PATH, then in Debian's locations (``/usr/lib/postgresql/<version>/bin``,
``/usr/sbin``, ``/usr/bin``); ``scripts/test`` installs the Debian packages when they are missing. A
binary that is still missing raises :class:`support.deps.MissingDependency`, which the fixtures turn into
the project's skip-or-fail rule.

PostgreSQL refuses to run as root, so under euid 0 ``initdb`` and ``postgres`` run as the system user
``odradek-test`` (created with ``useradd --system`` when missing; ``nobody`` if that fails), and the
temporary directory is given to that user. The servers are for tests only: PostgreSQL runs with
``fsync=off`` (the tests reopen stores, they never crash the database server).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from .deps import MissingDependency
from .net import LOOPBACK, free_port, tail
from .process import ChildProcess, spawn_logged, stop_process

__all__ = [
    "DatabaseServer",
    "DatabaseStartError",
    "MariaDBServer",
    "PostgresServer",
    "RedisServer",
    "find_binary",
    "new_database",
]

UNPRIVILEGED_USER = "odradek-test"
DEBIAN_DIRS = ("/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin")


class DatabaseStartError(RuntimeError):
    pass


def _postgres_dirs() -> list[str]:
    """Debian's ``/usr/lib/postgresql/<major>/bin``, newest major first."""

    def major(path: str) -> int:
        m = re.search(r"/postgresql/(\d+)/", path)
        return int(m.group(1)) if m else -1

    return sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)


def find_binary(*names: str, extra_dirs: tuple[str, ...] | list[str] = ()) -> str | None:
    """The first of ``names`` found on PATH, then in ``extra_dirs`` and Debian's usual directories."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    for directory in [*extra_dirs, *DEBIAN_DIRS]:
        for name in names:
            path = os.path.join(directory, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    return None


def _require(names: tuple[str, ...], package: str, extra_dirs: list[str] | tuple[str, ...] = ()) -> str:
    path = find_binary(*names, extra_dirs=extra_dirs)
    if path is None:
        raise MissingDependency(
            f"`{' / '.join(names)}` not found on PATH or in {', '.join([*extra_dirs, *DEBIAN_DIRS])}"
            f" (Debian package {package}; scripts/test installs it when run as root)"
        )
    return path


def _unprivileged_user() -> pwd.struct_passwd:
    """The account PostgreSQL runs as when the tests run as root."""
    try:
        return pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        pass
    useradd = find_binary("useradd")
    if useradd is not None:
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", UNPRIVILEGED_USER],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
        )
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(UNPRIVILEGED_USER)
    return pwd.getpwnam("nobody")


class DatabaseServer(ChildProcess):
    """One server process in its own temporary directory. Subclasses fill in the command and the probe.

    Usable as a context manager. ``url`` is what a client (SQLAlchemy, redis-py) connects to.
    """

    kind = "database"
    start_timeout_s = 60.0
    stop_signal = signal.SIGTERM

    def __init__(self, *, parent: Path | None = None, keep: bool = False) -> None:
        self.parent = parent
        self.keep = keep
        self.dir: Path | None = None
        self.port: int | None = None
        self.start_seconds: float | None = None
        self.returncode: int | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- what subclasses provide ---------------------------------------------------------------------
    def _prepare(self, directory: Path) -> None:
        """Initialise the data directory (before the server starts)."""

    def _argv(self, directory: Path, port: int) -> list[str]:
        raise NotImplementedError

    def _popen_user(self) -> dict[str, object]:
        return {}

    def _ready(self) -> bool:
        """True once a real client can log in."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------------
    @property
    def log_path(self) -> Path:
        assert self.dir is not None, "not started"
        return self.dir / f"{self.kind}.log"

    def start(self) -> DatabaseServer:
        if self.running:
            raise RuntimeError(f"{self.kind} already running (pid {self.pid})")
        t0 = time.monotonic()
        self.dir = Path(tempfile.mkdtemp(prefix=f"odradek-{self.kind}-", dir=self.parent))
        atexit.register(self.stop)  # a session that dies without teardown still stops its servers
        self._prepare(self.dir)
        self.port = free_port()
        argv = self._argv(self.dir, self.port)
        self._proc = spawn_logged(
            argv,
            self.log_path,
            f"===== odradek tests: starting {' '.join(argv)}\n",
            cwd=self.dir,
            env={**os.environ, "LC_ALL": "C"},
            **self._popen_user(),
        )
        deadline = time.monotonic() + self.start_timeout_s
        while not self._ready():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                how = f"exited {self._proc.returncode}" if self._proc.poll() is not None else "timed out"
                self.stop(keep=True)
                raise DatabaseStartError(
                    f"{self.kind} did not start ({how}): {' '.join(argv)}\n"
                    f"log {self.log_path}:\n{tail(self.log_path)}"
                )
            time.sleep(0.1)
        self.start_seconds = time.monotonic() - t0
        return self

    def stop(self, timeout: float = 20.0, *, keep: bool | None = None) -> int | None:
        """Signal the pid we started, wait (SIGKILL after ``timeout``), remove the directory."""
        proc = self._proc
        if proc is not None:
            self.returncode = stop_process(proc, timeout, self.stop_signal)
            self._proc = None
        if self.dir is not None and not (self.keep if keep is None else keep):
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.returncode

    def __enter__(self) -> DatabaseServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else f"exited {self.returncode}"
        return f"<{type(self).__name__} {LOOPBACK}:{self.port} {self.dir} {state}>"


class PostgresServer(DatabaseServer):
    """``initdb`` + ``postgres`` with trust authentication for the user ``odradek``, database ``odradek``."""

    kind = "postgres"
    stop_signal = signal.SIGINT  # PostgreSQL's "fast" shutdown: roll back sessions, checkpoint, exit
    user = "odradek"
    database = "odradek"

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        dirs = _postgres_dirs()
        self.initdb = _require(("initdb",), "postgresql", dirs)
        # The server that belongs to that initdb (a Debian initdb is not on PATH; /usr/local/bin may be).
        beside = os.path.join(os.path.dirname(os.path.realpath(self.initdb)), "postgres")
        self.postgres = beside if os.access(beside, os.X_OK) else _require(("postgres",), "postgresql", dirs)
        self._run_as = _unprivileged_user() if os.geteuid() == 0 else None

    def _popen_user(self) -> dict[str, object]:
        if self._run_as is None:
            return {}
        return {"user": self._run_as.pw_uid, "group": self._run_as.pw_gid, "extra_groups": []}

    def _prepare(self, directory: Path) -> None:
        if self._run_as is not None:
            os.chown(directory, self._run_as.pw_uid, self._run_as.pw_gid)
        argv = [
            self.initdb,
            "--pgdata",
            str(directory / "data"),
            "--username",
            self.user,
            "--auth",
            "trust",
            "--encoding",
            "UTF8",
            "--locale",
            "C",
            "--no-sync",
        ]
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            cwd=directory,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
            **self._popen_user(),  # type: ignore[arg-type]
        )
        if done.returncode != 0:
            raise DatabaseStartError(
                f"initdb failed ({done.returncode}): {' '.join(argv)}\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )

    def _argv(self, directory: Path, port: int) -> list[str]:
        settings = {
            "listen_addresses": LOOPBACK,
            "port": str(port),
            "unix_socket_directories": str(directory),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        argv = [self.postgres, "-D", str(directory / "data")]
        for k, v in settings.items():
            argv += ["-c", f"{k}={v}"]
        return argv

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{self.user}@{LOOPBACK}:{self.port}/{self.database}"

    def _ready(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(
                host=LOOPBACK, port=self.port, user=self.user, dbname="postgres", connect_timeout=2
            ) as conn:
                conn.autocommit = True
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (self.database,))
                if exists.fetchone() is None:
                    conn.execute(f'CREATE DATABASE "{self.database}"')
            return True
        except psycopg.OperationalError:
            return False


class MariaDBServer(DatabaseServer):
    """``mariadb-install-db`` + ``mariadbd``; user ``odradek`` (password ``odradek``) with every privilege.

    The user and the database ``odradek`` are created by an ``--init-file`` at start, so the server runs
    with its grant tables (no ``--skip-grant-tables``). InnoDB keeps its default isolation level,
    REPEATABLE READ, as in production.
    """

    kind = "mariadb"
    user = "odradek"
    password = "odradek"
    database = "odradek"

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.install_db = _require(("mariadb-install-db", "mysql_install_db"), "mariadb-server")
        self.mariadbd = _require(("mariadbd", "mysqld"), "mariadb-server")

    def _user_args(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def _prepare(self, directory: Path) -> None:
        (directory / "data").mkdir()
        (directory / "tmp").mkdir()
        argv = [
            self.install_db,
            "--no-defaults",
            f"--datadir={directory / 'data'}",
            "--auth-root-authentication-method=socket",
            "--skip-test-db",
            *self._user_args(),
        ]
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, cwd=directory, check=False)
        if done.returncode != 0:
            raise DatabaseStartError(
                f"{os.path.basename(self.install_db)} failed ({done.returncode}): {' '.join(argv)}\n"
                f"{done.stdout.decode(errors='replace')}{done.stderr.decode(errors='replace')}"
            )
        (directory / "init.sql").write_text(
            f"CREATE USER IF NOT EXISTS '{self.user}'@'{LOOPBACK}' IDENTIFIED BY '{self.password}';\n"
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'{LOOPBACK}' WITH GRANT OPTION;\n"
            f"CREATE DATABASE IF NOT EXISTS `{self.database}`;\n"
        )

    def _argv(self, directory: Path, port: int) -> list[str]:
        return [
            self.mariadbd,
            "--no-defaults",
            f"--datadir={directory / 'data'}",
            f"--tmpdir={directory / 'tmp'}",
            f"--socket={directory / 'mariadb.sock'}",
            f"--pid-file={directory / 'mariadb.pid'}",
            f"--port={port}",
            f"--bind-address={LOOPBACK}",
            "--skip-name-resolve",
            f"--init-file={directory / 'init.sql'}",
            "--character-set-server=utf8mb4",
            "--innodb-buffer-pool-size=64M",
            "--innodb-flush-log-at-trx-commit=2",
            "--max-connections=200",
            *self._user_args(),
        ]

    @property
    def url(self) -> str:
        return f"mysql+pymysql://{self.user}:{self.password}@{LOOPBACK}:{self.port}/{self.database}"

    def _ready(self) -> bool:
        import pymysql

        try:
            conn = pymysql.connect(
                host=LOOPBACK,
                port=self.port,
                user=self.user,
                password=self.password,
                database=self.database,
                connect_timeout=2,
            )
        except pymysql.err.OperationalError:
            return False
        conn.close()
        return True


class RedisServer(DatabaseServer):
    """``redis-server`` without persistence (``--save ''``, no AOF), database 0."""

    kind = "redis"

    def __init__(self, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.redis_server = _require(("redis-server",), "redis-server")

    def _argv(self, directory: Path, port: int) -> list[str]:
        return [
            self.redis_server,
            "--port",
            str(port),
            "--bind",
            LOOPBACK,
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def _ready(self) -> bool:
        import redis

        client = redis.Redis(host=LOOPBACK, port=self.port, socket_connect_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False
        finally:
            client.close()


def new_database(server_url: str, label: str = "t") -> str:
    """Create a new, empty database on the PostgreSQL or MariaDB server of ``server_url`` and return its
    URL (same user). ``label`` becomes part of the name, which is made unique and legal."""
    import sqlalchemy as sa

    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:40] or "t"
    name = f"{slug}_{uuid.uuid4().hex[:10]}"
    url = sa.make_url(server_url)
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            quoted = engine.dialect.identifier_preparer.quote_identifier(name)
            conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
    finally:
        engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)
