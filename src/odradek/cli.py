"""Command line: ``odradek serve``."""

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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
