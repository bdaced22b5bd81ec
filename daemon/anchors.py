"""Anchors: hits a style plays in every bar (a four on the floor, claps on 2 and 4), which the
grammar keeps while the model plays everything around them.

GMD has no four-on-the-floor genre, and neither a blend of its genres nor a vector learned from
a user's techno clips makes the model put a kick on every beat reliably (docs/styles.md: 20-50 %
of bars). What a style always plays is a constraint, not a likelihood: `grammar.BarState`
keeps it, exactly on its 16th or a hair before, and the model chooses the loudness of those hits
and every other hit, hearing them as it goes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from daemon import kit
from daemon.grammar import HATS, MAX_HANDS_AT_ONCE, MAX_HITS_AT_ONCE
from daemon.groove_template import ON_GRID, Groove
from daemon.humanize import bar_steps, compound
from daemon.vocab import POSITIONS_PER_BEAT

ALWAYS = 0.95  # a piece on a 16th in at least this share of a style's bars is one it always plays
MIN_BARS = 8  # fewer bars in the style's meter than this say too little about "always"
PIECES = frozenset(kit.PIECE_NAMES)  # what the model plays (canonical GM pitches)


def sixteenth(meter: tuple[int, int]) -> int:
    """Grammar positions in a 16th: 6 in x/4, 12 in x/8, 3 in x/2."""
    return POSITIONS_PER_BEAT * meter[1] // 16


@dataclass(frozen=True)
class Anchors:
    """(16th of the bar, canonical pitch) pairs a style plays in every bar of one meter."""

    meter: tuple[int, int]
    hits: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        steps = bar_steps(self.meter)
        for step, pitch in self.hits:
            if not (type(step) is int and 0 <= step < steps and pitch in PIECES):
                raise ValueError(f"anchor {[step, pitch]} is not a 16th of a {self.meter[0]}/{self.meter[1]} bar "
                                 "and a drum of the kit")
        for step, count in Counter(step for step, _ in self.hits).items():
            at = {pitch for s, pitch in self.hits if s == step}
            if (len(at) != count or count > MAX_HITS_AT_ONCE or len(at & HATS) > 1
                    or len(at - kit.FEET) > MAX_HANDS_AT_ONCE):
                raise ValueError(f"anchors on 16th {step} ask for what one drummer cannot play at once: "
                                 f"{sorted(at)}")

    def positions(self, meter: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        """(grammar position, pitch) pairs for a bar of `meter`: none in another meter."""
        if tuple(meter) != self.meter:
            return ()
        return tuple((step * sixteenth(meter), pitch) for step, pitch in self.hits)

    @classmethod
    def measure(cls, grooves: list[Groove], meter: tuple[int, int]) -> "Anchors | None":
        """The pieces the grooves of `meter` strike on a 16th (within ON_GRID of it) in at least
        ALWAYS of their bars that play; per 16th, what one drummer can play at once, the most
        constant first. None if the grooves hold fewer than MIN_BARS such bars or no anchor."""
        steps = bar_steps(meter)
        bars, seen = 0, Counter()
        for groove in (g for g in grooves if g.meter == meter):
            played: list[set[tuple[int, int]]] = [set() for _ in range(groove.bars)]
            for note in groove.notes:
                at = note.start * 4  # in 16ths
                step = round(at)
                bar = step // steps
                if abs(at - step) <= ON_GRID and bar < groove.bars and note.pitch in PIECES:
                    played[bar].add((step % steps, note.pitch))
            bars += sum(1 for hits in played if hits)
            seen.update(hit for hits in played for hit in hits)
        if bars < MIN_BARS:
            return None
        kept: list[tuple[int, int]] = []
        for (step, pitch), count in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])):
            if count < ALWAYS * bars:
                break
            try:
                cls(meter, (*kept, (step, pitch)))
            except ValueError:  # a second hat state, a third hand: the more constant one stays
                continue
            kept.append((step, pitch))
        return cls(meter, tuple(sorted(kept))) if kept else None

    def describe(self) -> str:
        """As a drummer counts them: 'kick on 1 2 3 4; snare on 2 4; open hat on 1& 2& 3& 4&'."""
        per_beat = max(1, 16 // self.meter[1])  # 16ths a beat: 4 in x/4, 2 in x/8
        names = {4: ("", "e", "&", "a"), 2: ("", "&")}.get(per_beat)

        def count(step: int) -> str:
            beat, sub = divmod(step, per_beat)
            return f"{beat + 1}{names[sub]}" if names else f"{beat + 1}" + (f".{sub + 1}" if sub else "")

        pieces = sorted({pitch for _, pitch in self.hits}, key=lambda p: (min(s for s, q in self.hits if q == p), p))
        return "; ".join(f"{kit.PIECE_NAMES[p]} on " + " ".join(count(s) for s, q in self.hits if q == p)
                         for p in pieces)

    def to_json(self) -> dict:
        return {"meter": list(self.meter), "hits": [list(hit) for hit in self.hits]}

    @classmethod
    def from_json(cls, data: object) -> "Anchors":
        try:
            meter = (int(data["meter"][0]), int(data["meter"][1]))
            hits = tuple((step, pitch) for step, pitch in data["hits"])
        except (TypeError, KeyError, IndexError, ValueError) as err:
            raise ValueError(f"its anchors are not a meter and [16th, pitch] pairs ({err})") from None
        if not (0 < meter[0] <= 32 and meter[1] in (1, 2, 4, 8, 16, 32)):
            raise ValueError(f"its anchors' meter {meter} is not a time signature")
        return cls(meter, hits)


@dataclass(frozen=True)
class OnTheBeat:
    """One piece on every beat of any meter: a four on the floor in 4/4, three in 3/4, the
    dotted quarters of 6/8, 9/8 and 12/8, and in 5/8 and 7/8 the beats of their 2+3 and 2+2+3."""

    pitch: int = 36

    def positions(self, meter: tuple[int, int]) -> tuple[tuple[int, int], ...]:
        num, den = meter
        if den != 8:
            beats = [k * POSITIONS_PER_BEAT for k in range(num)]
        elif compound(meter):
            beats = [k * 3 * POSITIONS_PER_BEAT for k in range(num // 3)]
        else:  # twos, with the odd eighth in a last three
            beats = [k * 2 * POSITIONS_PER_BEAT for k in range(max(1, num // 2))]
        return tuple((position, self.pitch) for position in beats)
