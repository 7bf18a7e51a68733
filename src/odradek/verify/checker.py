"""The verifier's checker: a history in, verdicts out. No I/O, and nothing known of the library.

It reads what the workload sent and what reached the sink, and judges them against the definitions in
``docs/verify.md``:

* **lost**: an input the producer saw acknowledged that reached the sink zero times;
* **duplicated**: an input that reached the sink more than once (counted once per input; the extra
  copies are counted too);
* **reordered**: per key, an input whose first arrival at the sink came after the first arrival of a
  later input of the same key (the producer sends each key's inputs in sequence order);
* **aborted read**: a record a read_committed reader returned although it belongs to an aborted
  transaction;
* **acknowledged, then missing** (producer side): a record whose send was acknowledged but that is not
  in the log at the offset the acknowledgement named.

Each guarantee's promise, over those counts: at-most-once never duplicates (and never shows aborted
data); at-least-once never loses; exactly-once neither loses nor duplicates nor shows aborted data.
Reordering is reported, never judged: the guarantees say nothing of order across a rewind.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

GUARANTEES = ("at-most-once", "at-least-once", "exactly-once")
EXAMPLES_MAX = 10  # ids named in a verdict, per kind: enough to start looking, bounded for the report


@dataclass(frozen=True)
class Sent:
    """One input the workload produced: its sequence id, key, and whether the producer got an ack."""

    seq: int
    key: bytes
    acked: bool = True


@dataclass(frozen=True)
class Delivery:
    """One record read from the sink, in the order the reader returned it: the input ``seq`` it was
    made from, and whether it belongs to an aborted transaction (known from the writer's side)."""

    seq: int
    aborted: bool = False


@dataclass(frozen=True)
class Verdict:
    guarantee: str
    inputs: int
    lost: int
    duplicated: int  # inputs that arrived more than once
    extra_copies: int  # arrivals beyond the first, summed
    reordered: int
    aborted_reads: int
    unknown: int  # sink records made from no input the workload sent
    examples: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def broken(self) -> list[str]:
        """What broke the guarantee's promise (empty when it was kept)."""
        out = []
        if self.guarantee in ("at-least-once", "exactly-once") and self.lost:
            out.append(f"lost {self.lost}")
        if self.guarantee in ("at-most-once", "exactly-once") and self.duplicated:
            out.append(f"duplicated {self.duplicated}")
        if self.aborted_reads:
            out.append(f"aborted reads {self.aborted_reads}")
        if self.unknown:
            out.append(f"records from no input {self.unknown}")
        return out

    @property
    def kept(self) -> bool:
        return not self.broken

    @property
    def loss_rate(self) -> float:
        return self.lost / self.inputs if self.inputs else 0.0

    @property
    def duplicate_rate(self) -> float:
        return self.duplicated / self.inputs if self.inputs else 0.0


def check(guarantee: str, sent: Iterable[Sent], delivered: Iterable[Delivery]) -> Verdict:
    """Judge one run of ``guarantee`` from what was sent and what reached the sink (in read order)."""
    if guarantee not in GUARANTEES:
        raise ValueError(f"unknown guarantee {guarantee!r}; expected one of {', '.join(GUARANTEES)}")
    inputs = {}
    for s in sent:
        if s.seq in inputs:
            raise ValueError(f"input {s.seq} was sent twice: sequence ids must be unique")
        inputs[s.seq] = s
    arrivals: Counter[int] = Counter()
    first_order: list[int] = []
    aborted: list[int] = []
    unknown: list[int] = []
    for d in delivered:
        if d.aborted:
            aborted.append(d.seq)
            continue
        if d.seq not in inputs:
            unknown.append(d.seq)
            continue
        if arrivals[d.seq] == 0:
            first_order.append(d.seq)
        arrivals[d.seq] += 1
    lost = sorted(seq for seq, s in inputs.items() if s.acked and arrivals[seq] == 0)
    dups = sorted(seq for seq, n in arrivals.items() if n > 1)
    reordered = _reordered(first_order, inputs)
    return Verdict(
        guarantee=guarantee,
        inputs=len(inputs),
        lost=len(lost),
        duplicated=len(dups),
        extra_copies=sum(arrivals[seq] - 1 for seq in dups),
        reordered=len(reordered),
        aborted_reads=len(aborted),
        unknown=len(unknown),
        examples={
            "lost": tuple(lost[:EXAMPLES_MAX]),
            "duplicated": tuple(dups[:EXAMPLES_MAX]),
            "reordered": tuple(sorted(reordered)[:EXAMPLES_MAX]),
            "aborted": tuple(sorted(aborted)[:EXAMPLES_MAX]),
            "unknown": tuple(sorted(unknown)[:EXAMPLES_MAX]),
        },
    )


def _reordered(first_order: list[int], inputs: Mapping[int, Sent]) -> list[int]:
    """Inputs whose first arrival came after the first arrival of a later input of the same key."""
    highest: dict[bytes, int] = {}
    out = []
    for seq in first_order:
        key = inputs[seq].key
        top = highest.get(key)
        if top is not None and seq < top:
            out.append(seq)
        else:
            highest[key] = seq
    return out


@dataclass(frozen=True)
class Ack:
    """A producer acknowledgement: record ``seq`` was stored at ``partition``/``offset``."""

    seq: int
    partition: int
    offset: int


def acked_then_missing(acks: Iterable[Ack], log: Mapping[tuple[int, int], int]) -> list[int]:
    """Producer side: the acknowledged records that the log does not hold where the ack said.

    ``log`` maps ``(partition, offset)`` to the ``seq`` read there from the input topic."""
    return sorted(a.seq for a in acks if log.get((a.partition, a.offset)) != a.seq)
