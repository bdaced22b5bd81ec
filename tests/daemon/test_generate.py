"""Generator: reproducible, batch-independent, grammar-valid sampling with guidance and style
mixes, on the bundled model and on a tiny random one (fast enough for 1,000 requests)."""

from __future__ import annotations

import contextlib
import dataclasses
import random

import numpy as np
import pytest
import torch

from daemon import checkpoint, kit
from daemon.generate import Generator, GrooveRequest, sample_top_p
from daemon.grammar import (
    BAR, HATS, OTHER, PITCH, POSITION, RESTRIKES, TIMESIG as TIMESIG_, VELOCITY, positions_per_bar,
)
from daemon.model import DrumTransformer, ModelConfig
from daemon.vocab import GENRES
from shared.notes import ACROSS_THE_LINE, Note, across_the_line, bar_beats, without_doubled_ones
from tests.daemon.reference import miditok_hits

METERS = [(4, 4), (3, 4), (6, 8), (5, 4), (7, 8), (5, 8), (12, 8)]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def bundled() -> Generator:
    return Generator.load(checkpoint.BUNDLED, "cpu")


class NudgedModel(DrumTransformer):
    """A tiny random model with a fixed logit bias. Random weights alone play ~50 tokens a bar,
    which would make 1,000 requests of up to 16 bars too slow for a unit test; favouring Bar
    and Position tokens brings that to ~8 (sparse bars to dense ones, as temperature varies)."""

    bias: torch.Tensor

    def forward(self, idx, cache=None, prefix_mix=None):
        return super().forward(idx, cache, prefix_mix) + self.bias

    def step(self, idx, cache, vocab=None):
        out = super().step(idx, cache, vocab)
        return out + self.bias[: out.shape[-1]]


@pytest.fixture(scope="module")
def tiny(bundled) -> Generator:
    """The bundled vocabulary and grammar, a 1-layer random model and a short block (64), so
    long grooves slide their context window many times."""
    torch.manual_seed(0)
    model = NudgedModel(ModelConfig(len(bundled.vocab), block_size=64, n_layer=1, n_head=2, n_embd=16, dropout=0.0))
    table = bundled.table
    bias = torch.zeros(table.size)
    bias[torch.from_numpy(table.starts_bar)] = 3.5
    bias[torch.from_numpy(table.first == POSITION)] = 2.0
    model.bias = torch.cat([bias, torch.zeros(len(bundled.vocab) - table.size)])
    return Generator(model, bundled.vocab)


@contextlib.contextmanager
def sampled_rows(g: Generator):
    """Collects every row (take) `g` samples: its request, prefix, window and the tokens behind its notes."""
    seen: list = []
    real = g._patterns

    def patterns(request, takes):
        seen.extend(takes)
        return real(request, takes)

    g._patterns = patterns
    try:
        yield seen
    finally:
        del g._patterns


def random_request(rng: random.Random, **fixed) -> GrooveRequest:
    pick = rng.choice
    style = pick([None, pick(GENRES), {pick(GENRES): rng.uniform(0.1, 1), pick(GENRES): rng.uniform(0, 1)}])
    fields = dict(
        style=style, bars=rng.randint(1, 16), meter=pick(METERS), variations=pick([1] * 6 + [2, 3]),
        seed=rng.randrange(10**6), guidance=pick([1.0, 1.0, 1.5, 3.0]), kind=pick([None, "beat", "fill"]),
        density=pick([None, rng.random()]), complexity=pick([None, rng.random()]), tempo=rng.uniform(20, 400),
        temperature=rng.uniform(0.05, 3.0), top_p=rng.uniform(0.05, 1.0), drummer=pick([None, "drummer3"]),
        strength=pick([None, None, 0.0, 1.0, 4.0]),
    )
    fields.update(fixed)
    return GrooveRequest(**fields)


def assert_valid(g: Generator, request: GrooveRequest, ids: list[int], notes) -> None:
    """Exactly `bars` bars of the meter, every id a music token, the grammar respected piece by
    piece (checked here from the token pieces, not by the grammar module), playable by one
    drummer (no piece but the snare's restruck within 1/24 of a quarter, one hi-hat state at a
    time), notes unique and inside the clip."""
    table, meter = g.table, tuple(request.meter)
    assert all(0 <= i < table.size and table.steps[i] for i in ids)
    pieces = [piece for i in ids for piece in table.steps[i]]
    assert all(kind != OTHER for kind, _ in pieces)
    follows = {BAR: (None, TIMESIG_, VELOCITY), TIMESIG_: (BAR,), POSITION: (TIMESIG_, VELOCITY),
               PITCH: (POSITION, VELOCITY), VELOCITY: (PITCH,)}
    last, bars, position, struck = None, 0, -1, set()
    at: set[tuple[int, int]] = set()  # (pitch, position counted from the first bar)
    for kind, value in pieces:
        assert last in follows[kind], (last, kind)
        if kind == BAR:
            bars, position, struck = bars + 1, -1, set()
        elif kind == TIMESIG_:
            assert value == meter
        elif kind == POSITION:
            assert position < value < positions_per_bar(meter)
            position, struck = value, set()
        elif kind == PITCH:
            assert value not in struck
            struck.add(value)
            at.add((value, (bars - 1) * positions_per_bar(meter) + position))
        last = kind
    assert bars == request.bars and last in (TIMESIG_, VELOCITY)
    near = range(1, 3 if meter[1] == 8 else 2)  # within 1/24 of a quarter: two positions in x/8
    assert not {(pitch, p) for pitch, p in at if pitch not in RESTRIKES and any((pitch, p + k) in at for k in near)}
    hats = [p for pitch, p in at if pitch in HATS]
    assert len(hats) == len(set(hats))
    clip_end = request.bars * bar_beats(meter)
    for n in notes:
        assert 0 <= n.start < clip_end and 0 < n.duration and n.start + n.duration <= clip_end + 1e-9
        assert 1 <= n.velocity <= 127 and 0 <= n.pitch <= 127
    assert len({(n.pitch, n.start) for n in notes}) == len(notes)


def notes_of(patterns) -> list[list[tuple]]:
    return [[(n.pitch, n.start, n.velocity) for n in p.notes] for p in patterns]


# --- reproducibility and batch independence ---------------------------------------------------
def test_same_seed_same_notes(bundled):
    request = GrooveRequest(style="funk", bars=2, seed=7)
    first, again = bundled.generate([request, request])
    assert notes_of(first) == notes_of(again) == notes_of(bundled.generate([request])[0])
    assert notes_of(bundled.generate([GrooveRequest(style="funk", bars=2, seed=8)])[0]) != notes_of(first)


def test_variation_v_is_its_seed_alone(bundled):
    patterns = bundled.generate([GrooveRequest(style="rock", bars=1, seed=40, variations=3)])[0]
    assert [p.seed for p in patterns] == [40, 41, 42]
    for p in patterns:
        alone = bundled.generate([GrooveRequest(style="rock", bars=1, seed=p.seed)])[0][0]
        assert notes_of([p]) == notes_of([alone])


def test_rows_do_not_depend_on_their_batch(bundled):
    """Each request's notes are the same alone as in a batch with others of other lengths,
    meters, guidance and style mixes (rows finish at different steps and leave the batch)."""
    requests = [
        GrooveRequest(style="jazz", bars=1, meter=(3, 4), seed=1),
        GrooveRequest(style={"funk": 0.7, "latin": 0.3}, bars=2, meter=(6, 8), seed=2, guidance=2.0, variations=2),
        GrooveRequest(style="hiphop", bars=3, seed=3, density=0.9, temperature=0.8),
        GrooveRequest(bars=2, meter=(7, 8), seed=4, guidance=1.5, kind="fill"),
    ]
    together = bundled.generate(requests)
    for request, patterns in zip(requests, together):
        assert notes_of(patterns) == notes_of(bundled.generate([request])[0]), request


def test_an_abandoned_request_leaves_the_batch_and_the_others_play_on(bundled):
    """A request nobody waits for any more (asked before every decode step) stops part-way and
    comes back None; its batch mates play the notes they play alone, focus takes included."""
    requests = [
        GrooveRequest(style="funk", bars=4, seed=1, variations=3),
        GrooveRequest(style="jazz", bars=2, seed=2, focus=2),
        GrooveRequest(style="rock", bars=8, seed=3, variations=2, guidance=2.0),
    ]
    asked: list[int] = []

    def abandoned(i: int) -> bool:
        asked.append(i)
        return i == 2 and asked.count(2) > 20  # the long one, after 20 steps

    found = bundled.generate(requests, abandoned)
    assert found[2] is None
    assert asked.count(2) == 21  # asked each step until it said yes, then never again
    for request, patterns in zip(requests[:2], found[:2]):
        assert notes_of(patterns) == notes_of(bundled.generate([request])[0]), request
    assert asked.count(0) > 21 and asked.count(1) > 21  # the others went on to their ends


def test_each_request_is_handed_over_as_its_own_rows_end(bundled):
    """`finished` hears a short request while a long one in its batch still samples (the daemon
    answers it then), once per request, with the patterns `generate` returns; an abandoned
    request is never handed over."""
    requests = [
        GrooveRequest(style="rock", bars=8, seed=1, variations=2),
        GrooveRequest(style="jazz", bars=1, seed=2, focus=2),
        GrooveRequest(style="funk", bars=8, seed=3),
    ]
    steps, heard = [0], []

    def abandoned(i: int) -> bool:
        steps[0] += i == 0  # request 0 samples to the end: one count per decode step
        return i == 2 and steps[0] > 30

    found = bundled.generate(requests, abandoned, lambda i, patterns: heard.append((i, steps[0], patterns)))
    assert [i for i, _, _ in heard] == [1, 0] and found[2] is None
    assert heard[0][1] < heard[1][1] / 3  # 1 bar handed over long before 8 bars end
    assert all(found[i] is patterns for i, _, patterns in heard)
    assert notes_of(found[1]) == notes_of(bundled.generate([requests[1]])[0])


def test_a_request_abandoned_at_once_costs_one_step(bundled):
    asked: list[int] = []
    found = bundled.generate([GrooveRequest(style="funk", bars=16, variations=4, seed=5)],
                             lambda i: asked.append(i) or True)
    assert found == [None] and asked == [0]


def test_long_grooves_slide_their_window_independently_of_the_batch(tiny):
    """With a 64-token block every row restarts its window many times, each at its own length;
    alone or batched, and whatever the other rows do, the notes are the same."""
    rng = random.Random(11)  # hot and unpruned, so bars run long despite the model's bias
    requests = [random_request(rng, bars=rng.randint(10, 16), temperature=2.5, top_p=1.0) for _ in range(6)]
    with sampled_rows(tiny) as seen:
        together = tiny.generate(requests)
    assert max(len(row.state.ids) for row in seen) > 3 * 64  # several windows
    for request, patterns in zip(requests, together):
        assert notes_of(patterns) == notes_of(tiny.generate([request])[0]), request


def test_sampling_runs_on_one_thread_without_onednn_and_restores_torch_settings(bundled, monkeypatch):
    """Generator.threads and Generator.onednn hold while sampling on a CPU; torch's own settings after."""
    during = []
    real = bundled.model.step

    def step(*args, **kwargs):
        during.append((torch.get_num_threads(), torch.backends.mkldnn.enabled))
        return real(*args, **kwargs)

    monkeypatch.setattr(bundled.model, "step", step)
    torch.set_num_threads(2)  # the one_thread fixture restores the suite's setting
    assert torch.backends.mkldnn.enabled
    bundled.generate([GrooveRequest(bars=1, seed=0)])
    assert during and set(during) == {(1, False)}
    assert torch.get_num_threads() == 2 and torch.backends.mkldnn.enabled


def test_a_level_the_genre_never_played_still_gets_one_of_its_drummers(bundled):
    """Pop's data has no density of 3 or 4: asked for one (as a busy clip's continuation asks,
    clip_ops._as_busy), no example matched and the drummer stayed `any`, the rare prefix that
    plays the genre least clearly. The nearest examples lend one; the levels asked for stay."""
    rng = random.Random(0)
    for density, complexity in ((4, 4), (3, 0), (0, 4)):
        asked = dataclasses.replace(bundled.conditions(GrooveRequest(style="pop")), density=density,
                                    complexity=complexity)
        completed = bundled._complete(asked, "pop", rng)
        assert completed.drummer is not None and completed.kind == "beat", (density, complexity)
        assert (completed.density, completed.complexity) == (density, complexity)
    rock = bundled._complete(bundled.conditions(GrooveRequest(style="rock", density=1.0)), "rock", rng)
    assert (rock.density, rock.drummer is not None) == (4, True)


# --- conditioning -----------------------------------------------------------------------------
@pytest.mark.parametrize("strength", [None, 1.0, 2.5])
def test_a_mix_of_one_genre_is_that_genre(bundled, strength):
    """A style mix blends genre embeddings; a mix whose only voiced part is one genre plays
    exactly that genre (at strength 1 its own token, which needs no blend at all)."""
    mix = {"funk": 2.0, "jazz": 0.0}
    assert bundled.voice(mix, strength).blend  # the blend path, not the genre's
    plain, mixed = bundled.generate([GrooveRequest(style="funk", bars=2, seed=5, strength=strength),
                                     GrooveRequest(style=mix, bars=2, seed=5, strength=strength)])
    assert notes_of(plain) == notes_of(mixed)


def test_strength_plays_the_style_more_or_less_typically(bundled):
    """Strength moves the genre slot from `any` (0) through the genre (1) and beyond it (2): the
    grooves it plays grow more typical of the genre by the model's own judgment at strength 1,
    log p(tokens | funk) - log p(tokens | any), averaged over 8 grooves."""
    typicality = []
    for strength in (0.0, 1.0, 2.0):
        with sampled_rows(bundled) as rows:
            bundled.generate([GrooveRequest(style="funk", bars=2, seed=21, variations=8, strength=strength)])
        typicality.append(np.mean([reference_typicality(bundled, row, ("genre",), as_learned=True) for row in rows]))
    assert typicality[0] < 0 < typicality[1] < typicality[2], typicality  # at 0: less funk than no style at all


def test_guidance_and_mixes_change_the_notes(bundled):
    base = dict(bars=2, seed=9)
    variants = [GrooveRequest(style="funk", **base), GrooveRequest(style="funk", guidance=3.0, **base),
                GrooveRequest(style="jazz", **base), GrooveRequest(style={"funk": 0.5, "jazz": 0.5}, **base)]
    found = [notes_of(p) for p in bundled.generate(variants)]
    assert len({repr(f) for f in found}) == 4


def test_focus_keeps_the_most_typical_take_and_reproduces_it_alone(bundled):
    request = GrooveRequest(style="funk", bars=2, seed=5, variations=2, focus=3)
    with sampled_rows(bundled) as rows:
        (patterns,) = bundled.generate([request])
    assert len(rows) == 6 and [p.seed for p in patterns] == [5, 6]
    typical = bundled._typicality(rows)
    for v, pattern in enumerate(patterns):
        takes = [bundled.notes(r.state.ids, request) for r in rows[3 * v : 3 * v + 3]]
        assert len({repr(t) for t in takes}) == 3  # three different takes to choose from
        assert pattern.notes == takes[int(np.argmax(typical[3 * v : 3 * v + 3]))]
        alone = bundled.generate([dataclasses.replace(request, seed=pattern.seed, variations=1)])[0][0]
        assert alone.notes == pattern.notes
    plain = bundled.generate([dataclasses.replace(request, focus=1)])[0]
    assert [p.notes for p in plain] == [bundled.notes(r.state.ids, request) for r in (rows[0], rows[3])]  # take 0


def reference_typicality(g: Generator, row, plain_slots: tuple[str, ...], as_learned: bool = False) -> float:
    """log p(the tokens sampled in the first window, and the end if it came there | own prefix,
    its genre slot the row's blend, or with `as_learned` its own token)
    - the same with `plain_slots` set to `any`, each from one plain forward (no batch, no padding,
    no cache)."""
    from daemon.vocab import SLOTS

    ended = row.judged_to is None
    window = row.state.ids[row.start :] if ended else row.state.ids[row.judged_start : row.judged_to]

    def loglik(prefix: list[int], mix) -> float:
        seq = prefix + window
        with torch.no_grad():
            logits = g.model(torch.tensor([seq if ended else seq[:-1]]), prefix_mix=mix)
        logp = torch.log_softmax(logits[0, :, : g.table.size], -1)
        first = len(prefix) + row.judged_from - (row.start if ended else row.judged_start)
        sampled = sum(float(logp[t - 1, seq[t]]) for t in range(first, len(seq)))
        return sampled + (float(torch.logsumexp(logp[-1][torch.from_numpy(g.table.starts_bar)], 0)) if ended else 0.0)

    mix, blend = None, None if as_learned else row.voice.blend
    if blend:
        weights = torch.zeros(1, len(g.vocab))
        weights[0, list(blend)] = torch.tensor(list(blend.values()))
        mix = (torch.tensor([SLOTS.index("genre")]), weights)
    plain = list(row.prefix)
    for slot in plain_slots:
        plain[SLOTS.index(slot)] = g.vocab.slot_base[slot]
    return loglik(row.prefix, mix) - loglik(plain, None)


def test_typicality_is_the_log_likelihood_ratio_of_the_sampled_tokens(bundled):
    """Against plain one-sequence forwards: rows of other lengths (so the batch is padded), a
    style blend, a continued clip whose given tokens are not scored, a drummer as the style
    (judged too) and a drummer the request names (a control: nothing left to judge)."""
    from daemon import clip_ops

    clip = [Note(36, 0.0, 0.1, 100), Note(38, 1.0, 0.1, 90), Note(42, 0.5, 0.1, 70)]
    given = GrooveRequest(style="rock", bars=2, seed=2, focus=2)
    cases = [(GrooveRequest(style="jazz", bars=1, seed=1, focus=2), ("genre",)),
             (GrooveRequest(style={"funk": 0.5, "latin": 0.5}, seed=3, focus=2), ("genre",)),
             (dataclasses.replace(given, bars=3, primer=clip_ops.primer(bundled, clip, 2, given)), ("genre",)),
             (GrooveRequest(style="drummer3", bars=1, seed=4, focus=2), ("genre", "drummer")),
             (GrooveRequest(style="drummer3", drummer="drummer5", bars=1, seed=4, focus=2), ("genre",))]
    with sampled_rows(bundled) as rows:
        bundled.generate([request for request, _ in cases])
    slots = [plain for _, plain in cases for _take in range(2)]
    expected = [reference_typicality(bundled, row, plain) for row, plain in zip(rows, slots)]
    assert bundled._typicality(rows) == pytest.approx(expected, abs=2e-3)
    assert rows[4].judged_from == len(cases[2][0].primer) > 0 and expected[4] != 0
    assert expected[6] != 0 and expected[8] == pytest.approx(0, abs=1e-3)


def test_typicality_judges_every_take_on_its_first_window(tiny):
    """Grooves that outgrow a 64-token block restart their window many times, each take at its
    own points: each is judged on what it sampled in its first window (as many tokens for every
    take), as a plain forward over that window scores it; guidance twins change nothing."""
    from daemon.vocab import SLOTS

    rng = random.Random(14)  # four requests whose takes all outgrow the block, strengths 0, 4, default and 1
    requests = [dataclasses.replace(random_request(rng, bars=16, temperature=2.0, top_p=1.0), style="funk", focus=2)
                for _ in range(4)]
    assert any(r.guidance != 1.0 for r in requests)
    with sampled_rows(tiny) as rows:
        tiny.generate(requests)
    assert all(row.judged_to is not None and row.judged_to - row.judged_start == tiny.block_size - len(SLOTS) + 1
               for row in rows)  # every take slid, and each is judged on one full window
    assert len({row.start for row in rows}) > 1  # at their own points
    expected = [reference_typicality(tiny, row, ("genre",)) for row in rows]
    assert tiny._typicality(rows) == pytest.approx(expected, abs=2e-3)


def test_a_new_beat_starts_on_the_one_and_fills_and_clips_start_where_they_start(bundled):
    """A beat's first bar has a hit on its downbeat (ON_THE_ONE), in every meter; a fill, a
    continued clip and an open kind keep the model's own start."""
    from daemon import clip_ops
    from daemon.generate import ON_THE_ONE

    beats = [GrooveRequest(style=style, bars=2, seed=seed, meter=meter, variations=4)
             for style, seed, meter in (("funk", 1, (4, 4)), ("jazz", 2, (3, 4)), ("rock", 3, (7, 8)),
                                        ("hiphop", 4, (6, 8)), ("soul", 5, (5, 4)))]
    clip = [Note(36, 0.5, 0.1, 100), Note(38, 1.0, 0.1, 90)]
    given = GrooveRequest(style="rock", bars=2, seed=6)
    others = [GrooveRequest(style="rock", kind="fill", bars=1, seed=7), GrooveRequest(bars=1, seed=8),
              dataclasses.replace(given, bars=3, primer=clip_ops.primer(bundled, clip, 2, given))]
    with sampled_rows(bundled) as rows:
        found = bundled.generate(beats + others)
    assert all(min(n.start for n in p.notes) == 0.0 for patterns in found[: len(beats)] for p in patterns)
    assert [row.state.onsets for row in rows] == [ON_THE_ONE] * 20 + [()] * 3


def test_a_beat_plays_its_loop_point_once(bundled):
    """GMD writes a downbeat played a hair early into the bar before, so the model ended 29-46 %
    of 2-bar beats with the next one's kick or hats: looped, a flam with the beat's own one. A
    hit that close to the end of a piece the one does not play (a crash into it) stays."""
    found = bundled.generate([GrooveRequest(style=style, bars=2, seed=seed, variations=8)
                              for style in ("rock", "hiphop") for seed in (0, 1)])
    for p in (p for patterns in found for p in patterns):
        ones = {n.pitch for n in p.notes if n.start < ACROSS_THE_LINE}
        assert not [n for n in p.notes if n.pitch in ones and n.start > 8 - ACROSS_THE_LINE], p.seed
    drum = kit.drum_of({})  # an open hat before the loop's closed one is the hi-hat struck twice
    for meter in ((2, 2), (3, 2), (7, 8), (12, 8)):  # early by 1/24 and 1/12 of the meter's beat; in x/8, of a quarter
        end, across = 2 * bar_beats(meter), ACROSS_THE_LINE * max(4 / meter[1], 1)
        for patterns in bundled.generate([GrooveRequest(style=style, bars=2, meter=meter, seed=9, variations=16)
                                          for style in ("rock", "funk")]):
            for p in patterns:
                ones = {drum(n.pitch) for n in p.notes if n.start < across}
                assert not [n for n in p.notes if drum(n.pitch) in ones and n.start > end - across], (meter, p.seed)
    looped, phrases = bundled.generate([GrooveRequest(style="rock", bars=2, seed=0, variations=8),
                                        GrooveRequest(style="rock", bars=2, seed=0, variations=8, loops=False)])
    assert all(set(a.notes) <= set(b.notes) for a, b in zip(looped, phrases))  # live mode's phrases keep their ends:
    assert any(a.notes != b.notes for a, b in zip(looped, phrases))  # the player sees what follows them, not the daemon
    take = [Note(36, 0.0, 0.25, 100), Note(42, 0.0, 0.25, 80), Note(42, 7.5, 0.25, 70), Note(36, 7.958333, 0.25, 110),
            Note(49, 7.958333, 0.25, 120), Note(42, 7.916667, 0.25, 60)]
    assert without_doubled_ones(take, 8.0, take) == take[:3] + [take[4]]
    assert without_doubled_ones(take, 8.0, [Note(49, 8.05, 0.25, 90)], start=8.0) == take[:4] + take[5:]


def test_kit_maps_and_merges_pieces(bundled):
    request = GrooveRequest(style="rock", bars=2, seed=12)
    gm = bundled.generate([request])[0][0].notes
    mapped = bundled.generate([GrooveRequest(style="rock", bars=2, seed=12, kit={p: 60 for p in range(128)})])[0][0]
    assert {n.pitch for n in mapped.notes} == {60}
    assert sorted({n.start for n in mapped.notes}) == sorted({n.start for n in gm})  # one note per start


def test_in_gm_the_crashes_edges_play_on_gms_crash_cymbals_not_its_splash_and_china(bundled):
    """The model crashes on the TD-11's crash edges (55, 52), which a GM kit plays as a splash and
    a china: 80 % of generated crashes did. A user's map of GM pitches sends them with the crash."""
    requests = [GrooveRequest(style="rock", bars=4, seed=3, variations=8, kit=k)
                for k in ({}, kit.BUILTIN_MAPS["gm"], kit.load_map({"49": 70, "57": 71}))]
    td11, gm, rack = ([n.pitch for p in patterns for n in p.notes] for patterns in bundled.generate(requests))
    assert {55, 52} & set(td11) and not {55, 52} & set(gm)
    assert gm == [kit.GM_CRASHES.get(p, p) for p in td11]
    assert rack == [{49: 70, 57: 71}.get(p, p) for p in gm]
    assert kit.load_map({"38": 49}) == {38: 49, 52: 57}  # pad 49 plays the snare: crash edges stay off it
    assert kit.load_map({"49": 57}) == {49: 57, 55: 57, 52: 57}  # both crashes on one pad: their edges too


# --- validity -----------------------------------------------------------------------------------
def test_random_requests_on_the_bundled_model_are_valid(bundled):
    rng = random.Random(3)
    requests = [random_request(rng, bars=rng.randint(1, 6), variations=1) for _ in range(16)]
    with sampled_rows(bundled) as seen:
        found = bundled.generate(requests)
    rows = iter(seen)
    for request, patterns in zip(requests, found):
        for p in patterns:
            row = next(rows)
            assert row.request is request
            assert_valid(bundled, request, row.state.ids, p.notes)
    for req, ids in ((row.request, row.state.ids) for row in seen[:3]):  # the notes are MidiTok's own decoding
        want = miditok_hits(bundled.vocab, ids)
        assert bundled.table.hits(ids) == want
        drum, across = kit.drum_of({}), across_the_line(req.meter)  # the hits are in the canonical kit
        end, ones = req.bars * bar_beats(req.meter), {drum(h.pitch) for h in want if h.start < across}
        looped = {(h.pitch, round(h.start, 6), h.velocity) for h in want  # a beat's loop point played once
                  if req.loops and drum(h.pitch) in ones and end - across < h.start < end}
        assert {(n.pitch, n.start, n.velocity) for n in bundled.notes(ids, req)} == \
            {(h.pitch, round(h.start, 6), h.velocity) for h in want} - looped


def test_a_thousand_random_requests_are_all_valid(tiny):
    """Every meter the issue names, 1-16 bars, variations, guidance, style mixes, kinds,
    density and complexity, temperatures 0.05-3 and top-p 0.05-1: 100 % valid."""
    rng = random.Random(2024)
    requests = [random_request(rng) for _ in range(1000)]
    checked, tokens, notes = 0, [], []
    for start in range(0, len(requests), 500):
        batch = requests[start : start + 500]
        with sampled_rows(tiny) as seen:
            found = tiny.generate(batch)
        rows = iter(seen)
        for request, patterns in zip(batch, found):
            assert len(patterns) == request.variations
            for p in patterns:
                ids = next(rows).state.ids
                assert_valid(tiny, request, ids, p.notes)
                checked += 1
                tokens.append(len(ids))
                notes.append(len(p.notes))
    assert checked > 1000
    # not a degenerate sample: most patterns have hits, some are dense, many outgrow the block
    assert sum(n > 0 for n in notes) > 0.9 * checked and max(notes) > 120  # the densest: ~130 notes
    assert sum(t > 64 for t in tokens) > 0.3 * checked


# --- the sampler --------------------------------------------------------------------------------
def reference_top_p(logits, temperature, top_p, u) -> int:
    """Nucleus sampling written plainly: sort, keep the smallest head reaching top_p, invert its CDF."""
    p = np.exp((logits - logits.max()) / temperature)
    p /= p.sum()
    order = sorted(range(len(p)), key=lambda i: -p[i])
    kept, mass = [], 0.0
    for i in order:
        kept.append(i)
        mass += p[i]
        if mass >= top_p:
            break
    target, acc = u * sum(p[i] for i in kept), 0.0
    for i in kept:
        acc += p[i]
        if acc >= target:
            return i
    return kept[-1]


def test_sample_top_p_matches_a_plain_reference():
    rng = np.random.default_rng(0)
    agree = total = 0
    for _ in range(400):
        n = int(rng.integers(1, 60))
        logits = rng.normal(0, rng.uniform(0.5, 5), n)
        t, top_p, u = rng.uniform(0.05, 3), rng.uniform(0.01, 1), rng.random()
        agree += sample_top_p(logits, t, top_p, u) == reference_top_p(logits, t, top_p, u)
        total += 1
    assert agree >= total - 2  # float summation order may flip a draw right at a boundary
    logits = np.array([0.0, 3.0, 1.0])
    assert sample_top_p(logits, 1.0, 1e-6, 0.99) == 1  # the top token always stays
    assert sample_top_p(logits, 0.0, 0.9, 0.5) == 1  # temperature 0: the most likely
    assert [sample_top_p(logits, 1.0, 1.0, u) for u in (0.0, 0.999999)] == [1, 0]


def test_temperature_weighs_whole_choices_and_leaves_the_odds_within_one(bundled):
    """A closed hat alone (0.4) against a snare that comes as four velocities (0.15 each, 0.6 in
    all): cooled, the snare wins by its whole mass and keeps its velocities' odds; plain
    temperature would pick the hat, one id against a quarter of the snare each."""
    logits, choices = np.log([0.4, 0.15, 0.15, 0.15, 0.15]), np.array([7, 3, 3, 3, 3])
    draws = [sample_top_p(logits, 0.25, 1.0, u, choices) for u in np.linspace(0, 1, 2000, endpoint=False)]
    counts = np.bincount(draws, minlength=5) / len(draws)
    expected_hat = 0.4**4 / (0.4**4 + 0.6**4)  # the choices' masses to the power 1/temperature
    assert counts[0] == pytest.approx(expected_hat, abs=0.005)
    assert np.allclose(counts[1:], (1 - expected_hat) / 4, atol=0.005)  # even odds within the snare, as given
    assert [sample_top_p(logits, 0.25, 1.0, u) for u in (0.0, 0.5, 0.9)] == [0, 0, 0]  # plain: the hat
    assert sample_top_p(logits, 1.0, 1.0, 0.5, choices) == sample_top_p(logits, 1.0, 1.0, 0.5)  # 1: as ever
    assert sample_top_p(np.array([0.0, -1.0, -800.0, -800.0]), 2.0, 0.95, 0.99, np.array([0, 1, 2, 2])) == 1  # no NaN
    table = bundled.table
    velocities = [i for i, steps in enumerate(table.steps) if [k for k, _ in steps] == [PITCH, VELOCITY]
                  and steps[0][1] == 38]
    assert len(velocities) > 3 and len(set(table.choices(4)[velocities])) == 1  # a snare hit at any velocity: one choice
    positions = {steps[0][1]: i for i, steps in enumerate(table.steps) if [k for k, _ in steps] == [POSITION]}
    for denominator, same, other in ((4, (12, 14), 15), (8, (24, 29), 30), (2, (6, 7), 8)):  # a 16th: 6, 12, 3 positions
        choice = table.choices(denominator)
        assert choice[positions[same[0]]] == choice[positions[same[1]]] != choice[positions[other]], denominator


def test_every_kind_of_style_has_a_voice(bundled, tmp_path):
    from daemon import styles

    vocab = bundled.vocab
    hiphop, jazz, any_genre = (vocab.slot_id("genre", g) for g in ("hiphop", "jazz", None))
    funk = bundled.voice("Funk", 1.0)
    assert funk.genre == "funk" and funk.blend is None and funk.habits == "funk"  # its own token
    pushed = bundled.voice("Funk")  # genres lean in by default
    assert pushed.genre == "funk" and pushed.blend == {vocab.slot_id("genre", "funk"): 1.5, any_genre: -0.5}
    drummer = bundled.voice("drummer3")
    assert drummer.drummer == "drummer3" and drummer.blend == {any_genre: 1.0}
    assert drummer.habits is None  # the drummer's own choices, not a genre's
    preset = bundled.voice("laid-back-hiphop")
    assert preset.habits == "hiphop" and preset.template is styles.PRESETS["laid-back-hiphop"].template
    assert preset.blend == pytest.approx({hiphop: 1.05, jazz: 0.45, any_genre: -0.5})
    assert bundled.voice("laid-back-hiphop", 0.0).blend == pytest.approx({hiphop: 0.0, jazz: 0.0, any_genre: 1.0})
    assert bundled.voice("laid-back-hiphop", 0.0).habits == "hiphop"  # no style, but still hip-hop's drummers
    assert bundled.conditions(GrooveRequest(style="drummer3")).drummer == "drummer3"
    assert bundled.conditions(GrooveRequest(style="drummer3", drummer="drummer5")).drummer == "drummer5"
    with pytest.raises(KeyError):
        Generator(bundled.model, vocab, style_folder=tmp_path).voice("no-such-style")


@pytest.mark.parametrize("meter", [(4, 4), (3, 4)])  # built for 4/4 alone, a 3/4 preset had no feel
def test_a_preset_lays_its_feel_over_the_notes(bundled, monkeypatch, meter):
    """laid-back-hiphop's notes are the blend's notes with its groove template applied."""
    import dataclasses

    req = GrooveRequest(style="laid-back-hiphop", bars=2, tempo=90.0, meter=meter, seed=8, variations=3)
    voice = bundled.voice(req.style)
    felt = bundled.generate([req])[0]
    monkeypatch.setattr(bundled, "voice", lambda style, strength=None: dataclasses.replace(voice, template=None))
    straight = bundled.generate([req])[0]
    def in_time(notes):  # hits at one instant in either order: a 1e-15 of float noise may swap them
        return sorted(notes, key=lambda n: (round(n.start, 6), n.pitch))

    for a, b in zip(felt, straight):
        got, want = in_time(a.notes), in_time(voice.template.apply(b.notes, meter, 2 * bar_beats(meter)))
        assert [(n.pitch, n.velocity) for n in got] == [(n.pitch, n.velocity) for n in want]
        assert [n.start for n in got] == pytest.approx([n.start for n in want], abs=1e-6)
        assert [n.start for n in a.notes] != pytest.approx([n.start for n in b.notes], abs=1e-3)
    late = [n.start * 4 - round(n.start * 4) for p in felt for n in p.notes if n.pitch == 38]
    assert sum(late) / len(late) > 0.05  # the snare sits behind the beat


def test_a_template_moves_only_sampled_hits_never_the_clip_it_continues(bundled):
    from daemon import clip_ops
    from shared.notes import Note

    clip = [Note(36, 0.0, 0.25, 100), Note(42, 0.25, 0.25, 80), Note(38, 1.0, 0.25, 90), Note(42, 0.75, 0.25, 70)]
    req = GrooveRequest(style="laid-back-hiphop", bars=2, seed=4)
    req = dataclasses.replace(req, primer=clip_ops.primer(bundled, clip, 1, req))
    template = bundled.voice(req.style).template
    played = bundled.notes(list(req.primer), req, template)
    assert [(n.pitch, n.start) for n in played] == [(n.pitch, n.start) for n in sorted(clip, key=lambda n: (n.start, n.pitch))]


@pytest.mark.parametrize("meter", [(5, 4), (7, 8), (12, 8)])
def test_the_shipped_model_plays_a_long_bar_through_to_its_last_count(bundled, meter):
    """Trained with 4/4 windows replayed in other meters (daemon/data.py), the model knows where
    such a bar ends: before, it closed them after four quarter notes' worth (docs/model.md)."""
    bar, count = meter[0] * 4 / meter[1], 4 / meter[1]
    patterns = bundled.generate([GrooveRequest(style="funk", bars=4, meter=meter, variations=8, seed=11)])[0]
    played = {(p, int(n.start // bar)) for p, pattern in enumerate(patterns) for n in pattern.notes
              if n.start % bar >= bar - count}
    assert len(played) >= 0.8 * 4 * len(patterns)  # the previous checkpoint: 0, 0 and 0


def test_focus_where_the_style_adds_nothing_keeps_the_first_take_whatever_shares_the_batch(bundled):
    """No style: every take is as typical as the next, and the scores are float noise that the
    rest of the batch shapes. The first take is kept, alone or batched, as focus 1 would play it."""
    req = GrooveRequest(bars=4, seed=3, focus=4)
    others = [GrooveRequest(style="jazz", bars=16, seed=77, focus=8), GrooveRequest(style="funk", bars=2, seed=78,
                                                                                     focus=5)]
    alone = bundled.generate([req])[0][0].notes
    assert bundled.generate([req, *others])[0][0].notes == alone
    assert bundled.generate([dataclasses.replace(req, focus=1)])[0][0].notes == alone
