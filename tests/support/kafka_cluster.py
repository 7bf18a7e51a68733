"""A three-broker Apache Kafka 4.4 KRaft cluster on loopback, for tests that need replication.

Every node is a combined broker + controller (``process.roles=broker,controller``), node ids ``1..size``,
all of them voters (``controller.quorum.voters``), one cluster id formatted into every data directory.
Topics default to replication factor 3 with ``min.insync.replicas=2`` (the internal topics too), unclean
leader election is off, and the broker session timeout is short, so a SIGKILLed broker is fenced within
a few seconds and a restarted one registers again soon after.

Listeners of each node:

* ``PLAINTEXT`` for clients, advertised as the node's own port or as the address given in
  ``advertised`` (a fault proxy in front of the broker);
* ``INTERNAL`` for replication and for this module's own readiness probes, always direct, so
  replication and start-up never depend on a proxy;
* ``CONTROLLER`` for the KRaft quorum.

Everything another process needs is written into ``work_dir``: ``cluster.json`` (ids, ports, the JVM
command line) and ``node-N/kafka.pid``. The node's data is ``node-N/data``, its log ``node-N/kafka.log``.
So a node can be crashed and restarted from outside the test process (``odradek verify
--broker-kill-cmd ... --broker-start-cmd ...``)::

    python -m support.kafka_cluster kill  --dir WORK_DIR --node N
    python -m support.kafka_cluster start --dir WORK_DIR --node N
    python -m support.kafka_cluster stop  --dir WORK_DIR
    python -m support.kafka_cluster status --dir WORK_DIR

(``PYTHONPATH=tests``). Instead of ``--node N``, ``--node-from-fault-index`` takes the node from the
environment: ``ODRADEK_FAULT_INDEX % size + 1`` (fault 0 -> node 1, fault 1 -> node 2, ...).
``kill`` SIGKILLs the node and returns once it is dead; ``start`` starts it on the same ports and data,
detached (a session of its own, output to its log), and returns once Metadata lists it again.
:meth:`KafkaCluster.kill_cmd` / :meth:`KafkaCluster.start_cmd` give these as shell command strings.

Processes are only ever signalled by the pid in their pid file, after checking that this pid still
runs this node's ``server.properties``; the cluster object in the test process stops nodes that a
command started the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from .kafka import (
    _BROKER_LOG4J,
    _JVM_LOG_FLAGS,
    FAST_JVM_FLAGS,
    KAFKA_VERSION,
    KafkaStartError,
    _cds_flags,
    _promote_cds,
    _require_java,
    ensure_kafka_jars,
    random_cluster_id,
    run_kafka_tool,
)
from .net import LOOPBACK, free_ports, port_accepts, tail
from .process import spawn_logged

__all__ = ["KafkaCluster", "ClusterNode", "pid_alive", "FAULT_INDEX_ENV"]

STATE_FILE = "cluster.json"
FAULT_INDEX_ENV = "ODRADEK_FAULT_INDEX"
TESTS_DIR = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------------
# Processes known only by pid


def _proc_state(pid: int) -> str | None:
    """The state letter of ``/proc/PID/stat`` ('R', 'S', 'Z', ...), None when there is no such process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return "?"
    return stat.rpartition(")")[2].split()[0]


def pid_alive(pid: int) -> bool:
    """True while ``pid`` is a process that has not finished exiting. A zombie whose parent has not
    reaped it counts as exited, but only once it is alone: the main thread of a killed JVM turns into a
    zombie while its other threads are still being torn down (and still hold its sockets)."""
    if Path("/proc").is_dir():
        state = _proc_state(pid)
        if state is None:
            return False
        if state not in ("Z", "X"):
            return True
        try:
            return len(os.listdir(f"/proc/{pid}/task")) > 1
        except OSError:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _runs(pid: int, properties: Path) -> bool:
    """True when ``pid`` is alive and its command line names ``properties`` (guards against pid reuse)."""
    if not pid_alive(pid):
        return False
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return not Path("/proc").is_dir()  # no /proc: trust the pid file
    return os.fsencode(str(properties)) in argv


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# --------------------------------------------------------------------------------------------------
# Nodes


@dataclass
class ClusterNode:
    """One node's id, directory and ports; ``advertised`` is the client address put in Metadata."""

    node_id: int
    dir: Path
    port: int
    internal_port: int
    controller_port: int
    advertised: str

    @property
    def address(self) -> str:
        """The node's own client listener (``PLAINTEXT``), bypassing any proxy."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def internal_address(self) -> str:
        return f"{LOOPBACK}:{self.internal_port}"

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def log_path(self) -> Path:
        return self.dir / "kafka.log"

    @property
    def pid_path(self) -> Path:
        return self.dir / "kafka.pid"

    @property
    def properties_path(self) -> Path:
        return self.dir / "server.properties"

    @property
    def log4j_path(self) -> Path:
        return self.dir / "log4j2.properties"

    def to_json(self) -> dict:
        d = asdict(self)
        d["dir"] = str(self.dir)
        return d

    @classmethod
    def from_json(cls, d: Mapping) -> ClusterNode:
        return cls(**{**d, "dir": Path(d["dir"])})


# --------------------------------------------------------------------------------------------------
# Cluster


class KafkaCluster:
    """``size`` Apache Kafka nodes (broker + controller each) on loopback, in ``work_dir``.

    Nodes are named by their node id, ``1..size``, everywhere (``kill(1)``, ``advertised={1: ...}``).
    ``settings`` are extra or overriding ``server.properties`` entries for every node. ``advertised``
    maps a node id to the ``host:port`` to advertise for clients instead of the node's own port.
    :meth:`start` starts all nodes at once and returns when Metadata lists every broker; ``stop()``
    (also on leaving the ``with`` block) stops whatever runs, including nodes started by the command
    line. Ports and data survive ``stop()`` / ``kill()``: a later start uses them again.
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        size: int = 3,
        settings: Mapping[str, str] | None = None,
        advertised: Mapping[int, str] | None = None,
        heap: str = "512m",
        jvm_flags: Sequence[str] = FAST_JVM_FLAGS,
        start_timeout: float = 120.0,
    ) -> None:
        if size < 1:
            raise ValueError("a cluster needs at least one node")
        advertised = dict(advertised or {})
        bad = [k for k in advertised if k not in range(1, size + 1)]
        if bad:
            raise ValueError(f"advertised: keys are node ids 1..{size}, not {bad}")
        self.work_dir = Path(work_dir).resolve()
        self.size = size
        self.settings = dict(settings or {})
        self.advertised = advertised
        self.heap = heap
        self.jvm_flags = tuple(jvm_flags)
        self.start_timeout = start_timeout
        self.cluster_id: str | None = None
        self.nodes: dict[int, ClusterNode] = {}
        self.start_seconds: float | None = None  # wall time of the last start(), for reporting
        self._java: str | None = None
        self._classpath: str | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # nodes this object started
        self._cds_pending: dict[int, Path] = {}

    # -- state shared with other processes -------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.work_dir / STATE_FILE

    @classmethod
    def open(cls, work_dir: Path) -> KafkaCluster:
        """The cluster whose ``cluster.json`` is in ``work_dir`` (as another process wrote it)."""
        work_dir = Path(work_dir).resolve()
        state = json.loads((work_dir / STATE_FILE).read_text())
        self = cls(
            work_dir,
            size=state["size"],
            settings=state["settings"],
            heap=state["heap"],
            jvm_flags=state["jvm_flags"],
            start_timeout=state["start_timeout"],
        )
        self.cluster_id = state["cluster_id"]
        self._java = state["java"]
        self._classpath = state["classpath"]
        self.nodes = {int(k): ClusterNode.from_json(v) for k, v in state["nodes"].items()}
        self.advertised = {n.node_id: n.advertised for n in self.nodes.values() if n.advertised != n.address}
        return self

    def _write_state(self) -> None:
        state = {
            "kafka_version": KAFKA_VERSION,
            "cluster_id": self.cluster_id,
            "size": self.size,
            "settings": self.settings,
            "heap": self.heap,
            "jvm_flags": list(self.jvm_flags),
            "start_timeout": self.start_timeout,
            "java": self._java,
            "classpath": self._classpath,
            "nodes": {str(i): n.to_json() for i, n in self.nodes.items()},
        }
        tmp = self.state_path.with_name(f".{STATE_FILE}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        tmp.rename(self.state_path)

    # -- addresses -------------------------------------------------------------------------------
    @property
    def node_ids(self) -> list[int]:
        return list(range(1, self.size + 1))

    def _require_nodes(self) -> None:
        if not self.nodes:
            raise RuntimeError("KafkaCluster has not been started")

    @property
    def bootstrap(self) -> str:
        """Every node's client address as advertised (the proxies' when ``advertised`` names them)."""
        self._require_nodes()
        return ",".join(self.nodes[i].advertised for i in self.node_ids)

    @property
    def direct_bootstrap(self) -> str:
        """Every node's own client listener, bypassing any proxy (Metadata still advertises the proxies)."""
        self._require_nodes()
        return ",".join(self.nodes[i].address for i in self.node_ids)

    @property
    def internal_bootstrap(self) -> str:
        """The inter-broker listeners: Metadata asked here names only direct addresses."""
        self._require_nodes()
        return ",".join(self.nodes[i].internal_address for i in self.node_ids)

    def node(self, node_id: int) -> ClusterNode:
        self._require_nodes()
        if node_id not in self.nodes:
            raise ValueError(f"no node {node_id}: node ids are 1..{self.size}")
        return self.nodes[node_id]

    def node_for_fault_index(self, index: int) -> int:
        """The node crashed by fault ``index`` of ``odradek verify``: 0 -> 1, 1 -> 2, ... cyclically."""
        return index % self.size + 1

    def node_properties(self, node_id: int) -> dict[str, str]:
        n = self.node(node_id)
        voters = ",".join(f"{i}@{LOOPBACK}:{self.nodes[i].controller_port}" for i in self.node_ids)
        rf = str(self.size)
        min_isr = "2" if self.size >= 3 else "1"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node_id),
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://{LOOPBACK}:{n.port},INTERNAL://{LOOPBACK}:{n.internal_port},"
                f"CONTROLLER://{LOOPBACK}:{n.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{n.advertised},INTERNAL://{n.internal_address}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "INTERNAL",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(n.data_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "unclean.leader.election.enable": "false",
            # A SIGKILLed broker stays registered (and leader of its partitions) until the controller
            # fences it after the session timeout; its restarted incarnation cannot register before.
            "broker.heartbeat.interval.ms": "500",
            "broker.session.timeout.ms": "3000",
        }
        props.update(self.settings)
        return props

    # -- probes ----------------------------------------------------------------------------------
    def metadata_brokers(self, via: int, timeout: float = 2.0) -> set[int]:
        """Broker ids in a Metadata response from node ``via`` (asked on its internal listener); empty
        when it does not answer."""
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(
            {
                "bootstrap.servers": self.node(via).internal_address,
                "log_level": 0,
                "socket.timeout.ms": int(timeout * 1000),
            }
        )
        try:
            return set(admin.list_topics(timeout=timeout).brokers)
        except Exception:
            return set()

    def pid(self, node_id: int) -> int | None:
        """The pid of the node's JVM while it runs (whoever started it), else None."""
        n = self.node(node_id)
        proc = self._procs.get(node_id)
        if proc is not None:
            proc.poll()  # reap it if it died
        try:
            pid = int(n.pid_path.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        if proc is not None and proc.pid == pid:
            return pid if proc.returncode is None else None
        return pid if _runs(pid, n.properties_path) else None

    def running(self, node_id: int) -> bool:
        return self.pid(node_id) is not None

    def pids(self) -> dict[int, int]:
        """node id -> pid of every running node."""
        return {i: p for i in self.node_ids if (p := self.pid(i)) is not None}

    # -- lifecycle -------------------------------------------------------------------------------
    def _prepare(self) -> None:
        """Choose ports, write ``cluster.json`` and every node's configuration; format data dirs."""
        self._java = self._java or _require_java()
        self._classpath = self._classpath or str(ensure_kafka_jars() / "*")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        if not self.nodes:
            if self.state_path.exists():
                raise RuntimeError(f"{self.work_dir} already holds a cluster: use KafkaCluster.open()")
            ports = free_ports(3 * self.size)
            self.cluster_id = random_cluster_id()
            for i in self.node_ids:
                port, internal, controller = ports[3 * (i - 1) : 3 * i]
                self.nodes[i] = ClusterNode(
                    node_id=i,
                    dir=self.work_dir / f"node-{i}",
                    port=port,
                    internal_port=internal,
                    controller_port=controller,
                    advertised=self.advertised.get(i, f"{LOOPBACK}:{port}"),
                )
        self._write_state()
        unformatted = []
        for i, n in self.nodes.items():
            n.dir.mkdir(parents=True, exist_ok=True)
            n.properties_path.write_text("".join(f"{k}={v}\n" for k, v in self.node_properties(i).items()))
            n.log4j_path.write_text(_BROKER_LOG4J)
            if not (n.data_dir / "meta.properties").exists():
                unformatted.append(n)
        if unformatted:
            with ThreadPoolExecutor(len(unformatted)) as pool:
                list(
                    pool.map(
                        lambda n: run_kafka_tool(
                            "kafka.tools.StorageTool",
                            "format",
                            "-t",
                            self.cluster_id,
                            "-c",
                            n.properties_path,
                            timeout=120,
                            jvm_flags=self.jvm_flags,
                        ),
                        unformatted,
                    )
                )

    def _spawn(self, node_id: int, *, may_create_cds: bool = False) -> int:
        n = self.node(node_id)
        assert self._java is not None and self._classpath is not None
        cds, pending = _cds_flags(may_create=may_create_cds)
        argv = [
            self._java,
            f"-Xmx{self.heap}",
            *self.jvm_flags,
            *_JVM_LOG_FLAGS,
            *cds,
            f"-Dlog4j2.configurationFile={n.log4j_path}",
            "-cp",
            self._classpath,
            "kafka.Kafka",
            str(n.properties_path),
        ]
        proc = spawn_logged(
            argv,
            n.log_path,
            f"\n===== odradek tests: starting Kafka {KAFKA_VERSION} node {node_id}: {' '.join(argv)}\n",
            cwd=n.dir,
        )
        self._procs[node_id] = proc
        if pending is not None:
            self._cds_pending[node_id] = pending
        tmp = n.pid_path.with_name(f".kafka.pid.tmp-{os.getpid()}")
        tmp.write_text(f"{proc.pid}\n")
        tmp.rename(n.pid_path)
        return proc.pid

    def _raise_if_dead(self, node_id: int, deadline: float, what: str) -> None:
        n = self.node(node_id)
        if not self.running(node_id):
            proc = self._procs.get(node_id)
            code = f" with {proc.returncode}" if proc is not None else ""
            raise KafkaStartError(
                f"Kafka node {node_id} exited{code} while {what}; log {n.log_path}:\n{tail(n.log_path)}"
            )
        if time.monotonic() > deadline:
            raise KafkaStartError(
                f"Kafka node {node_id}: timed out after {self.start_timeout:.0f}s {what}; "
                f"log {n.log_path}:\n{tail(n.log_path)}"
            )

    def wait_listed(
        self, node_id: int, via: Iterable[int] | None = None, timeout: float | None = None
    ) -> None:
        """Wait until node ``node_id`` answers and Metadata from it and from each of ``via`` (default:
        every other running node) lists it as a broker, i.e. it has registered and is unfenced."""
        deadline = time.monotonic() + (self.start_timeout if timeout is None else timeout)
        n = self.node(node_id)
        while not port_accepts(LOOPBACK, n.internal_port, timeout=0.5):
            self._raise_if_dead(node_id, deadline, "waiting for its listener")
            time.sleep(0.05)
        askers = [node_id, *(via if via is not None else (i for i in self.node_ids if i != node_id))]
        for asker in askers:
            while node_id not in self.metadata_brokers(asker):
                if asker != node_id and not self.running(asker):
                    break
                self._raise_if_dead(node_id, deadline, f"waiting for Metadata from node {asker} to list it")
                time.sleep(0.1)

    def start(self) -> KafkaCluster:
        """Start every node that is not running, all at once; return when Metadata lists every broker."""
        t0 = time.monotonic()
        self._prepare()
        to_start = [i for i in self.node_ids if not self.running(i)]
        first = True
        for i in to_start:
            self._spawn(i, may_create_cds=first)
            first = False
        try:
            deadline = time.monotonic() + self.start_timeout
            for i in to_start:
                self.wait_listed(i, via=(), timeout=max(1.0, deadline - time.monotonic()))
            for i in self.node_ids:
                while set(self.node_ids) - self.metadata_brokers(i):
                    self._raise_if_dead(i, deadline, "waiting for Metadata to list every broker")
                    time.sleep(0.1)
        except BaseException:
            self.stop(timeout=5)
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def start_node(self, node_id: int, timeout: float | None = None) -> int:
        """Start one node again (same ports, same data) and wait until Metadata lists it; its pid."""
        self.node(node_id)
        self._java = self._java or _require_java()
        pid = self.pid(node_id)
        if pid is None:
            pid = self._spawn(node_id)
        try:
            self.wait_listed(node_id, timeout=timeout)
        except BaseException:
            self.kill(node_id)
            raise
        return pid

    def kill(self, node_id: int) -> bool:
        """SIGKILL one node and wait until it is dead; False when it was not running."""
        pid = self.pid(node_id)
        if pid is None:
            self._forget(node_id)
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        self._wait_exit(node_id, pid, 30.0)
        self._forget(node_id)
        return True

    def stop_node(self, node_id: int, timeout: float = 30.0) -> bool:
        """SIGTERM one node (controlled shutdown), SIGKILL it after ``timeout``; False when not running."""
        return bool(self._stop_nodes([node_id], timeout))

    def stop(self, timeout: float = 30.0) -> list[int]:
        """SIGTERM every running node at once, SIGKILL what still runs after ``timeout``; the ids stopped."""
        if not self.nodes:
            return []
        return self._stop_nodes(self.node_ids, timeout)

    def _stop_nodes(self, node_ids: Iterable[int], timeout: float) -> list[int]:
        pids = {i: p for i in node_ids if (p := self.pid(i)) is not None}
        for pid in pids.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for i, pid in pids.items():
            if not self._wait_exit(i, pid, max(0.0, deadline - time.monotonic())):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                self._wait_exit(i, pid, 30.0)
        for i in node_ids:
            self._forget(i)
        return list(pids)

    def _wait_exit(self, node_id: int, pid: int, timeout: float) -> bool:
        proc = self._procs.get(node_id)
        if proc is not None and proc.pid == pid:
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        return _wait_gone(pid, timeout)

    def _forget(self, node_id: int) -> None:
        """Reap this object's child for the node and settle its class-data-sharing archive."""
        proc = self._procs.pop(node_id, None)
        if proc is not None:
            proc.poll()
        pending = self._cds_pending.pop(node_id, None)
        _promote_cds(pending, proc.returncode if proc is not None else None)

    # -- commands for other processes ------------------------------------------------------------
    def _command(self, action: str, node_id: int | None) -> str:
        self._require_nodes()
        target = (
            ["--node-from-fault-index"] if node_id is None else ["--node", str(self.node(node_id).node_id)]
        )
        argv = [
            os.path.abspath(sys.executable),
            "-m",
            "support.kafka_cluster",
            action,
            "--dir",
            str(self.work_dir),
            *target,
        ]
        return f"PYTHONPATH={shlex.quote(str(TESTS_DIR))} " + " ".join(shlex.quote(a) for a in argv)

    def kill_cmd(self, node_id: int | None = None) -> str:
        """Shell command that SIGKILLs node ``node_id`` (default: the node of $ODRADEK_FAULT_INDEX)."""
        return self._command("kill", node_id)

    def start_cmd(self, node_id: int | None = None) -> str:
        """Shell command that starts node ``node_id`` (default: the node of $ODRADEK_FAULT_INDEX) again,
        detached, and returns once Metadata lists it."""
        return self._command("start", node_id)

    # -- context manager -------------------------------------------------------------------------
    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        if not self.nodes:
            return f"<KafkaCluster {KAFKA_VERSION} x{self.size} not started>"
        up = sorted(self.pids())
        return f"<KafkaCluster {KAFKA_VERSION} x{self.size} {self.bootstrap} running {up}>"


# --------------------------------------------------------------------------------------------------
# Command line


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m support.kafka_cluster", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="action", required=True)
    for action in ("kill", "start"):
        p = sub.add_parser(action)
        p.add_argument("--dir", required=True, type=Path, help="the cluster's work_dir (holds cluster.json)")
        which = p.add_mutually_exclusive_group(required=True)
        which.add_argument("--node", type=int, help="node id, 1..size")
        which.add_argument(
            "--node-from-fault-index",
            action="store_true",
            help=f"node ${FAULT_INDEX_ENV} %% size + 1",
        )
        if action == "start":
            p.add_argument("--timeout", type=float, default=None, help="seconds to wait for Metadata")
    for action in ("stop", "status"):
        sub.add_parser(action).add_argument("--dir", required=True, type=Path)
    args = parser.parse_args(argv)

    try:
        cluster = KafkaCluster.open(args.dir)
    except (OSError, ValueError, KeyError) as e:
        print(f"cannot read the cluster in {args.dir}: {e}", file=sys.stderr)
        return 2

    if args.action == "status":
        print(json.dumps({str(i): cluster.pid(i) for i in cluster.node_ids}))
        return 0
    if args.action == "stop":
        print(f"stopped nodes {cluster.stop()}", file=sys.stderr)
        return 0

    if args.node_from_fault_index:
        raw = os.environ.get(FAULT_INDEX_ENV)
        try:
            node_id = cluster.node_for_fault_index(int(raw or ""))
        except ValueError:
            print(f"--node-from-fault-index: ${FAULT_INDEX_ENV} is {raw!r}, not an integer", file=sys.stderr)
            return 2
    else:
        node_id = args.node
    if node_id not in cluster.node_ids:
        print(f"no node {node_id}: node ids are 1..{cluster.size}", file=sys.stderr)
        return 2

    t0 = time.monotonic()
    if args.action == "kill":
        pid = cluster.pid(node_id)
        if cluster.kill(node_id):
            print(f"node {node_id} (pid {pid}) killed", file=sys.stderr)
        else:
            print(f"node {node_id} was not running", file=sys.stderr)
        return 0
    try:
        pid = cluster.start_node(node_id, timeout=args.timeout)
    except KafkaStartError as e:
        print(str(e), file=sys.stderr)
        return 1
    print(
        f"node {node_id} (pid {pid}) listed in Metadata after {time.monotonic() - t0:.1f}s", file=sys.stderr
    )
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
