"""Page views forwarded as metric events, at-most-once: a crash may lose a few, never processes one twice.

Run a broker in another terminal (``odradek serve``), then:

    python examples/metrics_at_most_once.py --bootstrap 127.0.0.1:9092 --demo 1000

``--demo N`` first sends N sample page views to the input topic (every tenth one from a bot). Each view
becomes one metric event on the output topic, keyed by page; bots are dropped. Stop with Ctrl-C (or
SIGTERM), or pass ``--exit-after-idle SECONDS`` to stop once no view came in for that long.
"""

from __future__ import annotations

import json

from _demo import command_line, idle_stop

from odradek.stream import App, GuaranteedProducer, Message, Output


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
    parser = command_line(__doc__, group="page-metrics", input_topic="page-views", sample="page views")
    parser.add_argument("--output", default="page-view-metrics")
    args = parser.parse_args()

    if args.demo:
        send_demo(args.bootstrap, args.input, args.demo)

    app = App(args.bootstrap, args.group, "at-most-once", metrics_port=args.metrics_port)
    touch = idle_stop(app, args.exit_after_idle)

    @app.processor(source=args.input, sink=args.output)
    def page_view(msg: Message) -> Output | None:
        touch()
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
