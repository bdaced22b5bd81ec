"""Fake Live.MidiMap: which MIDI messages Live forwards to the script's receive_midi."""

from __future__ import annotations

import itertools
from typing import NamedTuple


class MapMode:
    """How Live interprets a mapped CC (only parameter mappings use it)."""

    absolute = 0
    absolute_14_bit = 1
    relative_signed_bit = 2
    relative_signed_bit2 = 3
    relative_binary_offset = 4
    relative_two_compliment = 5
    relative_smooth_signed_bit = 6
    relative_smooth_signed_bit2 = 7
    relative_smooth_binary_offset = 8
    relative_smooth_two_compliment = 9


class _Forward(NamedTuple):
    kind: str  # "cc" or "note"
    channel: int
    number: int


_maps: dict[int, tuple[int, set[_Forward]]] = {}
_handles = itertools.count(1)


def _new_map(script_handle: int) -> int:
    """Live's side: a fresh midi_map_handle for one build_midi_map call."""
    handle = next(_handles)
    _maps[handle] = (script_handle, set())
    return handle


def _forwards(midi_map_handle: int) -> frozenset[_Forward]:
    return frozenset(_maps[midi_map_handle][1])


def forward_midi_cc(
    script_handle: int, midi_map_handle: int, channel: int, cc: int, ShouldConsumeEvent: bool = True
) -> bool:
    return _forward("cc", script_handle, midi_map_handle, channel, cc)


def forward_midi_note(
    script_handle: int, midi_map_handle: int, channel: int, note: int, ShouldConsumeEvent: bool = True
) -> bool:
    return _forward("note", script_handle, midi_map_handle, channel, note)


def _forward(kind: str, script_handle: int, midi_map_handle: int, channel: int, number: int) -> bool:
    for name, value in (("script_handle", script_handle), ("midi_map_handle", midi_map_handle),
                        ("channel", channel), ("number", number)):  # fmt: skip
        if type(value) is not int:
            raise TypeError(f"forward_midi_{kind}: {name} must be an int, got {type(value).__name__}")
    if midi_map_handle not in _maps:
        raise RuntimeError(f"forward_midi_{kind}: unknown midi_map_handle {midi_map_handle}")
    owner, forwards = _maps[midi_map_handle]
    if script_handle != owner:
        raise RuntimeError(f"forward_midi_{kind}: script handle {script_handle} does not own this MIDI map")
    if not (0 <= channel <= 15 and 0 <= number <= 127):
        raise ValueError(f"forward_midi_{kind}: channel {channel} / number {number} out of range")
    forwards.add(_Forward(kind, channel, number))
    return True
