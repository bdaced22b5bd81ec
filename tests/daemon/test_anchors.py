"""Anchors: what a style plays in every bar, measured from grooves and placed in any meter."""

from __future__ import annotations

import pytest

from daemon.anchors import ALWAYS, MIN_BARS, Anchors, OnTheBeat
from daemon.groove_template import Groove
from shared.notes import Note


def groove(bars: int, hits, meter=(4, 4), name="g") -> Groove:
    """`hits(bar)` -> [(16th, pitch, offset in 16ths)] for each bar."""
    per_bar = meter[0] * 4 / meter[1]
    notes = [Note(pitch, bar * per_bar + (step + offset) / 4, 0.1, 100)
             for bar in range(bars) for step, pitch, offset in hits(bar)]
    return Groove(name, notes, 120.0, meter, bars)


def test_what_nearly_every_bar_plays_is_anchored_and_the_rest_is_not():
    bars = 40
    always = int(ALWAYS * bars)  # bars with a kick on beat 3: exactly at the share, then one short

    def hits(bar):
        return [(0, 36, 0.1), (4, 38, -0.2), (12, 38, 0.0)] + [(8, 36, 0.0)] * (bar < always) \
            + [(14, 36, 0.0)] * (bar < always - 1)

    anchors = Anchors.measure([groove(bars, hits)], (4, 4))
    assert anchors == Anchors((4, 4), ((0, 36), (4, 38), (8, 36), (12, 38)))  # hits a hair off their 16th count
    assert anchors.positions((4, 4)) == ((0, 36), (24, 38), (48, 36), (72, 38))
    assert anchors.positions((3, 4)) == ()  # one meter's anchors are that meter's


def test_one_drummer_can_play_the_anchors_of_one_16th():
    """Closed and open hat both on every off-beat (a clip with both layered) cannot both be kept:
    the grammar strikes one hi-hat state at a time. The more constant stays."""
    def hits(bar):
        return [(2, 42, 0.0), (0, 36, 0.0)] + [(2, 46, 0.0)] * (bar % 10 != 0) + [(2, 49, 0.0), (2, 38, 0.0)]

    anchors = Anchors.measure([groove(20, hits)], (4, 4))
    assert anchors.hits == ((0, 36), (2, 38), (2, 42))  # three hands: the crash, the last in order, left out
    with pytest.raises(ValueError, match="cannot play at once"):
        Anchors((4, 4), ((2, 42), (2, 46)))


def test_too_few_bars_or_nothing_constant_anchor_nothing():
    assert Anchors.measure([groove(MIN_BARS - 1, lambda bar: [(0, 36, 0.0)])], (4, 4)) is None
    assert Anchors.measure([groove(16, lambda bar: [(bar % 16, 36, 0.0)])], (4, 4)) is None
    in_3_4 = groove(16, lambda bar: [(0, 36, 0.0)], meter=(3, 4))
    assert Anchors.measure([in_3_4], (4, 4)) is None  # grooves of another meter say nothing of this one
    assert Anchors.measure([in_3_4], (3, 4)).positions((3, 4)) == ((0, 36),)


@pytest.mark.parametrize("meter, beats", [
    ((4, 4), [0, 1, 2, 3]), ((3, 4), [0, 1, 2]), ((2, 2), [0, 2]), ((6, 8), [0, 1.5]), ((12, 8), [0, 1.5, 3, 4.5]),
    ((7, 8), [0, 1, 2]), ((5, 8), [0, 1]), ((5, 4), [0, 1, 2, 3, 4]),
])
def test_on_the_beat_is_every_beat_of_the_meter(meter, beats):
    per_quarter = 24 * meter[1] / 4  # grammar positions
    assert OnTheBeat().positions(meter) == tuple((round(b * per_quarter), 36) for b in beats)


@pytest.mark.parametrize("data", [
    {"meter": [4, 4], "hits": [[16, 36]]}, {"meter": [4, 4], "hits": [[0, 99]]}, {"meter": [4, 4], "hits": [[0.5, 36]]},
    {"meter": [4, 0], "hits": []}, {"hits": []}, {"meter": [4, 4], "hits": [[0]]}, [1, 2], None,
])
def test_anchors_from_a_damaged_file_are_refused(data):
    with pytest.raises(ValueError):
        Anchors.from_json(data)


def test_anchors_survive_json():
    anchors = Anchors((7, 8), ((0, 36), (6, 38), (2, 42)))
    assert Anchors.from_json(anchors.to_json()) == anchors
