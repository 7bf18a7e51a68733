"""Command line: ``odradek serve``, ``odradek verify``, and the client commands for people (``topic``,
``group``, ``produce``, ``consume``, ``txn``) whose work lives in :mod:`odradek.tools`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
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
        default=None,
        metavar="HOST:PORT",
        help="the PLAINTEXT listener's address (default 127.0.0.1:9092; port 0 picks a free port); "
        "--set listeners=... configures several listeners instead",
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
    _tools_parsers(sub)
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


TOOL_COMMANDS = ("topic", "group", "produce", "consume", "txn", "user", "acl")


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None


def _client_options(fmt: bool = True) -> argparse.ArgumentParser:
    """What every client command takes: where the cluster is and how to talk to it."""
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("connection")
    g.add_argument(
        "-b",
        "--brokers",
        "--bootstrap-server",
        default=os.environ.get("ODRADEK_BROKERS", "127.0.0.1:9092"),
        metavar="HOST:PORT[,...]",
        help="bootstrap brokers (default $ODRADEK_BROKERS or 127.0.0.1:9092)",
    )
    g.add_argument(
        "--command-config", metavar="FILE", help="a .properties file of client settings (security, ...)"
    )
    g.add_argument(
        "-X",
        dest="client_property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="one client setting (librdkafka's names, e.g. security.protocol=SSL); repeatable",
    )
    g.add_argument(
        "--request-timeout-ms",
        type=_int,
        default=10_000,
        metavar="MS",
        help="how long to wait for the cluster's answer (default 10000)",
    )
    if fmt:
        g.add_argument(
            "--format", choices=["table", "json"], default="table", help="table for people (default), json"
        )
    return p


def _tools_parsers(sub: argparse._SubParsersAction) -> None:
    common = _client_options()

    topic = sub.add_parser("topic", help="create, list, describe, alter and delete topics")
    ts = topic.add_subparsers(dest="action", required=True)
    p = ts.add_parser("create", parents=[common], help="create topics")
    p.add_argument("topics", nargs="+", metavar="TOPIC")
    p.add_argument("--partitions", type=_int, default=-1, help="default: the broker's num.partitions")
    p.add_argument(
        "--replication-factor", type=_int, default=-1, help="default: the broker's default.replication.factor"
    )
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="a topic config")
    p.add_argument("--if-not-exists", action="store_true", help="a topic that exists already is no error")
    p = ts.add_parser("list", parents=[common], help="list topics")
    p.add_argument("--exclude-internal", action="store_true", help="leave out Kafka's internal topics")
    p = ts.add_parser("describe", parents=[common], help="partitions, offsets and configs of topics")
    p.add_argument("topics", nargs="+", metavar="TOPIC")
    p.add_argument("--all-configs", action="store_true", help="every config, not only those set on it")
    p = ts.add_parser("alter", parents=[common], help="set or delete topic configs, add partitions")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--config", action="append", default=[], metavar="KEY=VALUE", help="set a config")
    p.add_argument("--delete-config", action="append", default=[], metavar="KEY", help="back to the default")
    p.add_argument("--partitions", type=_int, help="raise the partition count to N")
    p = ts.add_parser("delete", parents=[common], help="delete topics")
    p.add_argument("topics", nargs="+", metavar="TOPIC")

    group = sub.add_parser("group", help="list, describe, delete consumer groups and reset their offsets")
    gs = group.add_subparsers(dest="action", required=True)
    gs.add_parser("list", parents=[common], help="list consumer groups")
    p = gs.add_parser("describe", parents=[common], help="members, committed offsets and lag")
    p.add_argument("groups", nargs="+", metavar="GROUP")
    p = gs.add_parser("delete", parents=[common], help="delete groups that have no members")
    p.add_argument("groups", nargs="+", metavar="GROUP")
    p = gs.add_parser(
        "seek",
        parents=[common],
        help="reset a group's committed offsets (a plan by default; --execute applies it)",
        description="Reset the committed offsets of a group with no active members, as kafka-consumer-groups "
        "--reset-offsets does: without --execute the plan is only printed.",
    )
    p.add_argument("group", metavar="GROUP")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--topic",
        action="append",
        dest="seek_topics",
        metavar="TOPIC[:P,P...]",
        help="a topic, or some of its partitions; repeatable",
    )
    where.add_argument("--all-topics", action="store_true", help="every topic the group has offsets for")
    to = p.add_mutually_exclusive_group(required=True)
    to.add_argument("--to-earliest", action="store_true", help="the log start offset")
    to.add_argument("--to-latest", action="store_true", help="the log end offset")
    to.add_argument("--to-offset", type=_int, metavar="N", help="offset N (kept within the log)")
    to.add_argument(
        "--to-datetime",
        metavar="ISO",
        help="the first record at or after this time (e.g. 2026-01-31T12:00:00Z)",
    )
    to.add_argument("--shift-by", type=_int, metavar="N", help="the committed offset plus N (N may be < 0)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--dry-run", action="store_true", help="print the plan only (the default)")
    mode.add_argument("--execute", action="store_true", help="commit the new offsets")

    p = sub.add_parser(
        "produce", parents=[common], help="send lines from stdin or a file as records, one a line"
    )
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--file", metavar="PATH", help="read lines from this file instead of stdin")
    p.add_argument(
        "--key-separator",
        metavar="SEP",
        help="each line is KEY<SEP>VALUE, split at the first SEP (parse.key=true key.separator=SEP)",
    )
    p.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="console-producer reader properties: parse.key, key.separator, ignore.error, null.marker",
    )
    p.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="on every record")
    p.add_argument("--partition", type=_int, help="send every record to this partition")
    p.add_argument(
        "--acks",
        "--request-required-acks",
        choices=["all", "-1", "0", "1"],
        default="all",
        help="acks (default all)",
    )

    p = sub.add_parser("consume", parents=[_client_options(fmt=False)], help="print records of a topic")
    p.add_argument("topic", metavar="TOPIC")
    p.add_argument("--from-beginning", action="store_true", help="start at the log start offset")
    p.add_argument(
        "--offset",
        metavar="N|earliest|latest",
        help="start at this offset of --partition (default latest)",
    )
    p.add_argument("--partition", type=_int, help="only this partition")
    p.add_argument(
        "--group", metavar="GROUP", help="consume as a member of GROUP and commit what was printed"
    )
    p.add_argument(
        "--count", "--max-messages", dest="count", type=_int, metavar="N", help="stop after N records"
    )
    p.add_argument(
        "--timeout-ms",
        "--timeout",
        dest="timeout_ms",
        type=_int,
        metavar="MS",
        help="stop when no record came for MS milliseconds (default: wait for ever)",
    )
    p.add_argument(
        "--isolation-level",
        choices=["read_uncommitted", "read_committed"],
        default="read_uncommitted",
        help="read_committed skips aborted and open transactions' records (default read_uncommitted)",
    )
    p.add_argument(
        "--format",
        choices=["raw", "json"],
        default="raw",
        help="raw: the value, one a line (default); json: one object a line with the metadata",
    )
    p.add_argument(
        "--encoding",
        choices=["utf8", "base64"],
        default="utf8",
        help='json keys, values and headers: text, or {"base64": ...} where not UTF-8 (utf8, default); '
        "or always base64 text (base64)",
    )
    p.add_argument("--print-key", action="store_true", help="raw: print KEY<TAB>VALUE")

    txn = sub.add_parser("txn", help="list and describe transactions")
    xs = txn.add_subparsers(dest="action", required=True)
    p = xs.add_parser("list", parents=[common], help="transactions the coordinators know")
    p.add_argument(
        "--state", action="append", default=[], metavar="STATE", help="only these states (e.g. Ongoing)"
    )
    p = xs.add_parser("describe", parents=[common], help="one transaction's state and partitions")
    p.add_argument("transactional_id", metavar="TRANSACTIONAL_ID")

    # The security commands keep their options beside their code.
    from .tools import acl, user

    user.add_parser(sub, common)
    acl.add_parser(sub, common)


def _tools_only_parser() -> argparse.ArgumentParser:
    """The client commands alone: what ``odradek topic ...`` parses with, without importing the
    verifier that ``verify``'s options come from (a tenth of a second at every start)."""
    parser = argparse.ArgumentParser(prog="odradek")
    _tools_parsers(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = _tools_only_parser() if words and words[0] in TOOL_COMMANDS else build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "WARNING"),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "verify":
        return _verify(args, list(sys.argv[2:] if argv is None else argv[1:]))
    if args.command in TOOL_COMMANDS:
        from .tools import run

        return run(args)
    if args.command == "serve":
        try:
            config = BrokerConfig.build(args.config, args.set)
        except ConfigError as e:
            print(f"odradek: {e}", file=sys.stderr)
            return 2
        if args.listen is not None and config["listeners"].strip():
            print("odradek: give either --listen or the listeners config, not both", file=sys.stderr)
            return 2
        args.listen = args.listen or ("127.0.0.1", 9092)
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
        # The message names the listener (NAME://HOST:PORT: reason) or the metrics endpoint.
        print(f"odradek: cannot listen on {e.strerror}", file=sys.stderr)
        broker.state.close()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    def shown(host: str) -> str:
        return f"[{host}]" if ":" in host else host

    # The ready line scripts wait for (the first listener's address), then, with several listeners, one
    # line per listener.
    print(f"odradek listening on {shown(broker.host)}:{broker.port} {broker.state.data_dir}", flush=True)
    if len(broker.listeners) > 1:
        for listener in broker.listeners:
            bound_host, bound_port = broker.bound[listener.name]
            print(f"odradek listener {listener.name} {shown(bound_host)}:{bound_port}", flush=True)
    await stop.wait()
    logging.getLogger("odradek.broker").info("shutting down")
    await broker.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
