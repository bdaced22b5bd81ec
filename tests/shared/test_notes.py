"""Notes on the wire: maps checked field by field, and the packed records the Live script asks for."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from shared.notes import PACKED_NOTE, Note, pack_notes, unpack_notes
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
