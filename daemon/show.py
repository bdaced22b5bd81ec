"""A groove as a drum grid in the terminal: one row per piece, one column per 16th note.

    bar 1            bar 2
    1 . . . 2 . . .  1 . . . 2 . . .
crash      X - - - - - - -  - - - - - - - -
closed hat x - x - x . x -  x - x - x - x x

`X` accent (velocity ≥ 100), `x` normal, `.` ghost (< 50), `-` rest. Hits are placed on the
nearest 16th, so micro-timing is not drawn; `drumigen show --png` draws it exactly.
"""

from __future__ import annotations

from daemon.kit import PIECE_NAMES
from shared.notes import Note

STEPS_PER_BEAT = 4  # quarter-note beats: 16ths
# Top to bottom as a drummer reads a chart: cymbals, hats, toms, snare, kick.
ROW_ORDER = (49, 57, 55, 52, 51, 53, 59, 46, 42, 44, 50, 48, 47, 45, 43, 40, 38, 37, 36)


def grid(notes: list[Note], meter: tuple[int, int], length: float) -> str:
    """The grid for notes spanning `length` beats; pitches outside the kit get their number."""
    bar_beats = meter[0] * 4 / meter[1]
    steps_per_bar = round(bar_beats * STEPS_PER_BEAT)
    bars = max(1, round(length / bar_beats))
    cells: dict[int, list[str]] = {}
    for n in notes:
        step = round(n.start * STEPS_PER_BEAT)
        if not 0 <= step < bars * steps_per_bar:
            continue
        row = cells.setdefault(n.pitch, ["-"] * (bars * steps_per_bar))
        mark = "X" if n.velocity >= 100 else "x" if n.velocity >= 50 else "."
        if "-.xX".index(mark) > "-.xX".index(row[step]):
            row[step] = mark
    order = {p: i for i, p in enumerate(ROW_ORDER)}
    pitches = sorted(cells, key=lambda p: (order.get(p, len(order)), p))
    label = max([len(_name(p)) for p in pitches] + [4])
    steps_per_count = STEPS_PER_BEAT * 4 // meter[1]  # a count is one beat of the meter
    counts = []
    for bar in range(bars):
        counts.append(" ".join(
            str(s // steps_per_count + 1) if s % steps_per_count == 0 else "." for s in range(steps_per_bar)
        ))
    lines = [" " * label + "  " + "  ".join(counts)]
    for p in pitches:
        row = cells[p]
        bars_text = "  ".join(" ".join(row[b * steps_per_bar : (b + 1) * steps_per_bar]) for b in range(bars))
        lines.append(f"{_name(p):>{label}}  {bars_text}")
    return "\n".join(lines)


def _name(pitch: int) -> str:
    return PIECE_NAMES.get(pitch, f"pitch {pitch}")
