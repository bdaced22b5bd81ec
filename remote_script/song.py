"""Handler for Live's Song: the timing a request needs, the highlighted slot, undo steps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from .wire import bar_beats, model_tempo


@dataclass(frozen=True)
class Timing:
    """The tempo and meter a groove is asked in, read when a button was pressed."""

    tempo: float
    numerator: int
    denominator: int

    @property
    def beats_per_bar(self) -> float:
        """Clip times are in quarter notes: 6/8 has 3 of them a bar, 3/4 has 3, 7/8 has 3.5."""
        return bar_beats((self.numerator, self.denominator))

    def wire(self) -> dict:
        """`tempo` and `time_signature` as the daemon takes them (Live allows tempos it does not)."""
        return {"tempo": model_tempo(self.tempo), "time_signature": [self.numerator, self.denominator]}

    def label(self) -> str:
        """"96 BPM", with the meter in front when it is not 4/4: "7/8 96 BPM"."""
        tempo = f"{self.tempo:.0f}" if abs(self.tempo - round(self.tempo)) < 0.05 else f"{self.tempo:.1f}"
        meter = "" if (self.numerator, self.denominator) == (4, 4) else f"{self.numerator}/{self.denominator} "
        return f"{meter}{tempo} BPM"


def read_timing(song: object, slot: object, clip: object | None = None) -> Timing:
    """The tempo and meter a groove for `slot` plays in: the meter of `clip` if given (a Live 12
    clip has its own), and where the slot's scene sets a tempo or a meter, the scene's (the song
    takes them when the scene fires; Live reads -1 where it sets none), else the song's."""
    scene = song.scenes[list(slot.canonical_parent.clip_slots).index(slot)]
    tempo = scene.tempo if scene.tempo > 0 else song.tempo
    if clip is not None:
        meter = (clip.signature_numerator, clip.signature_denominator)
    elif scene.time_signature_numerator > 0:
        meter = (scene.time_signature_numerator, scene.time_signature_denominator)
    else:
        meter = (song.signature_numerator, song.signature_denominator)
    return Timing(float(tempo), int(meter[0]), int(meter[1]))


def highlighted_slot(song: object) -> object | None:
    """The Session slot under the selection; None on the main and return tracks."""
    return song.view.highlighted_clip_slot


@contextmanager
def undo_step(song: object) -> Iterator[None]:
    """Group every change made inside into one entry of Live's undo history."""
    song.begin_undo_step()
    try:
        yield
    finally:
        song.end_undo_step()
