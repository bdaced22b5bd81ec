"""Groove templates: measured from grooves, written by hand, laid over a groove's timing."""

from __future__ import annotations

import json

import pytest

from daemon import styles
from daemon.groove_template import Feel, Groove, GrooveTemplate
from shared.notes import Note


def test_groove_template_measures_and_applies_a_swing():
    notes = [Note(42, s / 4 + (0.1 / 4 if s % 2 else 0.0), 0.1, 60 + 40 * (s % 4 == 0)) for s in range(32)]
    groove = Groove("swung", notes, 100.0, (4, 4), 2)
    template = GrooveTemplate.measure([groove])
    assert template.offsets["hats"][:4] == [0.0, 0.1, 0.0, 0.1] and template.velocities["hats"][:2] == [100.0, 60.0]
    assert template.offsets["kick"] == [None] * 16
    straight = [Note(42, 0.25, 0.1, 80), Note(36, 0.0, 0.1, 100)]
    kick, hat = template.apply(straight, (4, 4), 8.0, timing=0.5, velocity=0.5)
    assert kick == Note(36, 0.0, 0.1, 100)  # no kick in the template: left alone
    assert hat.start == pytest.approx(0.25 + 0.05 / 4) and hat.velocity == 70  # halfway to the swing
    assert template.apply(straight, (4, 4), 8.0)[1].velocity == 80  # timing only, by default
    two = [Note(42, 0.25 - 0.02, 0.1, 80), Note(42, 4.25 + 0.02, 0.1, 80)]  # one step, +-0.08 16ths around it
    early, late = template.apply(two, (4, 4), 8.0)
    assert late.start - early.start == pytest.approx(4.04)  # the spread stays ...
    assert (early.start + late.start) / 2 == pytest.approx(2.25 + 0.1 / 4)  # ... around the template's mean
    assert template.apply(straight, (3, 4), 6.0) == straight  # another meter: untouched
    assert GrooveTemplate.from_json(json.loads(json.dumps(template.to_json()))) == template


def test_a_template_moves_only_hits_on_its_own_grid_and_never_the_loops_one():
    """A triplet (-1/3 of a 16th) in a hat cell once dragged the cell's mean: a "pull to the grid"
    template then moved the on-grid hats late, and the downbeat with them."""
    flat = GrooveTemplate.feel()  # every offset 0: pull towards the grid
    notes = [Note(42, 0.0, 0.1, 90), Note(42, 4.0 - 1 / 12, 0.1, 70), Note(42, 4.0, 0.1, 90),  # a triplet before beat 5
             Note(36, 1.03, 0.1, 100), Note(36, 5.03, 0.1, 100)]  # kicks a little late on beat 2: pulled in
    out = {(n.pitch, round(n.start, 4)) for n in flat.apply(notes, (4, 4), 8.0)}
    assert {(42, 0.0), (42, 3.9167), (42, 4.0)} <= out  # untouched: the one, the triplet, the hat on the grid
    assert (36, 1.0) in out and (36, 5.0) in out


def test_a_learned_template_hears_a_swing_but_not_another_grids_hits():
    """A 32nd roll's odd hits sit half a 16th before the next 16th: in its mean they pushed the
    hats 0.25 of a 16th early. A heavy swing's late off-beats (a third of a 16th) still count."""
    roll = [Note(42, k / 8, 0.1, 80) for k in range(64)]  # 32nds, programmed
    swung = [Note(42, k / 4 + (0.085 if k % 2 else 0.0), 0.1, 80) for k in range(32)]  # played, ~67 % swing
    rolled = GrooveTemplate.measure([styles.groove_from_notes("roll", roll, 100.0, (4, 4), 8.0)])
    assert all(abs(x) < 1e-9 for x in rolled.offsets["hats"] if x is not None)
    swing = GrooveTemplate.measure([styles.groove_from_notes("swing", swung, 100.0, (4, 4), 8.0)])
    assert swing.offsets["hats"][1] == pytest.approx(0.34) and swing.offsets["hats"][0] == 0.0


@pytest.mark.parametrize("meter", [(4, 4), (3, 4), (5, 4), (2, 2), (6, 8), (7, 8)])
def test_a_presets_feel_is_played_in_every_meter(meter):
    """Built for 4/4 alone, a preset's template left every other meter's grooves as they were:
    laid-back-hiphop in 3/4 had no swing and no lay-back. In x/8 the 8ths are the beat, so a
    shuffle moves none of them; the 16ths between still swing."""
    bar = meter[0] * 4 / meter[1]
    hats = [Note(42, s / 4, 0.1, 80) for s in range(round(bar * 4))]  # straight 16ths, one bar
    snares = [Note(38, 1.0, 0.1, 100)]
    swung = {round(n.start - s / 4, 4) for s, n in enumerate(Feel(swing16=0.25).apply(hats, meter, bar))}
    assert swung == {0.0, round(0.25 / 4, 4)}  # the off-beat 16ths late, the others where they were
    laid_back = Feel(lay_back=(("snare", 0.15),)).apply(snares, meter, bar)
    assert laid_back[0].start == pytest.approx(1.0 + 0.15 / 4)
    shuffled = [n.start - s / 4 for s, n in enumerate(Feel(swing8=0.67).apply(hats, meter, bar))]
    eighths_moved = any(abs(shifted) > 1e-9 for shifted in shuffled[2::4])
    assert eighths_moved == (meter[1] <= 4)
