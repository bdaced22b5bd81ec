"""The quality measures themselves: they must tell same from different."""

from __future__ import annotations

import numpy as np
import pytest

from daemon import checkpoint
from daemon.evaluate import (DESCRIPTORS, RealGrooves, _by_take, _ratio_interval, c2st, controls, descriptors,
                             fit_classifier, grid, loop_windows, overlap_area, performance, predict, table,
                             windows_of)
from daemon.generate import Generator
from shared.notes import Note


def straight_rock(bars: int, swing: float = 0.0) -> list[Note]:
    notes = []
    for bar in range(bars):
        for eighth in range(8):
            start = bar * 4 + eighth * 0.5 + (swing if eighth % 2 else 0.0)
            notes.append(Note(42, start, 0.25, 80))
        notes += [Note(36, bar * 4 + 0.0, 0.25, 100), Note(36, bar * 4 + 2.0, 0.25, 100),
                  Note(38, bar * 4 + 1.0, 0.25, 110), Note(38, bar * 4 + 3.0, 0.25, 110)]
    return notes


def test_overlap_area_is_one_for_the_same_and_small_for_disjoint():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 1, 500)
    assert overlap_area(a, a) == pytest.approx(1.0, abs=1e-6)
    assert overlap_area(a, rng.normal(0, 1, 500)) > 0.85
    assert overlap_area(a, rng.normal(10, 1, 500)) < 0.05


def test_windows_need_every_bar_played():
    notes = straight_rock(4)
    assert len(windows_of(notes, 16.0)) == 2
    gap = [n for n in notes if not 4 <= n.start < 8]  # bar 2 silent
    assert len(windows_of(gap, 16.0)) == 1


def test_a_downbeat_played_a_hair_early_is_its_own_windows_and_a_loops_end_its_start():
    """Cut at the exact bar line, real windows ended with the next one's downbeat and lacked
    their own: the most telling feature of real against generated grooves, and not the model's."""
    take = [Note(36, 7.98, 0.1, 100), Note(38, 2.0, 0.1, 90), Note(38, 6.0, 0.1, 90), Note(38, 10.0, 0.1, 90),
            Note(38, 14.0, 0.1, 90), Note(36, 15.97, 0.1, 100)]
    first, second = windows_of(take, 16.0)
    assert sorted((round(n.start, 2), n.pitch) for n in first) == [(2.0, 38), (6.0, 38)]
    assert sorted((round(n.start, 2), n.pitch) for n in second) == [(-0.02, 36), (2.0, 38), (6.0, 38)]
    [looped] = loop_windows([[Note(38, 2.0, 0.1, 90), Note(38, 6.0, 0.1, 90), Note(36, 7.98, 0.1, 100)]])
    assert sorted((round(n.start, 2), n.pitch) for n in looped) == [(-0.02, 36), (2.0, 38), (6.0, 38)]
    assert grid(looped)[:, 0].any()  # on the first 16th
    [past] = windows_of([Note(38, 2.0, 0.1, 90), Note(38, 6.0, 0.1, 90), Note(36, 9.0, 0.1, 100)], 8.0, loop=True)
    assert sorted(n.start for n in past) == [2.0, 6.0]  # past the loop's end is not its start


def test_descriptors_see_density_and_swing():
    straight = descriptors(straight_rock(2))
    swung = descriptors(straight_rock(2, swing=1 / 6))  # triplet swing
    names = list(DESCRIPTORS)
    assert straight[names.index("density")] == 12
    assert straight[names.index("swing")] == pytest.approx(0.0)
    assert swung[names.index("swing")] == pytest.approx(1 / 6)
    assert grid(straight_rock(2)).sum() == 24


def test_the_four_drummers_takes_of_an_eval_session_groove_are_one_groove():
    assert performance("drummer1/eval_session/3") == performance("drummer7/eval_session/3") == "eval_session/3"
    assert performance("drummer1/session1/3") != performance("drummer2/session1/3")


def test_c2st_tells_different_sets_apart_and_not_equal_ones():
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, (120, 4)), rng.normal(0, 1, (120, 4))
    assert c2st(a, b) < 0.65
    assert c2st(a, b + 3) > 0.9


def test_windows_can_start_on_any_bar_so_a_copy_of_bars_two_and_three_is_seen():
    """Copying was checked against training windows from bars 1, 3, 5...: bars 2-3 of a take,
    played back verbatim, did not count (funk's real test grooves: 6.8 % copied, 7.2 % counted so)."""
    notes = [Note(36 + b, b * 4.0, 0.1, 90) for b in range(5)]  # one kick a bar, its pitch the bar's number
    assert [[n.pitch for n in w] for w in windows_of(notes, 20.0)] == [[36, 37], [38, 39]]
    assert [[(n.pitch, n.start) for n in w] for w in windows_of(notes, 20.0, first=4.0)] == \
        [[(37, 0.0), (38, 4.0)], [(39, 0.0), (40, 4.0)]]


def test_c2st_keeps_a_takes_windows_in_one_fold():
    """Two sets of takes from one distribution, each take's windows alike: dealt window by window
    the classifier recognises the takes and tells the sets apart; by take it cannot."""
    rng = np.random.default_rng(2)
    centres = rng.normal(0, 1, (24, 4))
    windows = np.repeat(centres, 10, axis=0) + rng.normal(0, 0.05, (240, 4))
    takes = np.repeat(np.arange(24), 10)
    a, b, takes_a, takes_b = windows[:120], windows[120:], takes[:120], takes[120:]
    assert c2st(a, b) > 0.8
    assert c2st(a, b, takes_a=takes_a, takes_b=takes_b) < 0.7
    assert c2st(a, b, takes_a=[0] * 120, takes_b=takes_b) is None  # one take: nothing to hold out


def test_table_shows_style_accuracy_as_a_share_of_real():
    row = dict(real=40, generated=64, takes=5, held_takes=5, oa={d: 0.5 for d in DESCRIPTORS}, c2st=None, c2st_real=(0.7, 0.04),
               copied_generated=0.0, copied_real=0.01)
    result = {"genres": [dict(row, genre="funk", style_real=0.6, style_held_out=0.4, style_generated=0.3,
                              style_interval=(0.41, 0.66)),
                         dict(row, genre="pop", takes=1, held_takes=2, style_real=0.0, style_held_out=0.2,
                              style_generated=0.1, style_interval=None),
                         dict(row, genre="jazz", takes=4, style_real=0.06, style_held_out=0.2, style_generated=0.1,
                              style_interval=(np.inf, np.inf)),
                         dict(row, genre="soul", style_interval=(1.2, np.inf), style_real=0.3, style_held_out=0.3,
                              style_generated=0.4)],
              "validity": 1.0, "patterns": 128}
    lines = table(result).splitlines()
    funk = next(line for line in lines if line.startswith("| funk"))
    pop = next(line for line in lines if line.startswith("| pop"))
    assert "| 60% | 40% | 30% | 0.50 (0.41-0.66) | 0.75 |" in funk and "| 0.50 | – | 0.70 ± 0.04 |" in funk
    assert "| 0% | 20% | 10% | – (1 real groove: too few) | too few grooves |" in pop and "| 1 / 40 / 64 |" in pop
    assert "| 1.67 (unbounded: real rate near 0) |" in next(line for line in lines if line.startswith("| jazz"))
    assert "| 1.33 (1.20-∞) |" in next(line for line in lines if line.startswith("| soul"))


def test_a_feature_no_training_window_has_does_not_decide_a_prediction():
    """Scaled by its std of 0 (+1e-6), a grid cell no training window hit came in at 10^6 for a
    held-out window that hits it, and the random weights decided: a third of pop's C2ST windows."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.normal(-1, 0.3, (60, 3)), rng.normal(1, 0.3, (60, 3))])
    x = np.concatenate([x, np.zeros((120, 1))], axis=1)  # a fourth feature, never seen in training
    net = fit_classifier(x, np.array([0] * 60 + [1] * 60), 2)
    held_out = np.array([[-1.0, -1.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])  # both hit the unseen feature
    assert list(predict(net, held_out)) == [0, 1]


def test_real_style_accuracy_weighs_each_take_alike_and_has_an_interval():
    takes = ["a"] * 50 + ["b"] * 5 + ["c"] * 5  # take a: 50 windows, its genre never recognised
    hits = np.array([0.0] * 50 + [1.0] * 10)
    assert _by_take(hits, takes) == pytest.approx(2 / 3)  # not 10 / 60
    low, high = _ratio_interval(np.full(64, 0.6), hits, takes)
    assert low < 0.9 < high < np.inf  # three takes: the ratio is not known to better than that
    assert _ratio_interval(np.full(64, 0.6), hits[:55], takes[:55]) is None  # two takes: no verdict
    two_silent = np.array([0.0] * 55 + [1.0] * 5)  # takes a and b never recognised: 8 in 27 resamples have no ratio
    low, high = _ratio_interval(np.full(64, 0.6), two_silent, takes)
    assert low < np.inf and high == np.inf  # unbounded above, not the quantile of the rest


def test_density_and_complexity_steer_the_bundled_model():
    """The two 0-1 controls must be heard: at 1 the grooves have clearly more hits per bar, and
    more of them off the 8ths, than at 0 (measured across five genres)."""
    generator = Generator.load(checkpoint.BUNDLED, "cpu")
    result = controls(generator, RealGrooves({}, {}), per_genre=4, values=(0.0, 1.0))
    (density_low, density_high), (complexity_low, complexity_high) = result["density"], result["complexity"]
    assert density_high["mean"] > density_low["mean"] + 5  # hits per bar
    assert complexity_high["mean"] > complexity_low["mean"] + 0.12  # share of hits on off-8th 16ths
    assert density_low["level"] == (None, generator.vocab.density_edges[0])  # reported against the lowest quintile
