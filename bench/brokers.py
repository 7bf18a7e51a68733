"""The brokers under test, started through the test suite's launchers (tests/support).

Three columns:

* ``odradek``      Odradek with its defaults: acks=all is answered after fsync (group commit).
* ``kafka``        Apache Kafka 4.4 with its defaults: no fsync on the produce path (page cache only).
* ``kafka-flush``  Apache Kafka 4.4 with ``log.flush.interval.messages=1``: fsync per appended batch.
                   Odradek vs this column is the like-for-like durability comparison.

Kafka runs with the JVM options its own ``kafka-server-start.sh`` uses (G1, 1 GiB heap), not the fast
start-up flags the tests use, and without the tests' class-data-sharing archive.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TESTS_DIR = REPO_ROOT / "tests"
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from support.kafka import (  # noqa: E402
    FAST_JVM_FLAGS,
    KAFKA_VERSION,
    KafkaBroker,
    ensure_kafka_jars,
    find_java,
    random_cluster_id,
    run_kafka_tool,
)
from support.net import free_port  # noqa: E402
from support.odradek import OdradekBroker  # noqa: E402

# What bin/kafka-server-start.sh + bin/kafka-run-class.sh pass by default (KAFKA_HEAP_OPTS,
# KAFKA_JVM_PERFORMANCE_OPTS). -Xmx comes from the launcher's ``heap``.
KAFKA_HEAP = "1g"
KAFKA_JVM_FLAGS: tuple[str, ...] = (
    "-Xms1g",
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)

# Settings both brokers share for the benchmark (stated in the report). Kafka's launcher already sets
# group.initial.rebalance.delay.ms=0 (Odradek's default); it is repeated here so the table says so.
COMMON_SETTINGS = {"group.initial.rebalance.delay.ms": "0"}


@dataclass(frozen=True)
class BrokerSpec:
    name: str
    kind: str  # "odradek" | "kafka"
    label: str
    durability: str
    settings: dict[str, str] = field(default_factory=dict)


SPECS: dict[str, BrokerSpec] = {
    "odradek": BrokerSpec(
        "odradek",
        "odradek",
        "Odradek",
        "acks=all answered after fsync (group commit); acks=1 after write(), fsync within "
        "log.flush.interval.ms (1 s)",
        {},
    ),
    "odradek-uvloop": BrokerSpec(
        "odradek-uvloop",
        "odradek",
        "Odradek on uvloop",
        "as odradek; event loop uvloop instead of asyncio",
        {"event.loop": "uvloop"},
    ),
    "kafka": BrokerSpec(
        "kafka",
        "kafka",
        f"Kafka {KAFKA_VERSION} (defaults)",
        "no fsync on the produce path (OS page cache; flushed by the kernel)",
        {},
    ),
    "kafka-flush": BrokerSpec(
        "kafka-flush",
        "kafka",
        f"Kafka {KAFKA_VERSION} (flush every message)",
        "log.flush.interval.messages=1: fsync after every appended batch, before the ack",
        {"log.flush.interval.messages": "1"},
    ),
}

LIKE_FOR_LIKE = "kafka-flush"


class RunningBroker:
    """A started broker: ``bootstrap``, ``pid``, ``log_path``, ``stop()``."""

    def __init__(self, spec: BrokerSpec, work_dir: Path) -> None:
        self.spec = spec
        self.work_dir = work_dir
        settings = {**COMMON_SETTINGS, **spec.settings}
        if spec.kind == "odradek":
            self.port = free_port()
            self.proc: OdradekBroker | KafkaBroker = OdradekBroker(
                work_dir / "data",
                listen=f"127.0.0.1:{self.port}",
                settings=settings,
                start_timeout=60.0,
                extra_args=["--log-level", "WARNING"],
            )
        else:
            if find_java() is None:
                raise RuntimeError("java not found: cannot run Apache Kafka")
            ensure_kafka_jars()
            os.environ["ODRADEK_KAFKA_CDS"] = "0"  # a plain JVM, as Kafka ships
            k = KafkaBroker(
                work_dir, settings=settings, heap=KAFKA_HEAP, jvm_flags=KAFKA_JVM_FLAGS, start_timeout=180.0
            )
            # Choose the ports and format the storage now, so that starting the broker is only the JVM.
            k.port = free_port()
            k.controller_port = free_port()
            while k.controller_port == k.port:
                k.controller_port = free_port()
            self.port = k.port
            work_dir.mkdir(parents=True, exist_ok=True)
            k.properties_path.write_text("".join(f"{a}={b}\n" for a, b in k.server_properties().items()))
            k.cluster_id = random_cluster_id()
            run_kafka_tool(
                "kafka.tools.StorageTool",
                "format",
                "-t",
                k.cluster_id,
                "-c",
                k.properties_path,
                timeout=120,
                jvm_flags=FAST_JVM_FLAGS,
            )
            self.proc = k

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> float:
        """Start the process; returns the launcher's ready time (s)."""
        self.proc.start()
        return float(self.proc.start_seconds or 0.0)

    @property
    def pid(self) -> int:
        pid = self.proc.pid
        assert pid is not None
        return pid

    @property
    def running(self) -> bool:
        return self.proc.running

    @property
    def log_path(self) -> Path:
        return self.proc.log_path

    def stop(self) -> int | None:
        return self.proc.stop()


# --------------------------------------------------------------------------------------------------
# /proc readings


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for row in f:
            if row.startswith("VmRSS:"):
                return int(row.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process (all threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK
