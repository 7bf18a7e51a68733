"""Workload records: the value carries its sequence id and a checksum; anything else is corrupt."""

from __future__ import annotations

import pytest

from odradek.verify.workload import CorruptRecord, key_of, make_value, parse_value


@pytest.mark.parametrize("size", [0, 20, 100, 1000])
def test_values_round_trip(size):
    for seq in (0, 7, 123_456, 9_999_999_999):
        v = make_value(seq, size)
        assert parse_value(v) == seq
        assert len(v) == max(size, 20)


def test_any_flipped_byte_is_caught():
    v = bytearray(make_value(42, 60))
    for i in range(len(v)):
        damaged = bytearray(v)
        damaged[i] ^= 0x01
        with pytest.raises(CorruptRecord):
            parse_value(bytes(damaged))


@pytest.mark.parametrize("value", [None, b"", b"hello", b"0000000001-00000000-xxxx", b"abcdefghij:00000000:"])
def test_foreign_values_are_corrupt(value):
    with pytest.raises(CorruptRecord):
        parse_value(value)


def test_keys_spread_sequences():
    assert [key_of(s, 3) for s in range(6)] == [b"k0", b"k1", b"k2", b"k0", b"k1", b"k2"]
