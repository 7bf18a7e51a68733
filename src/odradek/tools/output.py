"""What the commands print: tables for people (rich) or JSON for scripts, notes and progress on stderr.

Tables go to stdout without borders, one row a line, so ``grep`` and ``awk`` work on them as on Kafka's
own tools; ``--format json`` prints one JSON document (or, for ``consume``, one object a line).
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

# Wide enough that a table piped into a file or another program is never wrapped or cut.
_PIPE_WIDTH = 4096


def _console(file: Any) -> Console:
    tty = file.isatty()
    return Console(file=file, highlight=False, soft_wrap=False, width=None if tty else _PIPE_WIDTH)


class Progress:
    """A spinner line on stderr while a command waits; silent when stderr is not a terminal."""

    def __init__(self, status: Any | None) -> None:
        self._status = status

    def update(self, text: str) -> None:
        if self._status is not None:
            self._status.update(text)

    def stop(self) -> None:
        if self._status is not None:
            self._status.stop()
            self._status = None


class Output:
    def __init__(self, fmt: str = "table") -> None:
        self.format = fmt
        self.stdout = _console(sys.stdout)
        self.stderr = _console(sys.stderr)

    @property
    def json(self) -> bool:
        return self.format == "json"

    def table(self, columns: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
        """Columns with Kafka's upper-case headings; None shows as "-" as kafka-consumer-groups does."""
        t = Table(box=box.SIMPLE_HEAD if self.stdout.is_terminal else None, title=title, title_justify="left")
        t.show_edge = False
        for c in columns:
            t.add_column(c, header_style="bold", no_wrap=True)
        for row in rows:
            t.add_row(*(Text("-" if v is None else str(v)) for v in row))
        self.stdout.print(t)

    def document(self, value: Any) -> None:
        """One JSON document on stdout."""
        sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
        sys.stdout.flush()

    def line(self, text: str) -> None:
        """One plain line on stdout (no markup)."""
        self.stdout.print(Text(text))

    def note(self, text: str) -> None:
        """A remark for the person at the terminal, on stderr, so stdout stays clean for scripts."""
        self.stderr.print(Text(text))

    @contextlib.contextmanager
    def progress(self, text: str) -> Iterator[Progress]:
        if not self.stderr.is_terminal:
            yield Progress(None)
            return
        with self.stderr.status(text) as status:
            yield Progress(status)

    def spinner(self, text: str) -> Progress:
        """A started spinner (call ``stop``), for a wait that is not one block of code."""
        if not self.stderr.is_terminal:
            return Progress(None)
        status = self.stderr.status(text)
        status.start()
        return Progress(status)

    def flush(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stdout.flush()


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def show_bytes(data: bytes | None, encoding: str) -> str | dict[str, str] | None:
    """A key, value or header value in JSON: ``encoding="utf8"`` gives the text when the bytes are valid
    UTF-8 and ``{"base64": "..."}`` when they are not; ``encoding="base64"`` gives base64 text always.
    None (a null key or value) stays null."""
    if data is None:
        return None
    if encoding == "base64":
        return base64.b64encode(data).decode("ascii")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(data).decode("ascii")}
