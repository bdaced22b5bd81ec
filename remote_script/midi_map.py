"""Handler for Live.MidiMap: ask Live to forward the mapped buttons, and read what arrives.

Live delivers to `receive_midi` only what `build_midi_map` forwarded, as a tuple of ints.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import Live

from .mapping import ANY_CHANNEL, Control

CC, NOTE_ON, NOTE_OFF = 0xB0, 0x90, 0x80


class MidiEvent(NamedTuple):
    kind: str  # "cc" or "note"
    channel: int
    number: int
    value: int  # CC value or velocity; 0 for a release


def forward(script_handle: int, midi_map_handle: int, controls: Iterable[Control]) -> None:
    for control in controls:
        send_to_script = Live.MidiMap.forward_midi_cc if control.kind == "cc" else Live.MidiMap.forward_midi_note
        for channel in range(16) if control.channel is ANY_CHANNEL else (control.channel,):
            send_to_script(script_handle, midi_map_handle, channel, control.number)


def decode(midi_bytes: tuple[int, ...]) -> MidiEvent | None:
    """A CC or note message as a MidiEvent; None for anything else (e.g. aftertouch, SysEx)."""
    if len(midi_bytes) != 3:
        return None
    status, number, value = midi_bytes
    kind = status & 0xF0
    if kind == CC:
        return MidiEvent("cc", status & 0x0F, number, value)
    if kind == NOTE_ON:
        return MidiEvent("note", status & 0x0F, number, value)
    if kind == NOTE_OFF:
        return MidiEvent("note", status & 0x0F, number, 0)
    return None
