"""The tokenizer round trip on real GMD files: nothing lost, nothing invented, meters kept."""

from __future__ import annotations

import csv
from collections import defaultdict
from functools import cache

import pytest
import symusic

from daemon import checkpoint
from daemon.vocab import NUM_VELOCITIES, POSITIONS_PER_BEAT, Conditions, Vocabulary, canonical_score
from tests.support import GROOVE_MINI
from tests.daemon.reference import miditok_hits

ROWS = list(csv.DictReader((GROOVE_MINI / "info.csv").open()))


@cache
def bundled_vocab() -> Vocabulary:
    return Vocabulary.from_dict(checkpoint.load_state(checkpoint.BUNDLED)["vocab"])


def hits_by_pitch(items) -> dict[int, list[tuple[float, int]]]:
    out = defaultdict(list)
    for pitch, start, velocity in items:
        out[pitch].append((start, velocity))
    return {p: sorted(v) for p, v in out.items()}


@pytest.mark.parametrize("row", ROWS, ids=[r["midi_filename"].split("/")[-1] for r in ROWS])
def test_round_trip_keeps_every_hit_within_the_grid(row):
    vocab = bundled_vocab()
    score = symusic.Score(str(GROOVE_MINI / row["midi_filename"]))
    tpq = score.ticks_per_quarter
    original = canonical_score(score.copy()).tracks[0].notes
    ids = vocab.merge(vocab.encode_score(score))
    decoded = miditok_hits(vocab, ids)

    want = hits_by_pitch((n.pitch, n.time / tpq, n.velocity) for n in original)
    got = hits_by_pitch((h.pitch, h.start, h.velocity) for h in decoded)
    assert {p: len(v) for p, v in got.items()} == {p: len(v) for p, v in want.items()}  # none lost or invented
    num, den = (int(x) for x in row["time_signature"].split("-"))
    grid = 4 / den / POSITIONS_PER_BEAT  # beats between positions
    velocity_step = 127 / NUM_VELOCITIES
    for pitch in want:
        for (t0, v0), (t1, v1) in zip(want[pitch], got[pitch]):
            assert abs(t0 - t1) <= grid / 2 + 1e-6 + 1 / tpq
            assert abs(v0 - v1) <= velocity_step / 2 + 1


@pytest.mark.parametrize("meter", ["3-4", "6-8", "5-4", "5-8"])
def test_rare_meters_survive(meter):
    vocab = bundled_vocab()
    row = next(r for r in ROWS if r["time_signature"] == meter)
    num, den = (int(x) for x in meter.split("-"))
    ids = vocab.encode_score(symusic.Score(str(GROOVE_MINI / row["midi_filename"])))
    assert vocab.ids[f"TimeSig_{num}/{den}"] in vocab.merge(ids) or any(
        f"TimeSig_{num}/{den}" in vocab.pieces[i] for i in vocab.merge(ids)
    )
    assert (num, den) in vocab.meters


def test_bpe_shortens_sequences_losslessly():
    vocab = bundled_vocab()
    row = next(r for r in ROWS if r["beat_type"] == "beat" and r["time_signature"] == "4-4")
    base = vocab.encode_score(symusic.Score(str(GROOVE_MINI / row["midi_filename"])))
    merged = vocab.merge(base)
    assert len(merged) < 0.8 * len(base)
    pieces = [p for i in merged for p in vocab.pieces[i]]
    assert pieces == [vocab.base_names[i] for i in base]


def test_conditioning_prefix_has_an_any_token_per_slot():
    vocab = bundled_vocab()
    any_prefix = vocab.prefix(Conditions())
    assert [vocab.names[i] for i in any_prefix] == [f"{s}_any" for s in
                                                    ("genre", "drummer", "tempo", "meter", "kind", "density",
                                                     "complexity")]
    full = vocab.prefix(Conditions("funk", "drummer3", 101.0, (6, 8), "fill", 4, 0))
    assert [vocab.names[i] for i in full] == ["genre_funk", "drummer_drummer3", "tempo_5", "meter_6/8",
                                              "kind_fill", "density_4", "complexity_0"]
    with pytest.raises(KeyError):
        vocab.slot_id("genre", "polka")

