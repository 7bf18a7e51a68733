"""Page views forwarded as metric events, at-most-once: a crash may lose a few, never processes one twice.

Run a broker in another terminal (``odradek serve``), then:

    python examples/metrics_at_most_once.py --bootstrap 127.0.0.1:9092 --demo 1000

``--demo N`` first sends N sample page views to the input topic (every tenth one from a bot). Each view
becomes one metric event on the output topic, keyed by page; bots are dropped. Stop with Ctrl-C (or
SIGTERM), or pass ``--exit-after-idle SECONDS`` to stop once no view came in for that long.
"""

from __future__ import annotations

import argparse
import json
import threading
import time

from odradek.stream import App, GuaranteedProducer, Message, Output


class IdleStop:
    """Calls ``app.stop()`` once no record was processed for ``idle_s`` seconds (counted from the first)."""

    def __init__(self, app: App, idle_s: float) -> None:
        self.last: float | None = None
        threading.Thread(target=self._watch, args=(app, idle_s), daemon=True).start()

    def touch(self) -> None:
        self.last = time.monotonic()

    def _watch(self, app: App, idle_s: float) -> None:
        while self.last is None or time.monotonic() - self.last < idle_s:
            time.sleep(0.1)
        app.stop()


def send_demo(bootstrap: str, topic: str, n: int) -> None:
    producer = GuaranteedProducer(bootstrap, "at-least-once")
    pages = ["/", "/pricing", "/docs", "/blog", "/signup"]
    for i in range(n):
        view = {"page": pages[i % len(pages)], "user": f"u{i % 37}", "ms_on_page": 100 + i % 900}
        view["bot"] = i % 10 == 9
        producer.send(topic, json.dumps(view), key=view["user"])
    producer.flush()
    print(f"sent {n} page views to {topic}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="page-metrics")
    parser.add_argument("--input", default="page-views")
    parser.add_argument("--output", default="page-view-metrics")
    parser.add_argument("--demo", type=int, default=0, metavar="N", help="send N sample page views first")
    parser.add_argument("--exit-after-idle", type=float, metavar="SECONDS")
    parser.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on 127.0.0.1:PORT")
    args = parser.parse_args()

    if args.demo:
        send_demo(args.bootstrap, args.input, args.demo)

    app = App(args.bootstrap, args.group, "at-most-once", metrics_port=args.metrics_port)
    idle = IdleStop(app, args.exit_after_idle) if args.exit_after_idle else None

    @app.processor(source=args.input, sink=args.output)
    def page_view(msg: Message) -> Output | None:
        if idle is not None:
            idle.touch()
        view = json.loads(msg.value)
        if view.get("bot"):
            return None  # no output
        event = {"metric": "page_view", "page": view["page"], "ms_on_page": view["ms_on_page"]}
        return Output(json.dumps(event), key=view["page"])

    app.run()  # until app.stop(), SIGTERM or SIGINT; exits 1 (2 at start-up) on a fatal error
    forwarded = app.metrics.registry.get_sample_value(
        "odradek_stream_records_produced_total", {"topic": args.output}
    )
    print(f"forwarded {int(forwarded or 0)} metric events to {args.output}", flush=True)


if __name__ == "__main__":
    main()
