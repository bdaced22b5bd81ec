"""Notes on the wire: maps checked field by field, and the packed records the Live script asks for."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, strategies as st

from shared.notes import PACKED_NOTE, Note, cut_short, pack_notes, unpack_notes
from shared.protocol import ProtocolError

notes = st.lists(st.builds(
    Note,
    pitch=st.integers(0, 127),
    start=st.floats(0.0, 1e5, allow_nan=False),
    duration=st.floats(1e-6, 1e5, allow_nan=False),
    velocity=st.integers(1, 127),
    probability=st.floats(0.0, 1.0),
    velocity_deviation=st.floats(-127.0, 127.0),
), max_size=50)


@given(notes)
def test_packed_notes_come_back_exactly(original):
    blob = pack_notes(original)
    assert len(blob) == PACKED_NOTE.size * len(original)
    assert unpack_notes(blob) == original
    assert [Note.from_wire(n.to_wire()) for n in original] == original


@pytest.mark.parametrize("blob, mentions", [
    ("not bytes", "bytes"),
    (b"\x00" * (PACKED_NOTE.size + 1), "per note"),
    (PACKED_NOTE.pack(200, 90, 0.0, 0.25, 1.0, 0.0), "pitch"),
    (PACKED_NOTE.pack(36, 0, 0.0, 0.25, 1.0, 0.0), "velocity"),
    (PACKED_NOTE.pack(36, 90, -1.0, 0.25, 1.0, 0.0), "start"),
    (PACKED_NOTE.pack(36, 90, 0.0, 0.25, 2.0, 0.0), "probability"),
])
def test_bad_packed_notes_are_refused_with_a_reason(blob, mentions):
    with pytest.raises(ProtocolError, match=mentions):
        unpack_notes(blob)


@given(notes)
def test_cut_short_ends_each_note_by_its_pitchs_next_hit_and_changes_nothing_else(original):
    cut = cut_short(original)
    assert [(n.pitch, n.start, n.velocity, n.probability) for n in cut] == \
        [(n.pitch, n.start, n.velocity, n.probability) for n in original]
    assert all(0 < c.duration <= n.duration for c, n in zip(cut, original))
    for a in cut:
        for b in cut:
            if a.pitch == b.pitch and a.start < b.start:
                assert a.start + a.duration <= b.start
    for c, n in zip(cut, original):  # only where the next hit of its pitch came before its end, and up to it
        nearest = min((b.start for b in original if b.pitch == n.pitch and b.start > n.start), default=None)
        assert c.duration == n.duration or math.nextafter(c.start + c.duration, math.inf) >= nearest


def test_a_cut_note_ends_before_the_next_hit_not_a_float_step_after_it():
    """0.21856 - 0.078998 + 0.078998 is 0.21856000000000003: the player sent that note-off after
    the next note-on and silenced it (4 in 10,000 humanized neighbours)."""
    first, second = cut_short([Note(42, 0.078998, 0.25, 80), Note(42, 0.21856, 0.25, 80)])
    assert first.start + first.duration <= second.start


def test_a_roll_of_16th_long_notes_is_cut_to_its_32nds():
    roll = [Note(38, k / 8, 0.25, 90) for k in range(4)] + [Note(36, 0.0, 0.25, 100)]
    assert [n.duration for n in cut_short(roll)] == [0.125, 0.125, 0.125, 0.25, 0.25]
