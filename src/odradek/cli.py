"""Command line: ``odradek serve`` and ``odradek verify``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from .config import BrokerConfig, ConfigError


def _listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT (port 0 picks a free one), got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="odradek", description="A Kafka-compatible broker on one node.")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the broker")
    serve.add_argument(
        "--listen",
        type=_listen,
        default=("127.0.0.1", 9092),
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:9092; port 0 picks a free port)",
    )
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=Path("./odradek-data"),
        metavar="PATH",
        help="where logs and metadata live (default ./odradek-data)",
    )
    serve.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="a .properties or .toml file with Kafka's configuration key names",
    )
    serve.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one configuration key; repeatable",
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    _verify_parser(sub)
    return parser


def _positive_int(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {value!r}")
    return int(value)


def _positive_float(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        f = -1.0
    if not f > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return f


def _guarantees(value: str) -> tuple[str, ...]:
    from .verify.checker import GUARANTEES

    if value == "all":
        return GUARANTEES
    out = tuple(g.strip() for g in value.split(",") if g.strip())
    bad = [g for g in out if g not in GUARANTEES]
    if bad or not out:
        raise argparse.ArgumentTypeError(
            f"unknown guarantee {bad[0] if bad else value!r}; expected all or some of {', '.join(GUARANTEES)}"
        )
    return out


def _faults(value: str) -> tuple[str, ...]:
    from .verify.faults import parse_kinds

    try:
        return tuple(parse_kinds(value))
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _proxy(value: str) -> tuple[str, int, str, int]:
    listen, sep, target = value.partition("=")
    try:
        if not sep:
            raise argparse.ArgumentTypeError("")
        return (*_listen(listen), *_listen(target))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected LISTEN_HOST:PORT=BROKER_HOST:PORT, got {value!r}"
        ) from None


def _verify_parser(sub: argparse._SubParsersAction) -> None:
    from .verify.worker import SABOTAGES

    v = sub.add_parser(
        "verify",
        help="measure the delivery guarantees under injected faults",
        description="Run odradek.stream pipelines at each delivery guarantee under injected faults, read "
        "their sinks back and judge them: exit 0 when every guarantee kept its promise, 1 when one was "
        "broken, 2 for a usage or set-up error.",
    )
    v.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,...]",
        help="a Kafka-protocol cluster (default: an embedded Odradek broker in a temporary directory)",
    )
    v.add_argument(
        "--guarantee",
        type=_guarantees,
        default=None,
        metavar="G[,G]",
        help="at-most-once, at-least-once, exactly-once, or all (default)",
    )
    v.add_argument(
        "--faults",
        type=_faults,
        default=None,
        metavar="F[,F]",
        help="consumer-crash, broker-crash, partition, slow (default: all four), or none",
    )
    v.add_argument("--messages", type=_positive_int, default=30_000, help="workload records (default 30000)")
    v.add_argument(
        "--rate", type=_positive_float, default=500.0, help="workload records per second (default 500)"
    )
    v.add_argument("--partitions", type=_positive_int, default=6, help="input partitions (default 6)")
    v.add_argument("--workers", type=_positive_int, default=2, help="processes per pipeline (default 2)")
    v.add_argument(
        "--throughput-messages",
        type=int,
        default=20_000,
        metavar="N",
        help="records of the fault-free throughput phase per pipeline (default 20000; 0: skip)",
    )
    v.add_argument("--seed", type=int, default=1, help="the fault schedule's seed (default 1)")
    v.add_argument(
        "--sql-url",
        metavar="URL",
        help="the exactly-once SQL sink's database (SQLAlchemy URL; default a SQLite file)",
    )
    v.add_argument("--no-sql", action="store_true", help="leave out the exactly-once into SQL pipeline")
    v.add_argument(
        "--broker-kill-cmd",
        metavar="CMD",
        help="shell command that SIGKILLs a broker (external cluster); $ODRADEK_FAULT_INDEX is set",
    )
    v.add_argument(
        "--broker-start-cmd",
        metavar="CMD",
        help="shell command that starts it again and returns once it is up",
    )
    v.add_argument(
        "--proxy",
        type=_proxy,
        action="append",
        default=[],
        metavar="LISTEN=BROKER",
        help="external cluster: run a fault proxy on LISTEN forwarding to BROKER (repeatable; each broker "
        "must advertise its proxy), so the partition fault can run",
    )
    v.add_argument(
        "--replication-factor",
        type=int,
        default=-1,
        help="of the topics the run creates (default: the cluster's default)",
    )
    v.add_argument("--report", type=Path, metavar="FILE", help="write a self-contained HTML report")
    v.add_argument("--json", type=Path, metavar="FILE", help="write the result as JSON")
    v.add_argument(
        "--sabotage",
        choices=SABOTAGES,
        help="run a deliberately broken processor, to see the checker catch it",
    )
    v.add_argument(
        "--work-dir",
        type=Path,
        metavar="PATH",
        help="keep the broker's data, the SQLite sink and the workers' logs here",
    )
    v.add_argument("--quiet", action="store_true", help="no live progress display")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "verify":
        return _verify(args, list(sys.argv[2:] if argv is None else argv[1:]))
    if args.command == "serve":
        try:
            config = BrokerConfig.build(args.config, args.set)
        except ConfigError as e:
            print(f"odradek: {e}", file=sys.stderr)
            return 2
        if config["event.loop"] == "uvloop":
            try:
                import uvloop
            except ImportError:
                print("odradek: event.loop=uvloop needs: pip install 'odradek[uvloop]'", file=sys.stderr)
                return 2
            return uvloop.run(_serve(args.listen, args.data_dir, config))
        return asyncio.run(_serve(args.listen, args.data_dir, config))
    return 2


def _verify(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        from .verify import report
        from .verify.run import Options, SetupError, command_line, verify
    except ImportError as e:
        print(f"odradek verify needs: pip install 'odradek[verify]' ({e})", file=sys.stderr)
        return 2
    if bool(args.broker_kill_cmd) != bool(args.broker_start_cmd):
        print("odradek verify: --broker-kill-cmd and --broker-start-cmd go together", file=sys.stderr)
        return 2
    if args.proxy and not args.bootstrap:
        print("odradek verify: --proxy is for an external cluster (--bootstrap)", file=sys.stderr)
        return 2
    if args.sql_url and args.no_sql:
        print("odradek verify: --sql-url and --no-sql contradict each other", file=sys.stderr)
        return 2
    logging.getLogger().setLevel(logging.WARNING)
    from .verify.checker import GUARANTEES
    from .verify.faults import DEFAULT

    opts = Options(
        bootstrap=args.bootstrap,
        guarantees=args.guarantee or GUARANTEES,
        faults=DEFAULT if args.faults is None else args.faults,
        messages=args.messages,
        rate=args.rate,
        partitions=args.partitions,
        workers=args.workers,
        seed=args.seed,
        sql_url=args.sql_url,
        sql=not args.no_sql,
        broker_kill_cmd=args.broker_kill_cmd,
        broker_start_cmd=args.broker_start_cmd,
        throughput_messages=max(0, args.throughput_messages),
        sabotage=args.sabotage,
        work_dir=args.work_dir,
        replication_factor=args.replication_factor,
        proxies=tuple(args.proxy),
        command=command_line(argv),
    )
    console = report.console()
    try:
        with report.LiveView(console, enabled=not args.quiet) as live:
            result = verify(opts, live)
    except SetupError as e:
        print(f"odradek verify: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("odradek verify: interrupted", file=sys.stderr)
        return 2
    report.render_matrix(result, console)
    if result.get("work_dir") and (not result.get("kept") or result.get("errors")):
        console.print(f"the run's data and logs are kept in {result['work_dir']}")
    try:
        if args.json:
            report.write_json(result, args.json)
        if args.report:
            report.write_html(result, args.report)
    except OSError as e:
        print(f"odradek verify: cannot write the report: {e}", file=sys.stderr)
        return 2
    return int(result["exit_code"])


def _without_test_only_imports() -> None:
    """kio registers hypothesis strategies for its types whenever hypothesis is importable, which costs
    seconds at start-up and writes a .hypothesis/ folder into the working directory. The broker process
    never needs them, so hypothesis is made unimportable here, before kio is first imported."""
    if "hypothesis" not in sys.modules:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]


async def _serve(listen: tuple[str, int], data_dir: Path, config: BrokerConfig) -> int:
    _without_test_only_imports()
    from .broker.server import Broker
    from .broker.state import DataDirError

    try:
        broker = Broker(data_dir.resolve(), config)
    except ConfigError as e:
        print(f"odradek: {e}", file=sys.stderr)
        return 2
    try:
        await broker.start(*listen)
    except DataDirError as e:
        print(f"odradek: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"odradek: cannot listen on {listen[0]}:{listen[1]}: {e.strerror}", file=sys.stderr)
        broker.state.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    host = f"[{broker.host}]" if ":" in broker.host else broker.host
    print(f"odradek listening on {host}:{broker.port} {broker.state.data_dir}", flush=True)
    await stop.wait()
    logging.getLogger("odradek.broker").info("shutting down")
    await broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
