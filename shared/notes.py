"""Drum notes as both ends see them: times in beats (quarter notes), like Live's clips."""

from __future__ import annotations

import bisect
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace

from .protocol import E_BAD_REQUEST, ProtocolError, brief

# A note as one fixed-size record, for replies the Live script asks to get `packed`: decoding a
# reply of 16 patterns x 200 note maps in pure Python takes ~30 ms, a stall on Live's main
# thread; one bytes object per pattern decodes in microseconds, and only the pattern written
# is unpacked. Little-endian pitch, velocity, start, duration, probability, velocity deviation.
PACKED_NOTE = struct.Struct("<BBdddd")


MAX_NOTE_BEATS = 1e6  # a note's start and its length, in beats: far past any clip


@dataclass(frozen=True)
class Note:
    pitch: int
    start: float  # beats from the clip start
    duration: float  # beats
    velocity: int  # 1..127
    probability: float = 1.0  # Live 12's per-note chance
    velocity_deviation: float = 0.0  # Live 12's per-note velocity range

    def to_wire(self) -> dict:
        wire = {
            "pitch": self.pitch,
            "start": self.start,
            "duration": self.duration,
            "velocity": self.velocity,
        }
        if self.probability != 1.0:
            wire["probability"] = self.probability
        if self.velocity_deviation != 0.0:
            wire["velocity_deviation"] = self.velocity_deviation
        return wire

    @classmethod
    def from_wire(cls, wire: object) -> "Note":
        """Validate one note map from the wire; raise ProtocolError on anything off."""
        if not isinstance(wire, dict):
            raise ProtocolError(E_BAD_REQUEST, "each note must be a map")
        try:
            pitch, velocity = wire["pitch"], wire["velocity"]
            start, duration = _number(wire["start"], "start"), _number(wire["duration"], "duration")
        except KeyError as missing:
            raise ProtocolError(E_BAD_REQUEST, f"a note lacks {missing}") from None
        probability = _number(wire.get("probability", 1.0), "probability")
        deviation = _number(wire.get("velocity_deviation", 0.0), "velocity_deviation")
        return cls._checked(pitch, start, duration, velocity, probability, deviation)

    @classmethod
    def _checked(cls, pitch: object, start: float, duration: float, velocity: object, probability: float,
                 deviation: float) -> "Note":
        if not (is_int(pitch) and 0 <= pitch <= 127):
            raise ProtocolError(E_BAD_REQUEST, f"note pitch must be 0..127, got {brief(pitch)}")
        if not (is_int(velocity) and 1 <= velocity <= 127):
            raise ProtocolError(E_BAD_REQUEST, f"note velocity must be 1..127, got {brief(velocity)}")
        if not 0.0 <= start < MAX_NOTE_BEATS:
            raise ProtocolError(E_BAD_REQUEST, f"note start must be 0 to {MAX_NOTE_BEATS:g} beats, got {start!r}")
        if not 0.0 < duration < MAX_NOTE_BEATS:
            raise ProtocolError(E_BAD_REQUEST, f"note duration must be over 0 and under {MAX_NOTE_BEATS:g} beats, "
                                               f"got {duration!r}")
        if not (0.0 <= probability <= 1.0):
            raise ProtocolError(E_BAD_REQUEST, f"note probability must be 0..1, got {probability!r}")
        if not -127.0 <= deviation <= 127.0:  # Live 12's velocity range
            raise ProtocolError(E_BAD_REQUEST, f"note velocity_deviation must be -127..127, got {deviation!r}")
        return cls(int(pitch), start, duration, int(velocity), probability, deviation)


def pack_notes(notes: list[Note]) -> bytes:
    return b"".join(PACKED_NOTE.pack(n.pitch, n.velocity, n.start, n.duration, n.probability, n.velocity_deviation)
                    for n in notes)


def unpack_notes(blob: object) -> list[Note]:
    """Notes from `pack_notes` bytes, each checked like `Note.from_wire`; ProtocolError if off."""
    if not isinstance(blob, (bytes, bytearray)) or len(blob) % PACKED_NOTE.size:
        raise ProtocolError(E_BAD_REQUEST, f"packed notes must be bytes, {PACKED_NOTE.size} per note")
    return [Note._checked(pitch, start, duration, velocity, probability, deviation)
            for pitch, velocity, start, duration, probability, deviation in PACKED_NOTE.iter_unpack(blob)]


def _number(value: object, name: str) -> float:
    """A note field that must be a number: not a string, not a bool (msgpack keeps them apart)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ProtocolError(E_BAD_REQUEST, f"note {name} must be a number, got {brief(value)}")
    return float(value)


def is_int(value: object) -> bool:
    """A whole number as msgpack and JSON carry one: an int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def cut_short(notes: list[Note]) -> list[Note]:
    """The notes in their order, each ending by the next hit of its pitch: MIDI, Live and a
    synth hold one note of a pitch at a time, and a hit still sounding when its drum is struck
    again (a 16th-long note in a 32nd roll) would swallow or end the next. Two hits of a pitch
    at one start are left as they are."""
    starts: dict[int, list[float]] = {}
    for n in notes:
        starts.setdefault(n.pitch, []).append(n.start)
    for line in starts.values():
        line.sort()
    out = []
    for n in notes:
        line = starts[n.pitch]
        k = bisect.bisect_right(line, n.start)
        nxt = line[k] if k < len(line) else math.inf
        out.append(replace(n, duration=_up_to(n.start, nxt)) if nxt < n.start + n.duration else n)
    return out


def _up_to(start: float, end: float) -> float:
    """The longest duration from `start` that does not pass `end`: `end - start` can round a
    float's step past it, and a note-off after the next note-on would cut that note off."""
    duration = end - start
    while start + duration > end:  # once or twice: each step takes the sum down a step of its own
        duration -= math.ulp(start + duration)
    return duration


ACROSS_THE_LINE = 1 / 8  # of the meter's beat: a hit this close before a loop's end (or a bar line), its piece as close after


def without_doubled_ones(notes: list[Note], end: float, following: list[Note], start: float = 0.0,
                         meter: tuple[int, int] = (4, 4), piece: Callable[[int], int] = int) -> list[Note]:
    """`notes` but their hits in the last ACROSS_THE_LINE beat before `end` of a piece that
    `following` (what plays from `end` on: the loop from its `start`, or the clip's next bar)
    hits within ACROSS_THE_LINE beat of `start`, either side (a played clip's next one may come a
    hair early). Such a hit is the next one played early: GMD writes a downbeat played a hair
    early into the bar before, so the model ends a take with the next bar's kick or hats, and
    with the loop's own one after it the two made a flam on the one in 29-46 % of 2-bar beats,
    where 7 % of GMD's bar lines have one (docs/model.md, "The loop point"). Times are in quarter
    notes; the beat is the meter's (in 2/2 the model writes a hit 1/12 of a half note early).
    `piece` says which drum a pitch plays (a clip's hi-hat edge zone is the hi-hat)."""
    across = across_the_line(meter)
    ones = {piece(n.pitch) for n in following if abs(n.start - start) < across}
    return [n for n in notes if not (piece(n.pitch) in ones and end - across < n.start < end)]


def bar_beats(meter: tuple[int, int]) -> float:
    """Length of one bar in quarter notes (Live's beats): 3/4 and 6/8 have 3, 7/8 has 3.5."""
    return meter[0] * 4 / meter[1]


def across_the_line(meter: tuple[int, int]) -> float:
    """ACROSS_THE_LINE of the meter's beat, in quarter notes, and never less than of a quarter:
    in x/8 meters, learned from 4/4 takes replayed in them, the model writes its early hits up
    to 1/12 of a quarter early (a kick 1/12 of a quarter before a 7/8 loop's one flammed with it)."""
    return ACROSS_THE_LINE * max(4 / meter[1], 1)
