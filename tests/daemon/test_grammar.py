"""The grammar automaton: its allowed sets against a piece-by-piece reference, and its own
token-to-hit decoder against MidiTok's."""

from __future__ import annotations

import copy
import csv
import random
from functools import cache

import numpy as np
import pytest
import symusic

from daemon import checkpoint
from daemon.grammar import (
    AFTER_BAR, AFTER_PITCH, AFTER_POSITION, AFTER_TIMESIG, AFTER_VELOCITY, BAR, HATS, MAX_HITS_AT_ONCE,
    MAX_TOKENS_PER_BAR, PITCH, PITCH_BASE, POSITION, RESTRIKES, START, TIMESIG, VELOCITY, BarState, TokenTable,
    anchor_window, positions_per_bar,
)
from daemon.kit import FEET
from daemon.vocab import POSITIONS_PER_BEAT, Vocabulary
from shared.notes import Note
from tests.support import GROOVE_MINI
from tests.daemon.reference import miditok_hits


pytestmark = pytest.mark.usefixtures("one_thread")


@cache
def table() -> TokenTable:
    return TokenTable(Vocabulary.from_dict(checkpoint.load_state(checkpoint.BUNDLED)["vocab"]))


def reference_allows(s: BarState, token: int, t: TokenTable) -> bool:
    """The grammar written out piece by piece, independently of TokenTable's arrays:
    Bar TimeSig_<meter> (Position_p (PitchDrum_k Velocity_v)+)+ per bar, positions rising and
    inside the bar, no piece twice at one position and at most MAX_HITS_AT_ONCE there (two by
    hand: all but the kick and the hi-hat pedal), a Bar
    only as a token's first piece; known tokens (a clip) may be denser than sampled ones, and
    need not be playable: sampled ones strike no piece outside RESTRIKES within `reach`
    positions after itself (across a bar line too, unless the next bar is fresh) and one
    hi-hat state at a time."""
    pieces = t.steps[token]
    if not pieces:
        return False
    state, position = s.state, s.position
    struck = {i for i in range(32) if s.struck >> i & 1}
    if not s.following and s.tokens_in_bar >= MAX_TOKENS_PER_BAR and state == AFTER_VELOCITY and pieces[0][0] != BAR:
        return False
    r, per_bar = (2 if s.meter[1] == 8 else 1), positions_per_bar(s.meter)  # 1/24 of a quarter, a position at least
    origin = max(position, 0)  # `behind` counts back from here (from the bar's first position before any)
    history = {origin - 1 - k: {PITCH_BASE + i for i in range(32) if s.behind[k] >> i & 1} for k in range(2)}
    history[origin] = {PITCH_BASE + i for i in struck} - RESTRIKES if position >= 0 else set()
    offset = 0  # where this bar's positions lie from the state's bar
    for j, (kind, value) in enumerate(pieces):
        if kind == BAR:
            if j > 0 or state not in (START, AFTER_VELOCITY):
                return False
            if s.bars + 1 == s.fresh_bar or position < 0:
                history = {}
            state, position, struck, offset = AFTER_BAR, -1, set(), per_bar
        elif kind == TIMESIG:
            if state != AFTER_BAR or value != s.meter:
                return False
            state = AFTER_TIMESIG
        elif kind == POSITION:
            if state not in (AFTER_TIMESIG, AFTER_VELOCITY) or not position < value < per_bar:
                return False
            state, position, struck = AFTER_POSITION, value, set()
        elif kind == PITCH:
            if state not in (AFTER_POSITION, AFTER_VELOCITY) or value - PITCH_BASE in struck:
                return False
            if not s.following and len(struck) >= MAX_HITS_AT_ONCE:
                return False
            if not s.following and value not in FEET and sum(PITCH_BASE + i not in FEET for i in struck) >= 2:
                return False
            at = offset + max(position, 0)
            if not s.following and value not in RESTRIKES and any(value in history.get(at - k, ()) for k in
                                                                   range(1, r + 1)):
                return False
            if not s.following and value in HATS and HATS & {PITCH_BASE + i for i in struck}:
                return False
            state = AFTER_PITCH
            struck.add(value - PITCH_BASE)
            if value not in RESTRIKES:
                history.setdefault(at, set()).add(value)
        elif kind == VELOCITY:
            if state != AFTER_PITCH:
                return False
            state = AFTER_VELOCITY
        else:
            return False
    return True


def random_walk(t: TokenTable, meter, bars: int, rng: random.Random, bar_bias: float = 0.05):
    """A sequence of uniformly drawn allowed tokens (a Bar with probability `bar_bias` where
    one may come, so bars end), yielding the state before every draw."""
    s = BarState(bars, meter)
    while not s.done:
        yield s
        ids = t.allowed(s)
        bars_ok = ids[t.starts_bar[ids]]
        token = int(rng.choice(bars_ok) if len(bars_ok) and rng.random() < bar_bias else rng.choice(ids))
        s.advance(token, t)


def test_allowed_sets_equal_the_reference_in_every_meter():
    t, rng = table(), random.Random(0)
    checked = 0
    for meter in t.vocab.meters:
        for s in random_walk(t, meter, 2, rng):
            if rng.random() < 0.3:  # a sample of the states, all of each sampled one's ids
                want = [i for i in range(t.size) if reference_allows(s, i, t)]
                assert t.allowed(s).tolist() == want, (meter, s)
                checked += 1
    assert checked > 100


def test_forced_bar_only_where_a_bar_may_come():
    t = table()
    for state, first_kinds in ((AFTER_VELOCITY, {BAR}), (AFTER_TIMESIG, {POSITION}), (AFTER_POSITION, {PITCH}),
                               (AFTER_PITCH, {VELOCITY})):
        s = BarState(4, (4, 4), state=state, position=10, tokens_in_bar=MAX_TOKENS_PER_BAR)
        ids = t.allowed(s)
        assert len(ids) and {t.steps[i][0][0] for i in ids} == first_kinds


def test_no_more_pieces_at_once_than_a_drummer_plays_but_a_clip_may_have_more():
    """A sampler that always adds a piece where it stands moves on after MAX_HITS_AT_ONCE, even
    with an onset due just ahead; known tokens (a clip) may strike 6 at once and 200+ in a bar."""
    t = table()
    s = BarState(1, (7, 8), onsets=((0, 96),))
    while not s.done:
        ids = t.allowed(s)
        here = ids[t.first[ids] == PITCH]  # another piece at this position, whenever allowed
        s.advance(int(here[0] if len(here) else ids[0]), t)
    per_position = {}
    for h in t.hits(s.ids):
        per_position[h.start] = per_position.get(h.start, 0) + 1
    assert max(per_position.values()) == MAX_HITS_AT_ONCE and 96 / 48 in per_position
    chords = [Note(p, i / 8, 0.1, 90) for i in range(32) for p in (36, 38, 42, 46, 49, 51)]
    clip = t.vocab.merge(t.vocab.encode_notes(chords, (4, 4)))
    known = BarState(2, (4, 4))
    known.follow(clip, t)  # one bar of 6-piece chords on every 32nd
    assert known.tokens_in_bar > MAX_TOKENS_PER_BAR and len(t.hits(known.ids)) == len(chords)
    for last in (5, 6):  # a clip ending on that many pieces at once, then a sampler that keeps adding
        chord = [Note(p, 3.75, 0.1, 90) for p in (36, 38, 42, 46, 49, 51)[:last]]
        s = BarState(2, (4, 4))
        s.follow(t.vocab.merge(t.vocab.encode_notes(chord, (4, 4))), t)
        while not s.done:
            ids = t.allowed(s)
            assert len(ids), "nothing allowed after the clip"
            here = ids[t.first[ids] == PITCH]
            s.advance(int(here[0] if len(here) else ids[0]), t)
        assert sum(h.start == 3.75 for h in t.hits(s.ids)) == last  # the clip's chord, and nothing added


def played(t: TokenTable, state: BarState, base_tokens: list[str]) -> BarState:
    for name in base_tokens:
        state.advance(t.vocab.base_vocab[name], t)
    return state


def adding(t: TokenTable, ids, pitch: int) -> list[int]:
    """The ids in `ids` that strike `pitch` first, where the sequence stands."""
    return [int(i) for i in ids if t.steps[i][0] == (PITCH, pitch)]


def opening(t: TokenTable, ids, position: int, pitch: int) -> list[int]:
    """The ids in `ids` that go to `position` and strike `pitch` first there (a Bar first or not)."""
    return [int(i) for i in ids
            if [v for k, v in t.steps[i] if k in (POSITION, PITCH)][:2] == [position, pitch]]


def test_a_sampler_plays_what_one_drummer_can_but_a_clip_may_hold_anything():
    """No kick, hat or cymbal struck again 1/24 beat later, within a bar or across its line; the
    snare may be (drags, ruffs); one hi-hat state at a time; two pieces at once by hand. A clip
    that breaks them is followed."""
    t = table()
    hit = ["PitchDrum_36", "Velocity_99", "PitchDrum_42", "Velocity_99", "PitchDrum_38", "Velocity_99"]
    s = played(t, BarState(2, (4, 4)), ["Bar_None", "TimeSig_4/4", "Position_10", *hit])
    ids = t.allowed(s)
    for pitch in (36, 42, 44, 46):  # kick and closed hat were struck: neither again, nor another hat state
        assert not adding(t, ids, pitch)
    assert not adding(t, ids, 49)  # hat and snare take both hands: no crash with them
    assert adding(t, t.allowed(played(t, BarState(2, (4, 4)), ["Bar_None", "TimeSig_4/4", "Position_10",
                                                              *hit[:2], *hit[4:]])), 49)  # kick and snare: fine
    assert not opening(t, ids, 11, 36) and not opening(t, ids, 11, 42)  # merged tokens too
    next_door = t.allowed(played(t, copy.deepcopy(s), ["Position_11"]))
    assert not adding(t, next_door, 36) and not adding(t, next_door, 42)
    assert adding(t, next_door, 38) and adding(t, next_door, 46)
    assert adding(t, t.allowed(played(t, copy.deepcopy(s), ["Position_12"])), 36)
    end = played(t, BarState(2, (4, 4)), ["Bar_None", "TimeSig_4/4", "Position_95", *hit])
    assert not opening(t, [i for i in t.allowed(end) if t.starts_bar[i]], 0, 36)
    one = t.allowed(played(t, end, ["Bar_None", "TimeSig_4/4", "Position_0"]))  # the next bar's one is next door
    assert not adding(t, one, 36) and adding(t, one, 38)
    early = played(t, BarState(2, (4, 4)), ["Bar_None", "TimeSig_4/4", "Position_94", *hit])
    assert adding(t, t.allowed(played(t, early, ["Bar_None", "TimeSig_4/4", "Position_0"])), 36)  # 2 away
    take = played(t, BarState(2, (4, 4), fresh_bar=2), ["Bar_None", "TimeSig_4/4", "Position_95", *hit])
    assert adding(t, t.allowed(played(t, take, ["Bar_None", "TimeSig_4/4", "Position_0"])), 36)  # not next door
    clip = [Note(36, 0.0, 0.1, 90), Note(36, 1 / 24, 0.1, 90), Note(42, 0.5, 0.1, 90), Note(46, 0.5, 0.1, 90)]
    known = BarState(1, (4, 4))
    known.follow(t.vocab.merge(t.vocab.encode_notes(clip, (4, 4))), t)
    assert sorted((h.pitch, h.start) for h in t.hits(known.ids)) == sorted((n.pitch, n.start) for n in clip)


@pytest.mark.parametrize("meter", [(4, 4), (3, 4), (6, 8), (5, 4), (7, 8), (5, 8), (12, 8), (2, 2)])
def test_walks_are_valid_and_decode_like_miditok(meter):
    t, rng = table(), random.Random(hash(meter) % 1000)
    for bars in (1, 3):
        states = list(random_walk(t, meter, bars, rng, bar_bias=0.2))
        s = states[-1]
        assert s.done and s.bars == bars
        assert sum(t.steps[i][0][0] == BAR for i in s.ids) == bars
        hits = t.hits(s.ids)
        assert hits == miditok_hits(t.vocab, s.ids)
        bar_len = meter[0] * 4 / meter[1]
        assert all(0 <= h.start < bars * bar_len for h in hits)
        assert len({(h.pitch, h.start) for h in hits}) == len(hits)
        at = {(h.pitch, round(h.start * 6 * meter[1])) for h in hits}  # positions, counted across bars
        near = range(1, 3 if meter[1] == 8 else 2)  # within 1/24 of a quarter: two positions in x/8
        assert not [h for h in hits if h.pitch not in RESTRIKES
                    and any((h.pitch, round(h.start * 6 * meter[1]) + k) in at for k in near)]
        hats = [round(h.start * 6 * meter[1]) for h in hits if h.pitch in HATS]
        assert len(hats) == len(set(hats))


ROWS = list(csv.DictReader((GROOVE_MINI / "info.csv").open()))
ONE_PER_METER = list({r["time_signature"]: r for r in ROWS}.values())  # 5/4, 3/4, 4/4, 5/8, 6/8


@pytest.mark.parametrize("row", ONE_PER_METER, ids=lambda r: r["time_signature"])
def test_hits_decode_real_performances_like_miditok(row):
    """Real GMD sequences (bars with no hits, a cut mid-hit at the end) decode the same both ways."""
    t = table()
    ids = t.vocab.merge(t.vocab.encode_score(symusic.Score(str(GROOVE_MINI / row["midi_filename"]))))[:500]
    assert len(t.hits(ids)) > 50
    assert t.hits(ids) == miditok_hits(t.vocab, ids)


def test_follow_advances_through_given_tokens_and_refuses_invalid_ones():
    t, rng = table(), random.Random(5)
    walk = list(random_walk(t, (7, 8), 2, rng, bar_bias=0.2))
    ids = walk[-1].ids
    s = BarState(2, (7, 8))
    s.follow(ids[:-3], t)
    s.follow(ids[-3:], t)
    assert s.ids == ids and s.bars == 2 and not s.done
    with pytest.raises(ValueError, match="opens bar 2 of 1"):
        BarState(1, (7, 8)).follow(ids, t)
    wrong_meter = BarState(2, (4, 4))
    with pytest.raises(ValueError, match="token 1"):
        wrong_meter.follow(ids, t)
    assert not BarState(2, (4, 4)).allows(ids[2], t)  # a Position before any Bar


def test_a_sampled_bar_is_never_empty_but_a_known_one_may_be():
    t, base = table(), table().vocab.base_vocab
    empty_bar = [base["Bar_None"], base["TimeSig_4/4"]]
    sampled = BarState(2, (4, 4))
    for token in empty_bar:
        sampled.advance(token, t)
    assert {t.steps[i][0][0] for i in t.allowed(sampled)} == {POSITION}  # rest is not on offer
    assert not sampled.allows(base["Bar_None"], t)
    known = BarState(3, (4, 4))
    known.follow(empty_bar * 2, t)  # a clip's bar of rest, then its next bar
    assert known.bars == 2 and not known.done
    assert {t.steps[i][0][0] for i in t.allowed(known)} == {POSITION, BAR}  # the clip's last bar may rest too
    known.advance(int(t.allowed(known)[0]), t)
    assert not known.known  # what is sampled from here on follows the sampled rules


@pytest.mark.parametrize("meter", [(4, 4), (6, 8), (7, 8)])
def test_onsets_each_get_a_hit_however_eager_the_sampler_is_to_close_bars(meter):
    t, rng = table(), random.Random(sum(meter))
    per_bar, bar = positions_per_bar(meter), meter[0] * 4 / meter[1]
    per_quarter = per_bar / bar
    for _ in range(4):
        onsets = tuple(tuple(sorted(rng.sample(range(per_bar), rng.randint(1, 6)))) for _ in range(3))
        s = BarState(3, meter, onsets=onsets)
        while not s.done:
            ids = t.allowed(s)
            assert len(ids)
            bars_ok = ids[t.starts_bar[ids]]  # a Bar whenever one is allowed, mostly
            s.advance(int(rng.choice(bars_ok) if len(bars_ok) and rng.random() < 0.8 else rng.choice(ids)), t)
        played = {(int(h.start // bar), round(h.start % bar * per_quarter)) for h in t.hits(s.ids)}
        assert {(k, p) for k, bar_onsets in enumerate(onsets) for p in bar_onsets} <= played
        assert s.bars == 3


@pytest.mark.parametrize("meter", [(4, 4), (7, 8)])
def test_a_kit_of_its_own_is_all_a_sampler_plays_with_onsets_due_and_no_dead_end(meter):
    """A hat and ride line continued keeps to hats and ride (clip_ops.own_pieces), whatever the
    walk, with a hit due on each bar's one; the given tokens (the clip) may hold anything."""
    t, rng = table(), random.Random(7)
    kit = (42, 44, 46, 51, 53, 59)
    for _ in range(6):
        s = BarState(3, meter, onsets=((0,),) * 3, pieces=kit)
        while not s.done:
            ids = t.allowed(s)
            assert len(ids)
            s.advance(int(rng.choice(ids)), t)
        hits = t.hits(s.ids)
        assert hits and {h.pitch for h in hits} <= set(kit)
        bar = meter[0] * 4 / meter[1]
        assert all(any(abs(h.start - k * bar) < 1e-9 for h in hits) for k in range(3))  # each one played
    known = BarState(1, (4, 4), pieces=kit)
    known.follow(t.vocab.merge(t.vocab.encode_notes([Note(36, 0.0, 0.1, 90)], (4, 4))), t)  # a kick given: kept
    assert [h.pitch for h in t.hits(known.ids)] == [36]


def test_every_id_is_summarised():
    t = table()
    assert t.size == len(t.vocab.pieces) < len(t.vocab)
    assert np.all(t.first[t.starts_bar] == BAR)
    assert t.vocab.bar in np.flatnonzero(t.starts_bar)


def random_anchors(rng: random.Random, meter) -> tuple[tuple[int, int], ...]:
    """Anchors a style could bring: on random 16ths, a foot or two and a hand or two each, one
    hi-hat state at most (styles.Anchors keeps to that)."""
    sixteenth = POSITIONS_PER_BEAT * meter[1] // 16
    steps = positions_per_bar(meter) // sixteenth
    anchors = []
    for step in rng.sample(range(steps), rng.randint(1, min(steps, 8))):
        feet = rng.sample([36, 44], rng.randint(0, 1))
        hands = rng.sample([38, 42, 46, 51, 49, 45], rng.randint(0 if feet else 1, 2))
        if len(set(hands) & HATS) + (44 in feet) > 1:
            hands = [h for h in hands if h not in HATS]
        anchors += [(step * sixteenth, pitch) for pitch in feet + hands]
    return tuple(anchors)


@pytest.mark.parametrize("meter", [(4, 4), (3, 4), (6, 8), (7, 8), (5, 4)])
def test_anchors_are_kept_in_every_bar_with_no_dead_end(meter):
    """However the sampler walks (eager to close bars or to move on), each sampled bar strikes
    each anchor's piece on it or a hair before; the walk is one the grammar without anchors
    allows too; and no state is left with nothing allowed."""
    t, rng = table(), random.Random(sum(meter))
    per_bar, bar = positions_per_bar(meter), meter[0] * 4 / meter[1]
    per_quarter, window = per_bar / bar, anchor_window(meter)
    for walk in range(12):
        anchors = random_anchors(rng, meter)
        s, free = BarState(3, meter, anchors=anchors), BarState(3, meter)
        while not s.done:
            ids = t.allowed(s)
            assert len(ids), (meter, anchors, s.ids)
            assert set(ids.tolist()) <= set(t.allowed(free).tolist())
            if walk % 3 == 0:
                token = int(rng.choice(ids))
            else:  # a Bar, else the token reaching furthest, whenever allowed
                bars_ok = ids[t.starts_bar[ids]]
                token = int(rng.choice(bars_ok) if len(bars_ok) else ids[np.argmax(t.max_pos[ids])]
                            if walk % 3 == 1 else rng.choice(ids))
            s.advance(token, t)
            free.advance(token, t)
        hits = {(round(h.start * per_quarter), h.pitch) for h in t.hits(s.ids)}
        for k in range(3):
            for position, pitch in anchors:
                at = k * per_bar + position
                assert any((at - d, pitch) in hits for d in range(window + 1)), (meter, anchors, k, position, pitch)


HIT_36 = ["PitchDrum_36", "Velocity_99"]


def test_an_anchor_struck_a_hair_early_is_kept_and_not_struck_twice():
    t = table()
    s = played(t, BarState(2, (4, 4), anchors=((24, 36),)), ["Bar_None", "TimeSig_4/4", "Position_23", *HIT_36])
    assert s.unmet == {}  # the kick a 24th early keeps the anchor on beat 2
    on_time = played(t, BarState(2, (4, 4), anchors=((24, 36),)), ["Bar_None", "TimeSig_4/4", "Position_6"])
    assert on_time.unmet == {24: 1 << (36 - PITCH_BASE)}
    late = [i for i in t.allowed(on_time) if t.max_pos[i] > 24 or t.starts_bar[i]]
    assert late == []  # nothing passes beat 2 without its kick
    wrap = played(t, BarState(2, (4, 4), anchors=((0, 36),)), ["Bar_None", "TimeSig_4/4", "Position_0", *HIT_36,
                                                               "Position_95", *HIT_36])
    nxt = copy.copy(wrap)
    nxt.advance(t.vocab.bar, t)
    assert nxt.unmet == {}  # the next bar's one, played a 24th early, is kept
    assert wrap.unmet == {}  # and the copy's change is its own


def test_anchors_are_kept_in_sampled_bars_not_in_a_given_one():
    t = table()
    s = BarState(2, (4, 4), anchors=((48, 36), (72, 38)))
    s.follow(t.vocab.merge(t.vocab.encode_notes([Note(42, 0.0, 0.1, 90), Note(42, 1.0, 0.1, 90)], (4, 4))), t)
    assert s.bars == 1 and s.position == 24
    assert any(t.starts_bar[i] for i in t.allowed(s))  # the clip's bar may end without beat 3's kick
    s.advance(t.vocab.bar, t)
    assert s.unmet == {48: 1 << (36 - PITCH_BASE), 72: 1 << (38 - PITCH_BASE)}  # the next one keeps them


def test_anchors_outside_a_bar_or_the_kit_are_refused():
    with pytest.raises(ValueError, match="outside a bar"):
        BarState(1, (3, 4), anchors=((72, 36),))
    with pytest.raises(ValueError, match="not a drum"):
        BarState(1, (4, 4), anchors=((0, 20),))
