"""The terminal grid: one column per 16th, counts over their columns, in any meter a file can hold."""

from __future__ import annotations

import pytest

from daemon.show import grid
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


def test_bars_shorter_than_a_16th_are_a_column_each():
    bar = 0.125  # 1/32
    lines = grid([Note(36, k * bar, 0.05, 110) for k in (0, 2)], (1, 32), 4 * bar).splitlines()
    kick = next(line for line in lines if line.strip().startswith("kick"))
    assert kick.split()[1:] == ["X", "-", "X", "-"]  # bars 1 and 3
