"""Clip ops below the daemon: how a clip is heard (kit, TD-11 zones) and how drumify reads a rhythm."""

from __future__ import annotations

import dataclasses

import pytest

from daemon import checkpoint, clip_ops, kit
from daemon.generate import Generator, GrooveRequest
from daemon.grammar import HATS
from shared.notes import ACROSS_THE_LINE, Note, across_the_line

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bundled() -> Generator:
    return Generator.load(checkpoint.BUNDLED, "cpu")


def heard(g: Generator, notes: list[Note], kit_map: dict[int, int]) -> list[int]:
    return [h.pitch for h in g.table.hits(list(clip_ops.primer(g, notes, 1, GrooveRequest(kit=kit_map))))]


def test_a_pad_several_pieces_share_is_heard_as_the_one_drummers_play_most(bundled):
    """rack16 folds the TD-11's other crash zones (52, 55, 57) onto the crash pad, and the ride's
    bell and edge onto the ride's: crash and ride they stay. A rack that sends the snare to pad 40
    (the rim's pitch in GM) has a snare there."""
    rack16 = kit.BUILTIN_MAPS["rack16"]
    assert kit.reverse_map(rack16) == {49: 55, 51: 51}  # 55: the crash zone GMD's drummers hit most
    assert heard(bundled, [Note(49, 0.0, 0.25, 100), Note(51, 1.0, 0.25, 100)], rack16) == [55, 51]
    gm = kit.BUILTIN_MAPS["gm"]  # a GM crash is a crash, not the TD-11's soft bow; crash 2 stays crash 2
    assert kit.reverse_map(gm) == {49: 55, 57: 57}
    assert heard(bundled, [Note(49, 0.0, 0.25, 100), Note(57, 1.0, 0.25, 100)], gm) == [55, 57]
    assert heard(bundled, [Note(49, 0.0, 0.25, 100)], kit.BUILTIN_MAPS["gmd"]) == [49]
    assert heard(bundled, [Note(40, 1.0, 0.25, 100)], {36: 36, 38: 40}) == [38]
    pads = {36: 60, 38: 61, 61: 36}  # a user's rack: kick and snare moved, and pad 36 plays what 61 is
    assert kit.reverse_map(pads) == {60: 36, 61: 38, 36: 61}
    assert heard(bundled, [Note(60, 0.0, 0.25, 100), Note(61, 1.0, 0.25, 100)], pads) == [36, 38]


def test_a_td11_zone_and_its_piece_at_one_time_are_one_hit(bundled):
    both = [Note(42, 0.0, 0.25, 80), Note(22, 0.0, 0.25, 100), Note(58, 1.0, 0.25, 90), Note(43, 1.0, 0.25, 90)]
    assert heard(bundled, both, {}) == [42, 43]


def test_hits_half_a_position_apart_are_heard_as_one(bundled):
    """Two hits of a piece a half position (1/48 beat) apart: Python's round() (half to even)
    kept both, MidiTok put both on one position, and the grammar refused the clip (48 of 96
    such pairs in a bar: the daemon failed on the request)."""
    from daemon.grammar import BarState

    for k in range(96):
        notes = [Note(38, (k + 0.5) / 24, 0.1, 100), Note(38, (k + 0.9) / 24, 0.1, 90)]
        ids = clip_ops.primer(bundled, notes, 1, GrooveRequest())
        BarState(2, (4, 4)).follow(list(ids), bundled.table)  # raises on a sequence the grammar refuses
        assert len(bundled.table.hits(list(ids))) == 1, k


def test_a_tap_just_before_the_clip_ends_is_the_loops_one(bundled):
    """Snapped to 16ths, a tap 1/480 of a beat before the end of a one-bar clip lands on the
    next bar's downbeat: in a loop, that is this bar's."""
    req = GrooveRequest(style="funk", seed=1)
    patterns = clip_ops.drumify_clip(bundled, req, [Note(40, 4 - 1 / 480, 0.1, 90)], 4.0)  # its only tap
    starts = {n.start for n in patterns[0].notes}
    assert 0.0 in starts and max(starts) < 4.0
    req = GrooveRequest(style="funk", seed=11, variations=4)
    for length in (6.0, 8.000001):  # a bar and a half; two bars and a hair
        for pattern in clip_ops.drumify_clip(bundled, req, [Note(40, length - 0.05, 0.1, 90)], length):
            assert min(n.start for n in pattern.notes) == 0.0 and max(n.start for n in pattern.notes) < length


@pytest.mark.parametrize("op", ["continue", "variation", "fill", "drumify"])
def test_a_clip_op_nobody_waits_for_stops_part_way(bundled, op):
    notes = [Note(36, float(b), 0.25, 100) for b in range(8)]
    asked: list[bool] = []
    patience = [3]  # steps it is waited for

    def abandoned() -> bool:
        asked.append(True)
        return len(asked) > patience[0]

    req = GrooveRequest(style="funk", bars=2, seed=1, variations=2)
    run = {
        "continue": lambda: clip_ops.continue_clip(bundled, req, notes, 8.0, 2, abandoned),
        "variation": lambda: clip_ops.vary_clip(bundled, req, notes, 8.0, abandoned),
        "fill": lambda: clip_ops.fill_clip(bundled, req, notes, 8.0, None, abandoned),
        "drumify": lambda: clip_ops.drumify_clip(bundled, req, notes, 8.0, abandoned),
    }[op]
    with pytest.raises(clip_ops.Abandoned):
        run()
    assert len(asked) == 4  # it stopped at the first step after it was abandoned
    asked.clear()
    patience[0] = 10**6  # waited for: the same op plays through
    assert len(run()) == 2 and len(asked) > 4


def test_every_fill_of_an_unseeded_request_replays_from_the_seed_it_answers_with(bundled):
    """Each fill bar draws from the one seed (plus 7919 per fill): the seed a pattern carries
    plays all its fills again, not only the first."""
    notes = [Note(36, b * 0.5, 0.25, 100) for b in range(32)]  # 4 bars of 8ths
    req = GrooveRequest(style="funk", bars=4)
    first = clip_ops.fill_clip(bundled, req, notes, 16.0, 2)[0]
    again = clip_ops.fill_clip(bundled, GrooveRequest(style="funk", bars=4, seed=first.seed), notes, 16.0, 2)[0]
    assert again.notes == first.notes and any(n.start >= 12.0 and n not in notes for n in first.notes)


def test_a_fill_is_a_fill_after_a_steady_groove(bundled):
    """With the groove's bars in its context the model played the groove on (toms in 0 of 24
    rock fill bars): each fill bar is played afresh, as a fill."""
    notes = [Note(p, b * 4 + t, 0.1, 90) for b in range(4) for p, ts in ((42, [k / 2 for k in range(8)]), (36, [0, 2]),
                                                                          (38, [1, 3])) for t in ts]
    toms = {41, 43, 45, 47, 48, 50}
    patterns = clip_ops.fill_clip(bundled, GrooveRequest(style="rock", bars=4, seed=50, variations=8), notes, 16.0, None)
    with_toms = sum(any(n.pitch in toms and n.start >= 12 for n in p.notes) for p in patterns)
    kept = sorted((n for n in notes if n.start < 12), key=lambda n: (n.start, n.pitch))
    assert with_toms >= 6 and all([n for n in p.notes if n.start < 12] == kept for p in patterns)


def test_what_a_fill_answers_ends_with_the_clip(bundled):
    """The clip's own notes came back as sent, a crash held 8 beats past the clip's end with them."""
    ringing = steady_rock(4) + [Note(49, 11.5, 8.0, 110)]
    for p in clip_ops.fill_clip(bundled, GrooveRequest(style="rock", seed=3), ringing, 16.0, None):
        assert max(n.start + n.duration for n in p.notes) <= 16.0
        assert any(n.pitch == 49 and n.start == 11.5 and n.duration == 4.5 for n in p.notes)


def test_drumify_hits_a_shuffles_triplets_and_plays_on_the_onsets_not_beside_them(bundled):
    """A bass in 8th triplets was snapped to 16ths (a gallop, 9-19 of 24 onsets hit where the bass
    plays); the model often doubled an onset's hit with the same piece 1/24 beat away, and played
    its kick or snare 1/24 beat before an onset it left to a cymbal (35 % of those near one)."""
    triplets = [Note(40, b + k / 3, 0.3, 90) for b in range(8) for k in range(3)]
    straight = [Note(40, b + k, 0.3, 90) for b in range(8) for k in (0, 0.5, 0.75)]
    for style in ("jazz", "funk", "rock"):
        for clip in (triplets, straight):
            onsets = {round(n.start, 6) for n in clip}
            for pattern in clip_ops.drumify_clip(bundled, GrooveRequest(style=style, seed=9, variations=3), clip, 8.0):
                starts = {round(n.start, 6) for n in pattern.notes}
                assert onsets <= starts
                assert len({(n.pitch, round(n.start, 6)) for n in pattern.notes}) == len(pattern.notes)
                assert not [n for n in pattern.notes  # the loop's first onset is a hair after the clip's end too
                            if any(0 < abs(t - n.start) < clip_ops.FLAM_BEATS - 1e-6 for t in onsets | {8.0})], style
                hats = [round(n.start, 6) for n in pattern.notes if n.pitch in HATS]
                assert len(hats) == len(set(hats)), style  # one hi-hat state at a time


def test_a_hit_moved_onto_an_onset_is_left_out_where_its_drum_plays_there():
    """A kick 1/24 beat early moves onto the onset; an open hat 1/24 beat early, where the closed
    hat plays on the onset, is the hi-hat struck twice, and a ride edge beside the ride's bow the
    ride struck twice (77 bow-and-edge pairs at one time in 96 drumify grooves; GMD has none): left
    out, whatever pads the kit puts them on."""
    early = 1 - 1 / 24
    for pads in ({}, {42: 60, 46: 61, 51: 62, 59: 63}):
        closed, opened, bow, edge = (pads.get(p, p) for p in (42, 46, 51, 59))
        notes = [Note(closed, 1.0, 0.1, 80), Note(opened, early, 0.1, 90), Note(36, early, 0.1, 100),
                 Note(bow, 1.0, 0.1, 70), Note(edge, 1 + 1 / 24, 0.1, 70)]
        out = clip_ops._onto_onsets(notes, {1.0}, 4.0, pads)
        assert sorted((n.pitch, n.start) for n in out) == sorted([(36, 1.0), (closed, 1.0), (bow, 1.0)])


def test_a_hit_moved_onto_an_onset_both_hands_already_strike_is_left_out():
    """Snare and crash on the onset, a tom and a ride 1/24 beat before it and a kick 1/24 after:
    the kick moves on (a foot), the tom and the ride would be a third and fourth hand there.
    Drumify had 3+ hand pieces at 110 of 4,917 instants (2.2 %; GMD: 0.04 % of positions)."""
    notes = [Note(38, 1.0, 0.1, 90), Note(49, 1.0, 0.1, 100), Note(48, 1 - 1 / 24, 0.1, 80),
             Note(51, 1 - 1 / 24, 0.1, 60), Note(36, 1 + 1 / 24, 0.1, 100), Note(42, 2.0, 0.1, 70)]
    out = clip_ops._onto_onsets(notes, {1.0, 2.0}, 4.0, {})
    assert sorted((n.pitch, n.start) for n in out) == [(36, 1.0), (38, 1.0), (42, 2.0), (49, 1.0)]
    only_snare = clip_ops._onto_onsets(notes[:1] + notes[2:], {1.0, 2.0}, 4.0, {})
    assert sorted((n.pitch, n.start) for n in only_snare) == [(36, 1.0), (38, 1.0), (42, 2.0), (48, 1.0)]  # louder first


def test_a_tapped_line_snaps_as_a_whole_to_16ths_or_to_triplets():
    """Snapped one note at a time, a straight line tapped 20 ms loose at 120 BPM put 9 % of its
    16ths on triplets. The clip decides (a loose shuffle still snaps to triplets); a beat played
    tight on the other grid's places (a triplet fill in a straight line) keeps them."""
    import numpy as np

    rng = np.random.default_rng(0)
    loose = lambda times: [Note(40, max(0.0, t + rng.normal(0, 0.04)), 0.1, 90) for t in times]  # noqa: E731
    straight = loose([b + k / 4 for b in range(16) for k in range(4)])
    grids = clip_ops.onset_grids(straight)
    assert all(clip_ops.nearest_point(n.start, grids[int(n.start)]) * 4 % 1 == 0 for n in straight)
    shuffle = loose([b + k for b in range(16) for k in (0, 2 / 3)])
    grids = clip_ops.onset_grids(shuffle)
    snapped = [clip_ops.nearest_point(n.start, grids[int(n.start)]) * 3 for n in shuffle]
    assert all(abs(t - round(t)) < 1e-9 and round(t) % 3 != 1 for t in snapped)  # on the beat or its last triplet
    fill = [Note(40, b + k / 4, 0.1, 90) for b in range(7) for k in range(4)] + \
        [Note(45, 7 + k / 3 + 0.005, 0.1, 90) for k in range(3)]
    grids = clip_ops.onset_grids(fill)
    assert grids[7] == (3,) and grids[0] == (4,)


def test_a_programmed_rhythm_is_drumified_where_it_is(bundled):
    """A shuffle bass with a 16th run on beat 4 is half triplets, half 16ths: the clip's grid came
    out 16ths, and the swung notes were played 1/12 beat after the bass."""
    bass = [Note(33, t, 0.2, 90) for t in (0.0, 2 / 3, 1.0, 5 / 3, 2.0, 8 / 3, 3.0, 3.25, 3.5, 3.75)]
    for p in clip_ops.drumify_clip(bundled, GrooveRequest(style="funk", seed=2, variations=2), bass, 4.0):
        starts = {round(n.start, 6) for n in p.notes}
        assert {round(n.start, 6) for n in bass} <= starts


@pytest.mark.parametrize("late", [0.0, 0.03])  # programmed, or played: its one a hair after the line
def test_a_variation_of_a_clip_that_starts_on_the_one_starts_on_the_one(bundled, late):
    notes = [Note(p, b * 4 + t + late, 0.1, 90) for b in range(2) for p, ts in ((42, [k / 2 for k in range(8)]),
                                                                                 (36, [0, 2.5]), (38, [1, 3])) for t in ts]
    for style in ("rock", "jazz", "disco-funk", "motown-soul"):  # the presets' groove templates leave the one be
        req = GrooveRequest(style=style, bars=2, seed=77, variations=16)
        firsts = [min(n.start for n in p.notes) for p in clip_ops.vary_clip(bundled, req, notes, 8.0)]
        assert all(first == 0.0 if late == 0.0 else first < across_the_line(req.meter) for first in firsts), (style, firsts)


def steady_rock(bars: int) -> list[Note]:
    """Programmed: hats on 8ths, kick on 1 and 3, snare on 2 and 4, all on the 16th grid."""
    return sorted((Note(p, b * 4 + t, 0.1, 90) for b in range(bars)
                   for p, ts in ((42, [k / 2 for k in range(8)]), (36, [0, 2]), (38, [1, 3])) for t in ts),
                  key=lambda n: (n.start, n.pitch))


def played_at(notes: list[Note], level: int) -> list[Note]:
    """The notes at velocities around `level`, as a drummer's never repeat exactly (a clip
    programmed at one velocity a drum keeps it: clip_ops.clip_velocities)."""
    return [dataclasses.replace(n, velocity=level + i % 3 - 1) for i, n in enumerate(notes)]


def test_a_fill_is_as_loud_as_the_groove_it_ends_and_a_little_more(bundled):
    """Played afresh, a fill's loudness had nothing to do with the clip's (a reggae clip at
    velocity 50 got fills at 73-117); GMD's fills are 1.2x as loud as the same drummer's beats."""
    for level in (50, 90):
        clip = [dataclasses.replace(n, velocity=level) for n in steady_rock(4)]
        kept = {(n.pitch, n.start + 4, n.velocity) for n in clip}  # the groove a fill keeps time with
        velocities = set()
        for every in (None, 2):
            for p in clip_ops.fill_clip(bundled, GrooveRequest(style="reggae", seed=5, variations=4), clip, 16.0,
                                        every):
                fills = [n for n in p.notes if n not in clip and (n.pitch, n.start, n.velocity) not in kept]
                mean = sum(n.velocity for n in fills) / len(fills)
                assert abs(mean - min(clip_ops.FILL_LIFT * level, clip_ops.FILL_CEILING)) < 3, (level, every, mean)
                velocities |= {n.velocity for n in fills}
                assert sum(n.velocity == 127 for n in fills) <= 2  # accents stand out, not a wall of 127s
        assert len(velocities) > 10  # each fill keeps its own dynamics


def test_a_variation_is_as_loud_as_its_clip_and_as_busy(bundled, monkeypatch):
    """Each take drew its density and complexity from the genre's priors and played at the
    model's loudness: pressed six times, 5 of 12 clips came back more than 15 velocity steps
    louder or softer and with 0.56-1.66x their hits. A take is played as hard as its clip (its
    loudest half as loud), and the model is asked for the clip's own density and complexity
    unless the request sets them; a clip with nothing in it to measure leaves them open."""
    asked: list[GrooveRequest] = []
    sample = clip_ops._sample
    monkeypatch.setattr(clip_ops, "_sample", lambda g, requests, gone: asked.extend(requests) or sample(g, requests, gone))
    sparse = [n for n in steady_rock(4) if n.pitch != 42]  # kick and snare alone: 4 hits a bar, all on the beat
    for level in (45, 110):
        clip = played_at(sparse, level)
        hard = clip_ops.played_as_hard([n.velocity for n in clip])
        for p in clip_ops.vary_clip(bundled, GrooveRequest(style="funk", seed=3, variations=4), clip, 16.0):
            velocities = [n.velocity for n in p.notes]
            assert abs(clip_ops.played_as_hard(velocities) - hard) < 1, level  # its loudest half, as hard
            assert min(velocities) < level - 10  # and its softer notes softer: the take's own dynamics kept
    assert {(r.density, r.complexity) for r in asked} == {(0.0, 0.0)}  # GMD's sparsest fifth, and on the beat
    asked.clear()
    clip_ops.continue_clip(bundled, GrooveRequest(style="funk", seed=3, density=1.0), sparse, 16.0, 1)
    assert [(r.density, r.complexity) for r in asked] == [(1.0, 0.0)]  # what a request sets, it keeps
    asked.clear()
    busy = ([Note(42, k / 4, 0.1, 80) for k in range(16)] + [Note(36, t, 0.1, 100) for t in (0, 0.75, 2, 2.5)]
            + [Note(38, t, 0.1, 100) for t in (1, 3)])  # 22 hits, 9 of them off the 8ths; then 3 bars of rest
    clip_ops.continue_clip(bundled, GrooveRequest(style="funk", seed=3), busy, 16.0, 1)
    clip_ops.continue_clip(bundled, GrooveRequest(style="funk", seed=3), [], 16.0, 1)
    assert [(r.density, r.complexity) for r in asked] == [(0.75, 1.0), (None, None)]  # bars of rest are not sparse


def test_a_cymbal_line_continued_or_varied_keeps_to_its_own_instruments(bundled):
    """A hat and ride line got kick, snare and toms from continue in 57 and from variation in 61
    of 80 takes; a beat may still bring in what it lacks (a crash on the next phrase)."""
    line = [Note(42, k / 2, 0.1, 80) for k in range(16)] + [Note(51, k + 0.5, 0.1, 70) for k in range(8)]
    req = GrooveRequest(style="funk", seed=9, variations=4)
    takes = clip_ops.continue_clip(bundled, req, line, 8.0, 2) + clip_ops.vary_clip(bundled, req, line, 8.0)
    assert all(p.notes and {n.pitch for n in p.notes} <= {42, 44, 46, 51, 53, 59} for p in takes)
    assert clip_ops.own_pieces(line, kit.BUILTIN_MAPS["gm"]) == (42, 44, 46, 51, 53, 59)
    assert clip_ops.own_pieces(steady_rock(1), kit.BUILTIN_MAPS["gm"]) == ()  # a beat: free


def test_live_modes_phrase_chain_is_not_held_to_a_phrases_instruments_but_to_its_loudness(bundled, monkeypatch):
    """`drumigen play --live` continues each phrase from the one before (loop false): one jazz
    phrase of hats and ride held every phrase after it to hats and ride. Its loudness it should
    keep: left to the model, chains of ten phrases drifted a median 11-22 velocity steps (a change
    of style is a `generate` there, at the new style's own loudness)."""
    asked: list[GrooveRequest] = []
    sample = clip_ops._sample
    monkeypatch.setattr(clip_ops, "_sample", lambda g, requests, gone: asked.extend(requests) or sample(g, requests, gone))
    line = [Note(42, k / 2, 0.1, 40) for k in range(8)] + [Note(51, k + 0.5, 0.1, 40) for k in range(4)]
    req = GrooveRequest(style="rock", seed=9, variations=4, loops=False)
    phrases = clip_ops.continue_clip(bundled, req, line, 4.0, 1)
    assert [r.pieces for r in asked] == [()]
    assert any(n.pitch in (36, 38) for p in phrases for n in p.notes)  # rock's backbeat comes in
    assert all(abs(clip_ops.played_as_hard([n.velocity for n in p.notes]) - 40) < 1 for p in phrases)


def test_a_continuation_is_played_as_hard_as_its_clip(bundled):
    """The model hears the clip's velocities and still came in 10-34 steps louder or softer in
    34 of 160 continuations of GMD clips (a Purdie shuffle at 72-81 went on at 115)."""
    for level in (45, 110):
        clip = played_at(steady_rock(2), level)
        hard = clip_ops.played_as_hard([n.velocity for n in clip])
        for p in clip_ops.continue_clip(bundled, GrooveRequest(style="funk", seed=3, variations=4), clip, 8.0, 2):
            velocities = [n.velocity for n in p.notes]
            assert abs(clip_ops.played_as_hard(velocities) - hard) < 1, level
            assert len(set(velocities)) > 3  # its own dynamics kept


def test_a_clip_programmed_at_one_velocity_a_drum_is_continued_and_varied_at_them(bundled):
    """A rock clip all at 100 was continued with kicks at 60-114 and hats at 48-123: the new bars
    sounded played, the clip programmed. Its drums' new hits come at their velocities; a hit
    under half of it stays a ghost note; a drum the clip does not play keeps its own."""
    clip = [dataclasses.replace(n, velocity={36: 110, 38: 100, 42: 80}[n.pitch]) for n in steady_rock(2)]
    assert clip_ops.clip_velocities(clip, 8.0, kit.BUILTIN_MAPS["gm"]) == {36: 110, 38: 100, 42: 80}
    req = GrooveRequest(style="rock", seed=5, variations=8)
    takes = clip_ops.continue_clip(bundled, req, clip, 8.0, 2) + clip_ops.vary_clip(bundled, req, clip, 8.0)
    new = [n for p in takes for n in p.notes]
    own = {36: 110, 38: 100, 42: 80}
    assert sum(n.pitch in own for n in new) > 300
    assert all(n.velocity == own[n.pitch] or 2 * n.velocity < own[n.pitch] for n in new if n.pitch in own)
    assert clip_ops.clip_velocities(played_at(clip, 100), 8.0, kit.BUILTIN_MAPS["gm"]) == {}  # played: its own
    assert clip_ops.clip_velocities(clip[:3], 8.0, kit.BUILTIN_MAPS["gm"]) == {}  # a hit a drum says nothing
    live = clip_ops.continue_clip(bundled, dataclasses.replace(req, loops=False), clip, 8.0, 2)  # live mode's chain
    assert len({n.velocity for p in live for n in p.notes if n.pitch in own}) > 10


def test_a_clip_on_percussion_gmds_kit_lacks_is_heard_as_its_drums_and_answered_on_its_own_pitches(bundled):
    """A kick on 35 and claps on 2 and 4 (39): the model, which never met either in GMD, hears
    a kick and a snare, and new hits of those parts come on the clip's own pitches, not GM's
    kick and snare. Shakers (70) are heard as hats beside a beat, not in a melody's range alone."""
    clip = [dataclasses.replace(n, pitch={36: 35, 38: 39, 42: 70}[n.pitch]) for n in steady_rock(2)]
    gm = kit.BUILTIN_MAPS["gm"]
    assert heard(bundled, clip, gm) == heard(bundled, steady_rock(2), gm)  # heard as the GM clip is
    req = GrooveRequest(style="rock", seed=5, variations=4)
    takes = (clip_ops.continue_clip(bundled, req, clip, 8.0, 2) + clip_ops.vary_clip(bundled, req, clip, 8.0)
             + clip_ops.fill_clip(bundled, req, clip, 8.0, None))
    new = [n.pitch for p in takes for n in p.notes]
    assert new.count(35) > 40 and new.count(39) > 40 and new.count(70) > 40
    assert not {36, 38, 42} & set(new)
    both = steady_rock(2) + [dataclasses.replace(n, pitch=39) for n in steady_rock(2) if n.pitch == 38]  # layered
    assert {n.pitch for p in clip_ops.continue_clip(bundled, req, both, 8.0, 2) for n in p.notes} >= {36, 38}
    melody = [Note(p, i / 2, 0.4, 90) for i, p in enumerate([67, 69, 70, 72, 74, 76, 77, 79])]
    assert clip_ops.unheard(melody, gm) == melody  # none of it is heard as a drum: refused, not continued
    assert len(clip_ops.unheard([Note(36, 0.0, 0.2, 90), *melody], gm)) == 8  # nor beside one low note


@pytest.mark.parametrize("pitches, moved", [
    ((36, 38, 42), {}),
    ((35, 39, 70), {36: 35, 38: 39, 42: 70}),
    ((36, 38, 39), {}),  # a clap layered on the snare: new snares on the snare
    ((36, 37, 39), {}),  # the snare's family played on the kit's own side stick
    ((43, 45, 48, 50, 63), {}),  # toms and a conga: new toms on the toms
    ((44, 46, 54), {}),  # the hi-hat pedalled and open beside a tambourine
    ((49, 52, 57), {}),  # a china and crash 2 are the kit's own cymbals
    ((55,), {}),  # a splash
])
def test_new_notes_go_to_the_clips_own_pitch_only_where_it_stands_in_for_a_piece(pitches, moved):
    clip = [Note(p, i / 4, 0.1, 90) for i, p in enumerate(pitches * 2)]
    ours = clip_ops.in_clip_pitches(clip, kit.BUILTIN_MAPS["gm"])
    assert {p: ours(Note(p, 0.0, 0.1, 90)).pitch for p in range(35, 60) if ours(Note(p, 0.0, 0.1, 90)).pitch != p} == moved


def test_a_clap_layered_on_a_programmed_snare_keeps_the_clip_programmed():
    clip = steady_rock(2) + [Note(39, n.start, 0.1, 110) for n in steady_rock(2) if n.pitch == 38]
    clip = [dataclasses.replace(n, velocity=90) if n.pitch != 39 else n for n in clip]
    assert clip_ops.clip_velocities(clip, 8.0, kit.BUILTIN_MAPS["gm"]) == {36: 90, 38: 90, 42: 90, 39: 110}


def test_a_clip_of_fills_alone_is_as_loud_as_it_was_and_stays_so(bundled):
    """A fill in every bar kept the model's loudness (49 to 114 from bar to bar, a bar all at
    127), and where the clip's one was played early at its end, that one hit (velocity 12) set
    every fill at 14. Now the fills are as loud as the clip was, pressed again as well."""
    clip = [dataclasses.replace(n, velocity=60) for n in steady_rock(2)] + [Note(38, 7.95, 0.1, 12)]
    req = GrooveRequest(style="rock", seed=1, variations=3)
    for p in clip_ops.fill_clip(bundled, req, clip, 8.0, 1):
        mean = sum(n.velocity for n in p.notes) / len(p.notes)
        assert abs(mean - 60) < 3, mean
        again = clip_ops.fill_clip(bundled, dataclasses.replace(req, variations=1), p.notes, 8.0, 1)[0].notes
        assert abs(sum(n.velocity for n in again) / len(again) - mean) < 3  # no creep


def test_a_fill_that_comes_in_late_has_the_groove_before_it(bundled):
    """A third of rock's fills start a beat or more into the bar (14 of 32 here before): the
    groove went silent until them. Now the bar keeps the clip's own notes up to a 16th before
    the fill's first hit, as a drummer keeps time into a fill."""
    notes = steady_rock(4)
    groove_bar = [n for n in notes if n.start >= 12]
    kept_some = 0
    for seed in (100, 200):
        for p in clip_ops.fill_clip(bundled, GrooveRequest(style="rock", seed=seed, variations=16), notes, 16.0, None):
            bar = [n for n in p.notes if n.start >= 12]
            kept = [n for n in bar if n in groove_bar]
            new = [n for n in bar if n not in groove_bar]
            assert new and min(n.start for n in bar) < 13  # something within the first beat: no hole before the fill
            if kept:  # the groove as it was, then the fill, a 16th apart at least
                assert kept == [n for n in groove_bar if n.start <= max(k.start for k in kept)]
                assert max(n.start for n in kept) <= min(n.start for n in new) - clip_ops.FILL_GAP + 1e-9
                kept_some += 1
    assert kept_some >= 8


def test_a_fill_pressed_again_keeps_time_with_the_groove_not_the_last_fill(bundled):
    """Pressing fill again to try another: the groove into the new fill is the bar before's, so
    the result is what that fill gives the clip as it was; the first fill is not stacked under it."""
    for bars in (4, 1):  # a one-bar clip has no groove bar to keep time with: its fill has the bar alone
        notes = steady_rock(bars)
        for seed in range(4):
            fill = lambda clip, s: clip_ops.fill_clip(bundled, GrooveRequest(style="rock", seed=s), clip,  # noqa: E731
                                                      4.0 * bars, None)[0].notes
            assert fill(fill(notes, seed), seed + 50) == fill(notes, seed + 50), (bars, seed)


def test_a_fill_on_a_played_clip_plays_its_one_once(bundled):
    """Bars are a note's nearest 16th's: a downbeat played a hair early belongs to the bar it
    starts. By raw start the fill bar kept its own early one and got the bar before's late one
    too, a flam on the one (2 of 24 humanized clips)."""
    from daemon.humanize import Humanizer

    humanizer = Humanizer.load()
    for seed in range(24):
        played = sorted(humanizer.humanize(steady_rock(4), "rock", 120, (4, 4), 16.0, seed=seed),
                        key=lambda n: (n.start, n.pitch))
        out = clip_ops.fill_clip(bundled, GrooveRequest(style="rock", seed=seed), played, 16.0, None)[0].notes
        at_the_one = [n.pitch for n in out if abs(n.start - 12) < 0.15]
        assert len(at_the_one) == len(set(at_the_one)), (seed, sorted(at_the_one))


def test_new_notes_lead_into_the_next_one_without_doubling_it(bundled):
    """The model ends its bars with the next bar's kick or hats played early (GMD writes them so).
    A variation loops on itself, a continuation and a last-bar fill lead into the clip's one, a
    fill every 2 bars into the next bar's: on a played clip 12-96 % of them doubled that one,
    a flam on it. A played one may itself come a hair early: bar 3's at 7.98, or the loop's at
    the clip's very end."""
    from daemon.humanize import Humanizer

    played = sorted(Humanizer.load().humanize(steady_rock(4), "rock", 120, (4, 4), 16.0, seed=1),
                    key=lambda n: (n.start, n.pitch))

    def doubled(new: list[Note], end: float, following: list[Note], start: float) -> list[Note]:
        ones = {n.pitch for n in following if abs(n.start - start) < ACROSS_THE_LINE or  # the loop's, early:
                start == 0 and end - ACROSS_THE_LINE < n.start < end and n not in new}   # the clip's own at its end
        return [n for n in new if n.pitch in ones and end - ACROSS_THE_LINE < n.start < end]

    for style in ("rock", "hiphop"):
        req = GrooveRequest(style=style, seed=5, variations=8)
        for p in clip_ops.vary_clip(bundled, req, played, 16.0):
            assert not doubled(p.notes, 16.0, p.notes, 0.0)
        for p in clip_ops.continue_clip(bundled, req, played, 16.0, 2):
            assert not doubled(p.notes, 24.0, played, 0.0)
        early = [dataclasses.replace(n, start=7.98) if abs(n.start - 8) < 0.1 else  # bar 3's one, played early
                 dataclasses.replace(n, start=15.97) if n.start < 0.1 else n for n in played]  # and the loop's
        for every in (2, None):
            for p in clip_ops.fill_clip(bundled, req, early, 16.0, every):
                new = [n for n in p.notes if n not in early]
                kept = [n for n in p.notes if n in early]
                assert not doubled([n for n in new if n.start < 8], 8.0, kept, 8.0)
                assert not doubled([n for n in new if n.start >= 8], 16.0, kept, 0.0)


def test_a_clip_that_plays_the_next_one_early_is_continued_without_a_second_one(bundled):
    """The clip's last hit a hair before its end (GMD's drummers play the next one early) was
    rounded into the next bar, and the model's answer gave it back as a new note at the seam
    beside the clip's own: a flam where 14 of 48 continuations of GMD clips began."""
    clip = [n for n in steady_rock(4) if n.start > 0] + [Note(36, 15.99, 0.1, 107), Note(42, 15.985, 0.1, 90)]
    for style in ("rock", "hiphop"):
        for p in clip_ops.continue_clip(bundled, GrooveRequest(style=style, seed=3, variations=6), clip, 16.0, 2):
            on_the_one = {n.pitch for n in p.notes if n.start == 16.0}  # where the clip's early one came back
            assert not on_the_one & {36, 42}, (style, on_the_one)
            assert len(p.notes) > 20


@pytest.mark.parametrize("keep_the_one, early", [(False, 0.01), (True, 0.01), (True, 1 / 24)])
def test_a_variation_of_a_clip_that_plays_its_one_early_has_its_one(bundled, keep_the_one, early):
    """A clip ending with its kick and hat a hair early: the take is a loop of its own, so the
    clip's end is not next to the take's first beat (it was taken for one, and the take's one
    left empty in 24 of 24 takes), and a one played early counts as a one to keep. Within the
    last half position it is the take's one; a position early, the model hears it in the clip
    and plays its own one about half the time (12 of 24 before restrikes were ruled out)."""
    clip = [n for n in steady_rock(2) if keep_the_one or n.start > 0] + [Note(36, 8 - early, 0.1, 100),
                                                                        Note(42, 8 - early, 0.1, 90)]
    kicked = takes = 0
    for style in ("rock", "funk", "hiphop"):
        for p in clip_ops.vary_clip(bundled, GrooveRequest(style=style, seed=4, variations=8), clip, 8.0):
            takes += 1
            assert any(n.start == 0.0 for n in p.notes), style  # a take with a one
            kicked += any(n.pitch == 36 and (n.start < ACROSS_THE_LINE or n.start > 8 - ACROSS_THE_LINE)
                          for n in p.notes)
    assert kicked >= (0.75 if early < 1 / 48 else 0.4) * takes, (kicked, takes)


def test_the_next_one_is_heard_by_piece_not_pitch(bundled, monkeypatch):
    """A clip played on a TD-11 has its one's hi-hat on the edge zone (22): the model's early
    closed hat (42) before it is the same drum."""
    from daemon.generate import Pattern

    clip = [Note(22, 0.0, 0.1, 90), Note(36, 0.0, 0.1, 100), Note(38, 1.0, 0.1, 100)]
    played = [Note(42, 4.0, 0.25, 80), Note(38, 5.0, 0.25, 90), Note(42, 7.958333, 0.04, 80)]
    monkeypatch.setattr(clip_ops, "_played_on", lambda *args: [Pattern(played, 1)])
    (continued,) = clip_ops.continue_clip(bundled, GrooveRequest(style="rock"), clip, 4.0, 1)
    assert [(n.pitch, n.start) for n in continued.notes] == [(n.pitch, n.start) for n in played[:2]]


def test_drumify_plays_every_onset_of_a_programmed_32nd_line(bundled):
    """Snapped to 16ths, a 32nd hat line's onsets merged in pairs: 52-56 % of them were played.
    In 2/2 a 32nd is 1.5 grid positions: it snaps to a 16th, not onto an uneven triplet place."""
    line = [Note(42, k / 8, 0.1, 90) for k in range(64)]
    for pattern in clip_ops.drumify_clip(bundled, GrooveRequest(style="funk", seed=3, variations=2), line, 8.0):
        assert {n.start for n in line} <= {round(n.start, 6) for n in pattern.notes}
    per_quarter = 12  # 2/2's grid positions a quarter note
    cut_time = clip_ops.drumify_onsets(line, 8.0, (2, 2))
    assert cut_time == [{k * per_quarter // 4 for k in range(16)}] * 2  # every 16th, nothing between


def test_drumify_of_a_clip_that_ends_mid_bar_loops_there_without_a_flam(bundled):
    """The model's bars go on past a 6-beat clip's end: its hits a hair before beat 3 of bar 2
    are the loop's one played early, beside the one the clip's tap puts on 0."""
    taps = [Note(40, t, 0.1, 90) for t in (0.0, 1.0, 1.5, 3.0, 4.0, 5.0)]
    for style in ("rock", "funk", "hiphop"):
        for p in clip_ops.drumify_clip(bundled, GrooveRequest(style=style, seed=3, variations=8), taps, 6.0):
            ones = {n.pitch for n in p.notes if n.start < ACROSS_THE_LINE}
            assert not [n for n in p.notes if n.pitch in ones and n.start > 6.0 - ACROSS_THE_LINE], (style, p.seed)


def test_a_clip_that_ends_mid_bar_gets_its_fill_at_its_end(bundled):
    """The fill bar of a 6-beat clip is half a bar: the fill's last half plays there (it used
    to start at the bar line and lose whatever fell past the clip's end, the whole fill at times)."""
    notes = [n for n in steady_rock(2) if n.start < 6]
    groove_bar = [n for n in notes if n.start >= 4]
    for seed in (100, 200):
        for p in clip_ops.fill_clip(bundled, GrooveRequest(style="rock", seed=seed, variations=16), notes, 6.0, None):
            new = [n for n in p.notes if n.start >= 4 and n not in groove_bar]
            assert new and all(4 <= n.start < 6 for n in new)


def test_new_notes_of_a_programmed_clip_come_on_its_grid_and_a_played_clip_keeps_the_feel(bundled):
    """Continuing a quantised clip, about half the model's new hits sat a 48th of a beat or more
    off the grid: the feel changed at the join. A programmed clip's grid is kept (straight: 16ths;
    a shuffle: 8th triplets), also past a clip that ends mid-bar; a played clip's new notes keep
    the model's feel."""
    straight = steady_rock(2)
    shuffle = [Note(42, b + k, 0.1, 90) for b in range(8) for k in (0, 2 / 3)] + [Note(36, 0.0, 0.1, 100)]
    assert clip_ops.clip_grids(straight) == (4,) and clip_ops.clip_grids(shuffle) == (3,)
    assert clip_ops.clip_grids(shuffle + [Note(38, 1.5, 0.1, 90)]) == (4, 3)
    pushed = clip_ops._on_grids([Note(45, 3.74, 0.1, 90), Note(43, 3.96, 0.1, 90), Note(43, 3.8, 0.1, 70)], (4,), 4.0)
    assert [(n.pitch, n.start, n.velocity) for n in pushed] == [(43, 3.75, 90), (45, 3.75, 90)]  # not onto the one
    req = GrooveRequest(style="funk", seed=3, variations=4)
    ops = {"continue": lambda c: clip_ops.continue_clip(bundled, req, c, 8.0, 2),
           "variation": lambda c: clip_ops.vary_clip(bundled, req, c, 8.0),
           "fill": lambda c: clip_ops.fill_clip(bundled, req, c, 8.0, None)}

    def on(grids: tuple[int, ...], t: float) -> bool:
        return any(abs(t * g - round(t * g)) < 1e-5 for g in grids)  # times are kept to a millionth

    for name, op in ops.items():
        for clip, grids in ((straight, (4,)), (shuffle, (3,))):
            for p in op(clip):
                assert all(on(grids, n.start) for n in p.notes), name
                assert len({(n.pitch, n.start) for n in p.notes}) == len(p.notes)  # one hit a piece at a point
    half = [n for n in shuffle if n.start < 4.5]  # a bar and a half: the new bars start off the triplet grid's bar
    for p in clip_ops.continue_clip(bundled, req, half, 4.5, 2):
        assert p.notes and all(on((3,), n.start) and n.start >= 4.5 for n in p.notes)
    for clip, length, grids in ((straight, 3.3, (4,)), (shuffle, 3.5, (3,))):  # a length off the clip's own grid:
        for p in clip_ops.vary_clip(bundled, req, [n for n in clip if n.start < length], length):  # a take from its one
            assert min(n.start for n in p.notes) == 0.0 and all(on(grids, n.start) for n in p.notes)
    played = [Note(n.pitch, n.start + (0.013 if n.start % 1 else 0.0), n.duration, n.velocity) for n in straight]
    assert clip_ops.clip_grids(played) == ()
    new = [n for p in ops["continue"](played) for n in p.notes]
    assert sum(not on((4, 3), n.start) for n in new) > len(new) / 4
