"""A groove as a drum grid in the terminal (one row per piece, one column per 16th note; per 8th
or 16th triplet, or 32nd, where the groove plays on those; finer where a bar is not a whole
number of 16ths), or as a piano-roll image.

    bar 1            bar 2
    1 . . . 2 . . .  1 . . . 2 . . .
crash      X - - - - - - -  - - - - - - - -
closed hat x - x - x . x -  x - x - x - x x

`X` accent (velocity ≥ 100), `x` normal, `.` ghost (< 50), `-` rest. Hits are placed on the
nearest column, so micro-timing is not drawn; `drumigen show --png` draws it exactly (matplotlib,
an optional extra: `pip install -e '.[png]'`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from daemon.kit import PIECE_NAMES, TD11_ZONES
from shared.notes import Note, bar_beats

STEPS_PER_BEAT = 4  # quarter-note beats: 16ths
COLUMNS_PER_BEAT = (STEPS_PER_BEAT, 3, 6, 8)  # 16ths; 8th and 16th triplets and 32nds where the groove needs them
MERGED_AT_MOST = 0.05  # of a groove's hits, drawn together in one column before a finer grid is worth its width
MAX_GRID_BARS = 64  # a terminal's worth (Live's clips are shorter; a stray note at bar 50,000 is not)
# Top to bottom as a drummer reads a chart: cymbals, hats, toms, snare, kick.
ROW_ORDER = (49, 57, 55, 52, 51, 53, 59, 46, 42, 44, 50, 48, 47, 45, 43, 40, 38, 37, 36)


def grid(notes: list[Note], meter: tuple[int, int], length: float,
         piece: Callable[[int], int] | None = None) -> str:
    """The grid for notes spanning `length` beats (its first MAX_GRID_BARS bars); pitches
    outside the kit get their number. `piece`: the drum each pitch plays in a kit of one's own
    (kit.heard_as): a rack's pad 38 playing the closed hat is drawn as that, not as a snare."""
    bar = bar_beats(meter)
    # 16ths, or finer where a bar is not a whole number of them (3/32, 1/32): every bar starts a column
    per_beat = math.lcm(STEPS_PER_BEAT, meter[1] // math.gcd(4 * meter[0], meter[1]))
    if per_beat == STEPS_PER_BEAT:
        per_beat = columns_per_beat(notes, meter)
    steps_per_bar = round(bar * per_beat)
    all_bars = max(1, round(length / bar))
    bars = min(all_bars, MAX_GRID_BARS)
    cells: dict[int, list[str]] = {}
    for n in notes:
        step = round(n.start * per_beat)
        if step == all_bars * steps_per_bar and n.start < length:  # a hair before the end: the loop's one
            step = 0
        if not 0 <= step < bars * steps_per_bar:
            continue
        row = cells.setdefault(n.pitch, ["-"] * (bars * steps_per_bar))
        mark = "X" if n.velocity >= 100 else "x" if n.velocity >= 50 else "."
        if "-.xX".index(mark) > "-.xX".index(row[step]):
            row[step] = mark
    rows = _rows(cells, piece)
    label = max([len(name) for _, name in rows] + [4])
    steps_per_count = max(1, per_beat * 4 // meter[1])  # a count is one beat of the meter (or a column)
    header = [str(s // steps_per_count + 1) if s % steps_per_count == 0 else "." for s in range(steps_per_bar)]
    width = max(len(cell) for cell in header)  # 12/8 counts to 12: every column two wide

    def line(cells: list[str]) -> str:
        bar_cells = (cells[b * steps_per_bar : (b + 1) * steps_per_bar] for b in range(bars))
        return "  ".join(" ".join(c.ljust(width) for c in bar) for bar in bar_cells).rstrip()

    lines = [" " * label + "  " + line(header * bars)]
    lines += [f"{name:>{label}}  {line(cells[p])}" for p, name in rows]
    if bars < all_bars:
        lines.append(f"(the first {bars} of {all_bars} bars)")
    lines.append(LEGEND)
    return "\n".join(lines)


LEGEND = ("X loud (velocity 100+)  x medium  . soft (under 50)  - none; each hit on its nearest column, "
          "one a hair before the end on the loop's one")


def columns_per_beat(notes: list[Note], meter: tuple[int, int]) -> int:
    """The grid a groove is drawn on: 16ths, unless one of COLUMNS_PER_BEAT draws apart more than
    a few more of its hits (on 16ths, 24 16th-triplet hats were drawn as 16; a flam or a drag in a
    played groove is no reason for 32nds), or sets them a third nearer their columns, merging
    none more (a swung 8th, on 16ths, read as a dotted 8th and a 16th). Only grids whose columns
    fall on the meter's counts (x/8: no 8th triplets of a quarter)."""
    def merged(per_beat: int) -> int:
        return len(notes) - len({(n.pitch, round(n.start * per_beat)) for n in notes})

    def off(per_beat: int) -> float:  # mean distance from a hit to its column, in columns
        return sum(abs(n.start * per_beat - round(n.start * per_beat)) for n in notes) / max(len(notes), 1)

    sixteenths = STEPS_PER_BEAT
    better = [c for c in COLUMNS_PER_BEAT[1:] if c * 4 % meter[1] == 0 and (
        merged(sixteenths) - merged(c) > MERGED_AT_MOST * len(notes)
        or merged(c) <= merged(sixteenths) and off(c) <= 2 / 3 * off(sixteenths))]
    return min([sixteenths, *better], key=lambda c: (merged(c), off(c)))


HIT_WIDTH = 1 / 16  # beats: a 64th, narrow enough that a flam's two strokes stay apart


def piano_roll(notes: list[Note], meter: tuple[int, int], length: float, path: Path, title: str = "",
               piece: Callable[[int], int] | None = None) -> None:
    """A PNG of the groove (its first MAX_GRID_BARS bars): one row per piece (as in `grid`), each
    hit a bar at its exact start, micro-timing and all, darker the harder it is played; a line at
    each bar (dark) and count."""
    try:
        from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global state
    except ImportError:
        raise RuntimeError("drawing a PNG needs matplotlib: pip install -e '.[png]'") from None
    bar, count = bar_beats(meter), 4 / meter[1]
    length = min(length, MAX_GRID_BARS * bar)
    notes = [n for n in notes if n.start < length]
    rows = _rows({n.pitch for n in notes}, piece)
    fig = Figure(figsize=(min(4 + 0.5 * length, 60), 1.2 + 0.3 * max(len(rows), 1)), dpi=100)
    ax = fig.add_subplot()
    for i, (pitch, _) in enumerate(reversed(rows)):  # the kick at the bottom, as in the grid
        hits = [n for n in notes if n.pitch == pitch]
        ax.broken_barh([(n.start, HIT_WIDTH) for n in hits], (i - 0.4, 0.8),
                       facecolors=[(0.1, 0.2, 0.5, 0.2 + 0.8 * n.velocity / 127) for n in hits])
    for k in range(round(length / count) + 1):
        on_bar = abs(k * count / bar - round(k * count / bar)) < 1e-9
        ax.axvline(k * count, color="0.3" if on_bar else "0.85", linewidth=1.0 if on_bar else 0.5, zorder=0)
    ax.set_xlim(0, length)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), [name for _, name in reversed(rows)])
    ax.set_xlabel(f"beats ({meter[0]}/{meter[1]})")
    ax.set_title(title, fontsize=10, loc="left")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)  # as a .mid's folder is made
    fig.savefig(path, format="png")  # to exactly that path, whatever its suffix


def _rows(pitches, piece: Callable[[int], int] | None) -> list[tuple[int, str]]:
    """(pitch, name) top to bottom as a drummer reads a chart, by the drum each pitch plays
    (`piece`, for a kit of one's own: named by it, the pad kept); pitches outside the kit last."""
    heard = piece or (lambda p: p)
    order = {p: i for i, p in enumerate(ROW_ORDER)}
    return [(p, _name(p) if heard(p) == p else f"{_name(heard(p))} ({p})")
            for p in sorted(pitches, key=lambda p: (order.get(heard(p), len(order)), p))]


def _name(pitch: int) -> str:
    return PIECE_NAMES.get(pitch) or TD11_ZONES.get(pitch) or f"pitch {pitch}"
