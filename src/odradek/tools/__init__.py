"""The command line for people: ``odradek topic | group | produce | consume | txn | user | acl``.

A client of any Kafka-protocol cluster (Odradek or Apache Kafka alike), built on confluent-kafka's
AdminClient, Producer and Consumer, with rich for its tables. ``cli.py`` only parses; :func:`run`
imports the command's module, runs it and turns every failure into one line on stderr and an exit code:
1 when the cluster refused or could not be reached, 2 for a usage error or a missing extra, 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "topic": "topics",
    "group": "groups",
    "produce": "produce",
    "consume": "consume",
    "txn": "txns",
    "user": "user",
    "acl": "acl",
}


def run(args: argparse.Namespace) -> int:
    try:
        import confluent_kafka
        import rich  # noqa: F401
    except ImportError:
        print(f"odradek {args.command} needs: pip install 'odradek[cli]'", file=sys.stderr)
        return 2
    # kio (the wire client's codec) registers hypothesis strategies whenever hypothesis is importable,
    # which costs a second at every start; a command never needs them.
    if "hypothesis" not in sys.modules:
        sys.modules["hypothesis"] = None  # type: ignore[assignment]
    from .common import ToolError
    from .output import Output

    out = Output(args.format)
    module = importlib.import_module(f".{COMMANDS[args.command]}", __name__)
    name = " ".join(filter(None, [args.command, getattr(args, "action", None)]))
    try:
        return module.run(args, out) or 0
    except ToolError as e:
        out.flush()
        print(f"odradek {name}: {e}", file=sys.stderr)
        return e.exit_code
    except confluent_kafka.KafkaException as e:
        # A client failure no command foresaw still gets one line, not a traceback.
        out.flush()
        err = e.args[0] if e.args else e
        print(f"odradek {name}: {getattr(err, 'str', lambda: str(err))()}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        out.flush()
        print(f"odradek {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of our output went away (``| head``): nothing more to say to anyone.
        sys.stderr.close()
        return 1
