"""``odradek serve`` as an operator runs it: the ready line, signals, data-dir checks, configuration."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from support.kit import read_values
from support.odradek import child_env

READY = re.compile(r"^odradek listening on (?P<host>\S+):(?P<port>\d+) (?P<data_dir>.+)$")


def serve_argv(data_dir: Path | str, *extra: str, listen: str = "127.0.0.1:0") -> list[str]:
    return [
        sys.executable,
        "-m",
        "odradek.cli",
        "serve",
        "--listen",
        listen,
        "--data-dir",
        str(data_dir),
        *extra,
    ]


class Serve:
    """One ``odradek serve`` child; stdout is read line by line, stderr goes to a file."""

    def __init__(self, argv: list[str], cwd: Path) -> None:
        self.err_path = cwd / f"serve-{time.monotonic_ns()}.err"
        self._err = open(self.err_path, "wb")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self._err, env=child_env(), cwd=cwd
        )
        self.lines: list[str] = []
        self.ready_at: float | None = None
        self._first = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for raw in self.proc.stdout:
            if not self.lines:
                self.ready_at = time.monotonic()
            self.lines.append(raw.decode().rstrip("\n"))
            self._first.set()
        self._first.set()

    def ready(self, timeout: float = 15.0) -> re.Match[str]:
        assert self._first.wait(timeout), f"no ready line within {timeout}s; stderr: {self.stderr()}"
        assert self.lines, f"exited ({self.proc.poll()}) without a ready line; stderr: {self.stderr()}"
        m = READY.match(self.lines[0])
        assert m, f"bad ready line {self.lines[0]!r}"
        return m

    @property
    def bootstrap(self) -> str:
        m = self.ready()
        return f"{m['host']}:{m['port']}"

    def signal(self, sig: int, timeout: float = 20.0) -> int:
        self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self._reader.join(5)
            self._err.close()
            if self.proc.stdout is not None and not self._reader.is_alive():
                self.proc.stdout.close()

    def stderr(self) -> str:
        if not self._err.closed:
            self._err.flush()
        return self.err_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait(10)


@pytest.fixture
def serve(tmp_path: Path):
    started: list[Serve] = []

    def start(argv: list[str]) -> Serve:
        s = Serve(argv, tmp_path)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def run_refused(argv: list[str], cwd: Path, timeout: float = 20.0) -> tuple[int, list[str]]:
    """Run a serve that must refuse to start: (exit code, stderr lines). A ready line fails the test."""
    s = Serve(argv, cwd)
    try:
        s._first.wait(timeout)
        if s.lines:
            pytest.fail(f"the broker started although it should have refused: {s.lines[0]!r}")
        code = s.wait(5)
    finally:
        s.kill()
    return code, s.stderr().splitlines()


def assert_one_line_error(code: int, lines: list[str], *needles: str) -> None:
    assert code != 0, "a refused start must exit non-zero"
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {lines}"
    assert "Traceback" not in lines[0]
    for needle in needles:
        assert needle in lines[0], f"{needle!r} not in the error {lines[0]!r}"


def round_trip(bootstrap: str, topic: str, n: int = 5) -> list[bytes]:
    """Produce n values to partition 0 with acks=all, then read the whole partition by assignment."""
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all"})
    for i in range(n):
        p.produce(topic, value=b"v%d" % i, partition=0)
    assert p.flush(20) == 0
    return read_values(bootstrap, topic, "cli-tests")


def broker_configs(bootstrap: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.BROKER, "1")
    entries = admin.describe_configs([res])[res].result(15)
    return {name: e.value for name, e in entries.items()}


def topic_configs(bootstrap: str, topic: str) -> dict[str, str]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    res = ConfigResource(ResourceType.TOPIC, topic)
    entries = admin.describe_configs([res])[res].result(15)
    return {name: e.value for name, e in entries.items()}


def auto_created_partitions(bootstrap: str, topic: str) -> int:
    p = Producer({"bootstrap.servers": bootstrap})
    p.produce(topic, value=b"x")
    assert p.flush(20) == 0
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=15)
    return len(md.topics[topic].partitions)


# --------------------------------------------------------------------------------------------------
# The ready line and signals


def test_ready_line_names_the_bound_port_and_the_data_dir(serve, tmp_path: Path, unique):
    s = serve(serve_argv("relative/data"))  # relative to the child's cwd: printed resolved
    m = s.ready()
    assert m["host"] == "127.0.0.1"
    port = int(m["port"])
    assert port != 0
    assert Path(m["data_dir"]) == (tmp_path / "relative" / "data").resolve()
    assert Path(m["data_dir"]).is_absolute() and Path(m["data_dir"]).is_dir()
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass
    assert round_trip(s.bootstrap, unique("ready")) == [b"v0", b"v1", b"v2", b"v3", b"v4"]
    assert s.signal(signal.SIGTERM) == 0
    assert len(s.lines) == 1, f"stdout should hold only the ready line: {s.lines}"


def test_explicit_port_is_used(serve, tmp_path: Path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    s = serve(serve_argv(tmp_path / "d", listen=f"127.0.0.1:{port}"))
    assert int(s.ready()["port"]) == port
    assert s.signal(signal.SIGTERM) == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_is_a_clean_exit(serve, tmp_path: Path, unique, sig: int):
    s = serve(serve_argv(tmp_path / "d"))
    topic = unique("sig")
    assert len(round_trip(s.bootstrap, topic)) == 5
    assert s.signal(sig) == 0
    err = s.stderr()
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    # the data is there for the next start, with no recovery needed
    s2 = serve(serve_argv(tmp_path / "d"))
    assert len(round_trip(s2.bootstrap, topic, n=0)) == 5
    c = Consumer({"bootstrap.servers": s2.bootstrap, "group.id": "cli-tests"})
    try:
        assert c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False) == (0, 5)
    finally:
        c.close()
    assert s2.signal(signal.SIGTERM) == 0
    assert "unclean shutdown" not in s2.stderr()


def test_startup_is_fast_on_an_empty_data_dir(tmp_path: Path):
    """A functional requirement: ready in under a second on an empty data dir (best of three)."""
    times = []
    for i in range(3):
        s = Serve(serve_argv(tmp_path / f"empty-{i}"), tmp_path)
        try:
            s.ready(15)
            assert s.ready_at is not None
            times.append(s.ready_at - s.t0)
        finally:
            s.signal(signal.SIGTERM)
    assert min(times) < 1.0, f"startup to the ready line took {[f'{t:.2f}s' for t in times]}"


# --------------------------------------------------------------------------------------------------
# Data directory checks


def test_data_dir_in_use_is_refused_and_the_owner_keeps_working(odradek_factory, tmp_path: Path, unique):
    first = odradek_factory()
    topic = unique("owner")
    assert len(round_trip(first.bootstrap, topic)) == 5
    code, lines = run_refused(serve_argv(first.data_dir), tmp_path)
    assert_one_line_error(code, lines, "in use")
    assert str(first.data_dir) in lines[0]
    assert first.running
    assert round_trip(first.bootstrap, topic) == [b"v0", b"v1", b"v2", b"v3", b"v4"] * 2
    # The refused start must not have broken the owner's lock: a third try is refused too.
    code, lines = run_refused(serve_argv(first.data_dir), tmp_path)
    assert_one_line_error(code, lines, "in use")
    assert first.stop() == 0


@pytest.mark.parametrize("shape", ["under-a-file", "is-a-file"])
def test_unusable_data_dir_is_refused(tmp_path: Path, shape: str):
    blocker = tmp_path / "plain-file"
    blocker.write_text("not a directory\n")
    data_dir = blocker / "data" if shape == "under-a-file" else blocker
    code, lines = run_refused(serve_argv(data_dir), tmp_path)
    assert_one_line_error(code, lines, "odradek:")
    assert blocker.read_text() == "not a directory\n"


def test_port_in_use_is_refused(tmp_path: Path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, lines = run_refused(serve_argv(tmp_path / "d", listen=f"127.0.0.1:{port}"), tmp_path)
    # The data dir is opened before binding, so its INFO log lines come first; one error line after them.
    errors = [line for line in lines if " INFO " not in line]
    assert_one_line_error(code, errors, str(port), "odradek:")


# --------------------------------------------------------------------------------------------------
# Configuration


def test_properties_config_file(serve, tmp_path: Path, unique):
    conf = tmp_path / "broker.properties"
    conf.write_text(
        "# Kafka style\n"
        "num.partitions=3\n"
        "log.retention.ms = 3600000\n"
        "! another comment\n"
        "log.segment.bytes: 2097152\n"
    )
    s = serve(serve_argv(tmp_path / "d", "--config", str(conf)))
    got = broker_configs(s.bootstrap)
    assert got["num.partitions"] == "3"
    assert got["log.retention.ms"] == "3600000"
    assert got["log.segment.bytes"] == "2097152"
    topic = unique("props")
    assert auto_created_partitions(s.bootstrap, topic) == 3
    tc = topic_configs(s.bootstrap, topic)
    assert tc["retention.ms"] == "3600000" and tc["segment.bytes"] == "2097152"
    assert s.signal(signal.SIGTERM) == 0


def test_toml_config_file(serve, tmp_path: Path, unique):
    conf = tmp_path / "broker.toml"
    conf.write_text(
        '"num.partitions" = 4\n'
        "auto.create.topics.enable = true\n"
        "[log]\n"
        "retention.ms = 7200000\n"
        'cleanup.policy = "delete"\n'
    )
    s = serve(serve_argv(tmp_path / "d", "--config", str(conf)))
    got = broker_configs(s.bootstrap)
    assert got["num.partitions"] == "4"
    assert got["log.retention.ms"] == "7200000"
    assert auto_created_partitions(s.bootstrap, unique("toml")) == 4
    assert s.signal(signal.SIGTERM) == 0


def test_set_overrides_the_config_file(serve, tmp_path: Path, unique):
    conf = tmp_path / "broker.properties"
    conf.write_text("num.partitions=3\nlog.retention.ms=3600000\n")
    s = serve(
        serve_argv(
            tmp_path / "d", "--config", str(conf), "--set", "num.partitions=5", "--set", "log.roll.ms=60000"
        )
    )
    got = broker_configs(s.bootstrap)
    assert got["num.partitions"] == "5"
    assert got["log.retention.ms"] == "3600000"  # from the file, not overridden
    assert got["log.roll.ms"] == "60000"
    assert auto_created_partitions(s.bootstrap, unique("set")) == 5
    assert s.signal(signal.SIGTERM) == 0


def test_unknown_key_is_refused(tmp_path: Path):
    code, lines = run_refused(serve_argv(tmp_path / "d", "--set", "no.such.key=1"), tmp_path)
    assert_one_line_error(code, lines, "no.such.key")
    conf = tmp_path / "broker.properties"
    conf.write_text("num.partitions=3\nlog.retention.hourz=5\n")
    code, lines = run_refused(serve_argv(tmp_path / "d", "--config", str(conf)), tmp_path)
    assert_one_line_error(code, lines, "log.retention.hourz")
    assert not (tmp_path / "d").exists(), "a refused configuration must not create the data dir"


@pytest.mark.parametrize(
    "setting, needle",
    [
        ("num.partitions=three", "num.partitions"),
        ("num.partitions=3.5", "num.partitions"),
        ("auto.create.topics.enable=maybe", "auto.create.topics.enable"),
        ("log.message.timestamp.type=WallClock", "log.message.timestamp.type"),
        ("log.cleanup.policy=shred", "log.cleanup.policy"),
        ("num.partitions", "num.partitions"),  # no '='
    ],
)
def test_bad_value_is_refused(tmp_path: Path, setting: str, needle: str):
    code, lines = run_refused(serve_argv(tmp_path / "d", "--set", setting), tmp_path)
    assert_one_line_error(code, lines, needle)


@pytest.mark.parametrize(
    "setting",
    [
        "num.partitions=0",
        "num.partitions=-3",
        "log.segment.bytes=0",
        "queued.max.requests=0",
        "message.max.bytes=-1",
        "socket.request.max.bytes=0",
    ],
)
def test_out_of_range_value_is_refused(tmp_path: Path, setting: str):
    """Values Kafka's own config validation rejects (each has a lower bound there) must not start a broker
    that then fails on first use (num.partitions=0: every auto-create fails) or misbehaves."""
    code, lines = run_refused(serve_argv(tmp_path / "d", "--set", setting), tmp_path)
    assert_one_line_error(code, lines, setting.partition("=")[0])


def test_bad_config_file_is_refused(tmp_path: Path):
    missing = tmp_path / "nope.properties"
    code, lines = run_refused(serve_argv(tmp_path / "d", "--config", str(missing)), tmp_path)
    assert_one_line_error(code, lines, str(missing))
    broken = tmp_path / "broken.toml"
    broken.write_text("num.partitions = [\n")
    code, lines = run_refused(serve_argv(tmp_path / "d", "--config", str(broken)), tmp_path)
    assert_one_line_error(code, lines, str(broken))
    garbage = tmp_path / "garbage.properties"
    garbage.write_text("num.partitions=3\nthis line has no separator\n")
    code, lines = run_refused(serve_argv(tmp_path / "d", "--config", str(garbage)), tmp_path)
    assert_one_line_error(code, lines, f"{garbage}:2")


# --------------------------------------------------------------------------------------------------
# Listeners and security settings


def serve_listeners(data_dir: Path, listeners: str, *extra: str) -> list[str]:
    argv = serve_argv(data_dir, "--set", f"listeners={listeners}", *extra)
    i = argv.index("--listen")
    del argv[i : i + 2]  # the listeners config names every address
    return argv


def test_several_listeners_print_one_line_each_after_the_ready_line(serve, tmp_path: Path):
    s = serve(
        serve_listeners(
            tmp_path / "d",
            "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            "--set",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
        )
    )
    first = s.ready()
    deadline = time.monotonic() + 10
    while len(s.lines) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    names = [line.split()[2] for line in s.lines[1:3]]
    assert names == ["PLAINTEXT", "INTERNAL"], s.lines
    assert s.lines[1].endswith(f"{first['host']}:{first['port']}")
    internal = s.lines[2].rsplit(" ", 1)[1]
    assert len(round_trip(internal, unique_topic())) == 5  # the second listener serves too
    assert "WARNING" not in s.stderr()  # loopback PLAINTEXT: no warning


def unique_topic() -> str:
    return f"cli-listener-{time.monotonic_ns()}"


def test_a_non_loopback_plaintext_listener_starts_with_one_warning(serve, tmp_path: Path):
    s = serve(serve_listeners(tmp_path / "d", "PLAINTEXT://0.0.0.0:0"))
    s.ready()
    warnings = [line for line in s.stderr().splitlines() if " WARNING " in line]
    assert len(warnings) == 1, warnings
    assert "PLAINTEXT on a non-loopback address" in warnings[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (
            ("--listen", "127.0.0.1:0", "--set", "listeners=PLAINTEXT://127.0.0.1:0"),
            "either --listen or the listeners config",
        ),
        (("--set", "listeners=SSL://127.0.0.1:0"), "ssl.keystore.location"),
        (
            ("--set", "listeners=SSL://127.0.0.1:0", "--set", "ssl.keystore.location=/nonexistent.pem"),
            "ssl.keystore.location: cannot read /nonexistent.pem",
        ),
        (
            ("--set", "listeners=SASL_PLAINTEXT://127.0.0.1:0", "--set", "sasl.enabled.mechanisms=GSSAPI"),
            "sasl.enabled.mechanisms",
        ),
        (
            (
                "--set",
                "listeners=SASL_PLAINTEXT://127.0.0.1:0",
                "--set",
                "listener.name.sasl_plaintext.plain.sasl.jaas.config=not jaas s3cret",
            ),
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
        ),
    ],
)
def test_unusable_listener_settings_are_refused_in_one_line(tmp_path: Path, extra, needle):
    argv = serve_argv(tmp_path / "d", *extra)
    if "--listen" not in extra:
        i = argv.index("--listen")
        del argv[i : i + 2]
    code, lines = run_refused(argv, tmp_path)
    assert_one_line_error(code, lines, needle)
    assert "s3cret" not in lines[0]  # a bad JAAS line is named, never quoted


# --------------------------------------------------------------------------------------------------
# Entry points


def test_console_script_and_module_entry_points(tmp_path: Path):
    for argv in (
        [sys.executable, "-m", "odradek", "serve", "--help"],
        [sys.executable, "-m", "odradek.cli", "serve", "--help"],
    ):
        proc = subprocess.run(argv, capture_output=True, env=child_env(), timeout=30)
        assert proc.returncode == 0, proc.stderr
        assert b"--data-dir" in proc.stdout and b"--listen" in proc.stdout
    script = Path(sys.executable).parent / "odradek"
    if not script.exists():
        pytest.fail(f"the `odradek` console script is not installed next to {sys.executable}")
    proc = subprocess.run([str(script), "serve", "--help"], capture_output=True, env=child_env(), timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_data_dir_is_created_with_parents(serve, tmp_path: Path):
    target = tmp_path / "a" / "b" / "c"
    s = serve(serve_argv(target))
    assert Path(s.ready()["data_dir"]) == target.resolve()
    assert target.is_dir()
    assert s.signal(signal.SIGTERM) == 0
    assert os.listdir(target)
