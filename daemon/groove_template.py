"""Groove templates: where each piece group lands around each 16th of the bar, and how hard.

A drummer's feel with the pattern taken out, like an MPC groove template: measured from a
user's grooves when a style is learned (daemon/styles.py), written by hand for the presets, and
laid over the model's timing of the hits it samples (Generator.notes). docs/styles.md measures
what it does.
"""

from __future__ import annotations

import functools
import math
from collections import Counter
from dataclasses import dataclass, replace

from daemon import kit
from daemon.humanize import GRID_TOLERANCE, bar_steps, on_a_grid
from shared.notes import Note

GROUP_OF = {p: g for g, pitches in kit.GROUPS.items() for p in pitches}
ON_GRID = 0.25  # 16ths: a hit further than this from a 16th is on another grid (a 32nd, a triplet)


def _played_near_a_16th(start: float, offset: float) -> bool:
    """Whether a hit of a groove being measured belongs to its nearest 16th: any played hit (a
    heavy swing's off-beats sit a third of a 16th late), but not one exactly on a 32nd or a
    triplet, nor one half a 16th off, which would pull the 16th's mean towards another grid."""
    on_other_grid = on_a_grid(start, (8, 6)) and abs(offset) > GRID_TOLERANCE  # a 32nd or a triplet, not a 16th
    return abs(offset) < 0.45 and not on_other_grid


@dataclass
class Groove:
    """A performance as the learner sees it: canonical-kit notes in beats, its tempo and meter."""

    name: str
    notes: list[Note]
    tempo: float
    meter: tuple[int, int]
    bars: int


@dataclass
class GrooveTemplate:
    """Mean micro-timing (in 16ths, + = late) and velocity per piece group and 16th of the bar:
    a drummer's feel with the pattern taken out, like an MPC groove template. None: no such hit."""

    meter: tuple[int, int]
    offsets: dict[str, list[float | None]]
    velocities: dict[str, list[float | None]]

    @classmethod
    def measure(cls, grooves: list[Groove]) -> "GrooveTemplate":
        """The template of the grooves in their most played meter."""
        bars: Counter = Counter()
        for groove in grooves:
            bars[groove.meter] += groove.bars
        meter = bars.most_common(1)[0][0]
        n = bar_steps(meter)
        sums = {g: [[0.0, 0.0, 0] for _ in range(n)] for g in kit.GROUPS}
        for groove in (g for g in grooves if g.meter == meter):
            for note in groove.notes:
                group, step, offset = cls._place(note)
                if group is not None and _played_near_a_16th(note.start, offset):
                    acc = sums[group][step % n]
                    acc[0] += offset
                    acc[1] += note.velocity
                    acc[2] += 1
        offsets = {g: [round(o / c, 3) if c else None for o, _, c in s] for g, s in sums.items()}
        velocities = {g: [round(v / c, 1) if c else None for _, v, c in s] for g, s in sums.items()}
        return cls(meter, offsets, velocities)

    @classmethod
    def feel(cls, swing16: float = 0.0, swing8: float = 0.0, lay_back: dict[str, float] | None = None,
             meter: tuple[int, int] = (4, 4)) -> "GrooveTemplate":
        """A hand-written feel for the presets: off-beat 16ths late by `swing16` 16ths, off-beat 8ths
        by `swing8`, the groups in `lay_back` behind the beat; velocities left to the model."""
        lay_back = lay_back or {}
        n = bar_steps(meter)
        offsets = {g: [round(lay_back.get(g, 0.0) + swing16 * (s % 2) + swing8 * (s % 4 == 2), 3) for s in range(n)]
                   for g in kit.GROUPS}
        return cls(meter, offsets, {g: [None] * n for g in kit.GROUPS})

    def apply(self, notes: list[Note], meter: tuple[int, int], length: float, timing: float = 1.0,
              velocity: float = 0.0, one: float = 0.0) -> list[Note]:
        """Canonical-kit notes with each piece group's mean timing (and velocity) on each 16th of
        this clip moved `timing` (`velocity`) of the way, 0..1, to the template's; every hit keeps
        its own deviation from that mean, so the feel changes and the human spread stays. Hits
        off the 16th grid (32nds, triplets: further than ON_GRID from a 16th) are another grid's
        and stay where they are, out of the means; so does a hit on `one`, the first beat of what
        was played (the loop's one; after a primer, the first new bar's). Notes in another meter
        come back unchanged. Velocity is off by default (docs/styles.md)."""
        if tuple(meter) != self.meter:
            return list(notes)
        n = bar_steps(self.meter)
        cells: dict[tuple[str, int], list[tuple[float, int]]] = {}
        for note in notes:
            group, step, offset = self._place(note)
            if group is not None and abs(offset) <= ON_GRID:
                cells.setdefault((group, step % n), []).append((offset, note.velocity))
        out = []
        for note in notes:
            group, step, offset = self._place(note)
            start, vel = note.start, note.velocity
            if group is not None and abs(offset) <= ON_GRID and note.start != one:
                cell = cells[(group, step % n)]
                target, loudness = self.offsets[group][step % n], self.velocities[group][step % n]
                if target is not None:
                    start += timing * (target - sum(o for o, _ in cell) / len(cell)) / 4
                if loudness is not None:
                    vel = round(vel + velocity * (loudness - sum(v for _, v in cell) / len(cell)))
            out.append(replace(note, start=min(max(start, 0.0), length - 1 / 64), velocity=min(max(vel, 1), 127)))
        return sorted(out, key=lambda x: (x.start, x.pitch))

    @staticmethod
    def _place(note: Note) -> tuple[str | None, int, float]:
        """The note's piece group, nearest 16th and offset from it (in 16ths)."""
        sixteenths = note.start * 4
        step = math.floor(sixteenths + 0.5)
        return GROUP_OF.get(kit.to_canonical(note.pitch)), step, sixteenths - step

    def to_json(self) -> dict:
        return {"meter": list(self.meter), "offsets": self.offsets, "velocities": self.velocities}

    @classmethod
    def from_json(cls, data: dict) -> "GrooveTemplate":
        meter = (int(data["meter"][0]), int(data["meter"][1]))
        if not (0 < meter[0] <= 32 and meter[1] in (1, 2, 4, 8, 16, 32)):
            raise ValueError(f"its groove template's meter {meter} is not a time signature")
        n = bar_steps(meter)
        offsets, velocities = data["offsets"], data["velocities"]
        for table, low, high in ((offsets, -1.0, 1.0), (velocities, 1.0, 127.0)):  # a 16th either way; MIDI's
            if not isinstance(table, dict) or set(table) != set(kit.GROUPS) or any(
                    not isinstance(v, list) or len(v) != n or not all(x is None or _number_in(x, low, high) for x in v)
                    for v in table.values()):
                raise ValueError("its groove template is not one number (or null) per piece group and 16th, "
                                 "offsets within a 16th and velocities 1-127")
        return cls(meter, offsets, velocities)


def _number_in(x: object, low: float, high: float) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and low <= x <= high


@dataclass(frozen=True)
class Feel:
    """A hand-written feel (a preset's), made into a template for whichever meter is played: a
    GrooveTemplate is one meter's, and a preset built for 4/4 alone played 3/4, 6/8 or 5/4 as its
    bare genre blend, no swing, no lay-back. In x/8 meters the 8ths are the beat: a shuffle
    (`swing8`) has no off-beat 8ths to move there, so only the 16ths swing and the lay-back stay."""

    swing16: float = 0.0  # off-beat 16ths late by this many 16ths
    swing8: float = 0.0  # off-beat 8ths (of a quarter-note beat) late by this many 16ths
    lay_back: tuple[tuple[str, float], ...] = ()  # (piece group, 16ths behind the beat)

    @functools.cache
    def template(self, meter: tuple[int, int]) -> GrooveTemplate:
        swing8 = self.swing8 if meter[1] <= 4 else 0.0
        return GrooveTemplate.feel(self.swing16, swing8, dict(self.lay_back), tuple(meter))

    def apply(self, notes: list[Note], meter: tuple[int, int], length: float, **how: float) -> list[Note]:
        """GrooveTemplate.apply, with this feel's template for `meter`."""
        return self.template(tuple(meter)).apply(notes, meter, length, **how)
