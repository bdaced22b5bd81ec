"""The terminal grid: one column per 16th (or triplet, or 32nd, where the groove plays them), counts
over their columns, in any meter a file can hold."""

from __future__ import annotations

import pytest

from daemon.show import columns_per_beat, grid
from shared.notes import Note


@pytest.mark.parametrize("meter,length", [((4, 4), 8.0), ((12, 8), 6.0), ((7, 8), 3.5), ((1, 32), 0.125),
                                          ((4, 64), 0.25)])
def test_every_hit_sits_under_its_count(meter, length):
    notes = [Note(36, 0.0, 0.1, 110), Note(38, length - 0.25, 0.1, 90)] if length >= 0.5 else [Note(36, 0.0, 0.1, 110)]
    lines = grid(notes, meter, length).splitlines()
    kick = next(line for line in lines if line.strip().startswith("kick"))
    assert kick.index("X") == lines[0].index("1")  # the first count, over the first column
    if length >= 0.5:  # the last 16th of the clip is its last column
        snare = next(line for line in lines if line.strip().startswith("snare"))
        assert len(snare) == len(kick) and snare.rstrip().endswith("x")


@pytest.mark.parametrize("meter", [(1, 32), (3, 64), (3, 32), (7, 8)])
def test_a_kick_on_every_other_bar_starts_every_other_bar_whatever_the_meter(meter):
    bar = meter[0] * 4 / meter[1]
    lines = grid([Note(36, k * bar, 0.05, 110) for k in range(0, 12, 2)], meter, 12 * bar).splitlines()
    bars = next(line for line in lines if line.strip().startswith("kick")).split("  ")[-12:]
    assert [b.split()[0] for b in bars] == ["X", "-"] * 6 and all(b.split()[1:] == ["-"] * (len(b.split()) - 1)
                                                                    for b in bars)


def test_a_hit_a_hair_before_the_clip_ends_is_drawn_on_the_loops_one():
    """Its nearest 16th is the next bar's downbeat, which in a loop is this clip's first."""
    lines = grid([Note(38, 4 - 5 / 480, 0.1, 90), Note(36, 1.0, 0.1, 110)], (4, 4), 4.0).splitlines()
    snare = next(line for line in lines if line.strip().startswith("snare"))
    assert snare.split()[1] == "x"
    assert lines[-1].startswith("X loud") and "a hair before the end on the loop's one" in lines[-1]  # it says so


def row(text: str, name: str) -> list[str]:
    return next(line for line in text.splitlines() if line.strip().startswith(name)).split()[len(name.split()):]


def test_triplets_and_swing_are_drawn_on_triplet_columns_and_straight_grooves_on_16ths():
    """On 16ths, 24 16th-triplet hats were drawn as 16 (8 vanished) and a swung ride read as a
    dotted 8th and a 16th. A played groove's flam is no reason for a finer grid."""
    triplets = [Note(42, i / 6, 0.1, 80) for i in range(24)]
    assert columns_per_beat(triplets, (4, 4)) == 6 and row(grid(triplets, (4, 4), 4.0), "closed hat") == ["x"] * 24
    swing = [Note(51, b + o, 0.1, 80) for b in range(4) for o in (0, 2 / 3)]
    assert columns_per_beat(swing, (4, 4)) == 3 and row(grid(swing, (4, 4), 4.0), "ride") == ["x", "-", "x"] * 4
    straight = [Note(42, i / 4 + 0.01 * (-1) ** i, 0.1, 80) for i in range(16)] + [Note(38, 1.0, 0.1, 90),
                                                                                 Note(38, 1.03, 0.1, 40)]
    assert columns_per_beat(straight, (4, 4)) == 4
    assert columns_per_beat(swing, (6, 8)) == 6  # x/8: 3 columns a count (8th triplets would be 1.5)


def test_a_kit_of_ones_own_is_drawn_by_the_drum_each_pad_plays():
    """With a rack's map, pad 38 plays the closed hat: it was drawn as a snare, above the real snare."""
    from daemon import kit

    rack = kit.load_map({"36": 36, "38": 37, "42": 38})
    notes = [Note(38, k / 2, 0.1, 80) for k in range(8)] + [Note(37, 1.0, 0.1, 100), Note(36, 0.0, 0.1, 100)]
    rows = [line.strip().split("  ")[0] for line in grid(notes, (4, 4), 4.0, piece=kit.heard_as(rack)).splitlines()[1:4]]
    assert rows == ["closed hat (38)", "snare (37)", "kick"]  # named and ordered by the drum, the pad kept
    assert "side stick" in grid(notes, (4, 4), 4.0)  # without the map, GM's names
