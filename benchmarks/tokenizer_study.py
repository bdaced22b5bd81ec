#!/usr/bin/env python
"""Tokenizer study for MidiDrumiGen on the Groove MIDI Dataset (GMD).

For each candidate MidiTok tokenizer, every file of one GMD split is encoded to
token ids and decoded back *from the ids only* (the path a generative model
takes), and the round trip is measured:

* onset error: each original note is matched to a decoded note of the same
  pitch, greedily by nearest onset (one-to-one, pairs further apart than
  ``MATCH_TOL_Q`` quarter notes are not matched). Reported in quarter notes
  ("beats") and in ms at the file's tempo (mean and p95 over all matched notes);
* velocity error (mean absolute, matched notes);
* notes lost (original notes left unmatched) and notes invented (decoded notes
  left unmatched), count and % of the original notes;
* tokens per bar (ids per file / bars in the file, bars from the file's time
  signature) and whether the number of bars written in the tokens (Bar tokens)
  equals the file's bar count;
* vocabulary size; whether the time signature survives; whether the decoded
  track is marked as drums (plain ``decode(ids)`` vs ``decode(ids, programs=
  [(0, True)])``); encode+decode wall time per file.

The odd-meter files of ALL splits (3/4, 6/8, 5/4, 5/8) are round-tripped as an
extra check, because the validation split has only one 3/4 and one 6/8 file.

Run (single process, light on CPU)::

    .venv/bin/python benchmarks/tokenizer_study.py \
        --data /work/shared/datasets/groove --split validation

Writes a markdown table to stdout and, with ``--json PATH``, all numbers.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# Keep the HF tokenizers (BPE) trainer and BLAS on one thread: this machine has
# two cores shared with a training job.
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("RAYON_RS_NUM_CPUS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import miditok  # noqa: E402
from symusic import Score  # noqa: E402

warnings.filterwarnings("ignore")

MATCH_TOL_Q = 0.5  # max onset distance (quarter notes) for a note to count as matched
GMD_MICROTIMING_STD_Q = 0.053  # std of GMD offsets from the 16th grid, in quarters
# Decoding "programs" argument that marks the (single) decoded track as drums.
DRUM_PROGRAMS = [(0, True)]

# ---------------------------------------------------------------------------
# Candidate tokenizers
# ---------------------------------------------------------------------------

TIME_SIGNATURE_RANGE = {8: [3, 5, 6, 7, 12], 4: [1, 2, 3, 4, 5, 6, 7, 8]}

# Settings shared by every candidate.
COMMON = dict(
    drums_pitch_range=(22, 60),  # default (27, 88) silently drops GMD's 22 and 26
    use_velocities=True,
    use_time_signatures=True,
    time_signature_range=TIME_SIGNATURE_RANGE,
    use_tempos=False,
    use_programs=False,
    use_pitchdrum_tokens=True,
    # Empty set = no Duration tokens for any track. NOT range(0, 128): see
    # PITFALL_NO_DRUM_DURATION below.
    use_note_duration_programs=[],
)


def remi_config(pos_per_beat: int, **overrides) -> miditok.TokenizerConfig:
    kwargs = dict(COMMON, beat_res={(0, 4): pos_per_beat})
    kwargs.update(overrides)
    return miditok.TokenizerConfig(**kwargs)


PERTOK_PARAMS = dict(
    # 16th grid + 8th-note triplet grid, so shuffles/triplets are on a grid point
    # and MicroTiming only carries the human deviation.
    beat_res={(0, 4): 4, (0, 3): 3},
    use_microtiming=True,
    ticks_per_quarter=480,  # GMD's native resolution: no resampling loss
    # +-0.125 quarter (+-60 ticks) is half the largest gap between grid points
    # (0 -> 120 ticks), so any onset is reachable; 30 bins -> 4-tick steps.
    max_microtiming_shift=0.125,
    num_microtiming_bins=30,
)


def pertok_config(use_position_toks: bool) -> miditok.TokenizerConfig:
    kwargs = dict(COMMON, **PERTOK_PARAMS, use_position_toks=use_position_toks)
    return miditok.TokenizerConfig(**kwargs)


@dataclass
class Candidate:
    key: str
    label: str
    build: callable  # () -> tokenizer
    note: str = ""


def base_candidates() -> list[Candidate]:
    return [
        Candidate(
            "a", "REMI 4/beat", lambda: miditok.REMI(remi_config(4))
        ),
        Candidate(
            "b", "REMI 12/beat", lambda: miditok.REMI(remi_config(12))
        ),
        Candidate(
            "c", "REMI 24/beat", lambda: miditok.REMI(remi_config(24))
        ),
        Candidate(
            "d",
            "PerTok TimeShift+MicroTiming",
            lambda: miditok.PerTok(pertok_config(use_position_toks=False)),
        ),
        Candidate(
            "d2",
            "PerTok Position+MicroTiming",
            lambda: miditok.PerTok(pertok_config(use_position_toks=True)),
            note="PerTok with use_position_toks=True (bar-relative positions)",
        ),
        Candidate(
            "x",
            "pitfall: REMI 4/beat, use_note_duration_programs=range(0,128)",
            lambda: miditok.REMI(
                remi_config(4, use_note_duration_programs=list(range(128)))
            ),
            note=(
                "'durations for everything except drums (-1)': encoding drops drum "
                "durations but decoding a use_programs=False track looks up "
                "program 0, expects Duration tokens and drops every note"
            ),
        ),
    ]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


@dataclass
class GmdFile:
    path: Path
    split: str
    time_signature: str  # "4-4" etc. from info.csv


def load_index(data: Path) -> list[GmdFile]:
    with open(data / "info.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [
        GmdFile(data / r["midi_filename"], r["split"], r["time_signature"])
        for r in rows
    ]


def onsets_quarters(score: Score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(onset in quarter notes, pitch, velocity) of all notes of all tracks."""
    times, pitches, vels = [], [], []
    for track in score.tracks:
        soa = track.notes.numpy()
        times.append(soa["time"] / score.ticks_per_quarter)
        pitches.append(soa["pitch"])
        vels.append(soa["velocity"])
    if not times:
        return np.zeros(0), np.zeros(0, int), np.zeros(0, int)
    return (
        np.concatenate(times).astype(float),
        np.concatenate(pitches).astype(int),
        np.concatenate(vels).astype(int),
    )


def quarters_to_seconds(score: Score):
    """Function mapping quarter-note positions to seconds with the score's tempo map."""
    tpq = score.ticks_per_quarter
    tempos = sorted((t.time / tpq, t.qpm) for t in score.tempos) or [(0.0, 120.0)]
    if tempos[0][0] > 0:
        tempos.insert(0, (0.0, tempos[0][1]))
    starts = np.array([t[0] for t in tempos])
    qpms = np.array([t[1] for t in tempos])
    seg_secs = np.diff(starts) * 60.0 / qpms[:-1]
    cum = np.concatenate([[0.0], np.cumsum(seg_secs)])

    def f(q: np.ndarray) -> np.ndarray:
        i = np.clip(np.searchsorted(starts, q, side="right") - 1, 0, len(starts) - 1)
        return cum[i] + (q - starts[i]) * 60.0 / qpms[i]

    return f


def bar_length_quarters(score: Score) -> float:
    ts = score.time_signatures[0] if len(score.time_signatures) else None
    num, den = (ts.numerator, ts.denominator) if ts else (4, 4)
    return num * 4.0 / den


def greedy_match(t_a, p_a, t_b, p_b, tol):
    """One-to-one matching of notes a->b with the same pitch, nearest onset first.

    Returns (idx_a, idx_b) arrays of matched pairs.
    """
    ia_all, ib_all = [], []
    for pitch in np.union1d(p_a, p_b):
        ia = np.flatnonzero(p_a == pitch)
        ib = np.flatnonzero(p_b == pitch)
        if len(ia) == 0 or len(ib) == 0:
            continue
        ta, tb = t_a[ia], t_b[ib]
        order_b = np.argsort(tb, kind="stable")
        tb_sorted = tb[order_b]
        lo = np.searchsorted(tb_sorted, ta - tol, side="left")
        hi = np.searchsorted(tb_sorted, ta + tol, side="right")
        pairs = []  # (distance, index into ia, index into ib)
        for i, (l, h) in enumerate(zip(lo, hi)):
            for j in range(l, h):
                pairs.append((abs(ta[i] - tb_sorted[j]), i, order_b[j]))
        pairs.sort()
        used_a, used_b = set(), set()
        for _, i, j in pairs:
            if i in used_a or j in used_b:
                continue
            used_a.add(i)
            used_b.add(j)
            ia_all.append(ia[i])
            ib_all.append(ib[j])
    return np.array(ia_all, dtype=int), np.array(ib_all, dtype=int)


# ---------------------------------------------------------------------------
# Round trip of one file
# ---------------------------------------------------------------------------


def base_tokens(tokenizer, ids: list[int]) -> list[str]:
    """Base (pre-BPE) token strings for a list of ids."""
    seq = miditok.TokSequence(ids=list(ids), are_ids_encoded=tokenizer.is_trained)
    if tokenizer.is_trained:
        tokenizer.decode_token_ids(seq)
    tokenizer.complete_sequence(seq)
    return seq.tokens


def round_trip(tokenizer, score: Score) -> dict:
    # Read the reference notes BEFORE encoding: PerTok's encode() quantizes the
    # velocities of the caller's Score in place when its ticks_per_quarter already
    # equals the tokenizer's (no resampling copy is made). Encode a copy anyway.
    t_o, p_o, v_o = onsets_quarters(score)
    score_in = score.copy()
    t0 = time.perf_counter()
    seqs = tokenizer.encode(score_in)
    if isinstance(seqs, miditok.TokSequence):  # one_token_stream tokenizers
        seqs = [seqs]
    ids = [list(s.ids) for s in seqs]
    decoded = tokenizer.decode(ids, programs=DRUM_PROGRAMS[: len(ids)] or None)
    elapsed = time.perf_counter() - t0
    mutated = not np.array_equal(onsets_quarters(score_in)[2], v_o)

    t_d, p_d, v_d = onsets_quarters(decoded)
    ia, ib = greedy_match(t_o, p_o, t_d, p_d, MATCH_TOL_Q)
    to_sec = quarters_to_seconds(score)
    err_q = np.abs(t_o[ia] - t_d[ib])
    err_ms = np.abs(to_sec(t_o[ia]) - to_sec(t_d[ib])) * 1000.0

    bar_q = bar_length_quarters(score)
    n_bars = int(math.floor(t_o.max() / bar_q + 1e-9)) + 1 if len(t_o) else 0
    n_ids = sum(len(x) for x in ids)
    toks = base_tokens(tokenizer, ids[0]) if ids else []
    bars_in_tokens = toks.count("Bar_None") + (0 if toks[:1] == ["Bar_None"] else 1)

    ts_in = [(ts.numerator, ts.denominator) for ts in score.time_signatures]
    ts_out = [(ts.numerator, ts.denominator) for ts in decoded.time_signatures]
    return dict(
        n_notes=len(t_o),
        n_decoded=len(t_d),
        n_matched=len(ia),
        err_q=err_q,
        err_ms=err_ms,
        vel_err=np.abs(v_o[ia] - v_d[ib]).astype(float),
        n_ids=n_ids,
        n_bars=n_bars,
        # +-1: quantizing the last onset can push it onto the next downbeat
        bars_ok=abs(bars_in_tokens - n_bars) <= 1,
        bars_in_tokens=bars_in_tokens,
        ts_ok=ts_in[:1] == ts_out[:1],
        ts_in=ts_in[:1],
        ts_out=ts_out[:1],
        drum_ok=len(decoded.tracks) > 0 and all(t.is_drum for t in decoded.tracks),
        seconds=elapsed,
        encode_mutates_input=mutated,
        decoded=decoded,
        ids=ids,
    )


def default_decode_is_drum(tokenizer, score: Score) -> bool | None:
    """Is the track marked as drums when decode() is called WITHOUT programs?"""
    seqs = tokenizer.encode(score.copy())
    if isinstance(seqs, miditok.TokSequence):
        seqs = [seqs]
    dec = tokenizer.decode([list(s.ids) for s in seqs])
    if len(dec.tracks) == 0:
        return None
    return all(t.is_drum for t in dec.tracks)


@dataclass
class Result:
    key: str
    label: str
    note: str = ""
    error: str | None = None
    vocab: int = 0
    files: int = 0
    files_failed: int = 0
    notes: int = 0
    lost: int = 0
    invented: int = 0
    err_q_mean: float = float("nan")
    err_q_p95: float = float("nan")
    err_ms_mean: float = float("nan")
    err_ms_p95: float = float("nan")
    vel_err_mean: float = float("nan")
    tokens_per_bar: float = float("nan")
    bars_ok_frac: float = float("nan")
    ts_ok_split: str = ""
    ts_ok_odd: str = ""
    odd_err_q_mean: float = float("nan")
    odd_lost_pct: float = float("nan")
    odd_bars_ok: str = ""
    drum_default: bool | None = None
    drum_with_programs: bool | None = None
    ms_per_file: float = float("nan")
    extra: dict = field(default_factory=dict)


def evaluate(cand_key, label, tokenizer, files, odd_files, note="") -> tuple[Result, list]:
    res = Result(cand_key, label, note=note, vocab=len(tokenizer))
    errs_q, errs_ms, vel_errs, secs = [], [], [], []
    ids_total = bars_total = 0
    bars_ok = []
    ts_split = {}
    per_file = []
    for f in files:
        score = Score(str(f.path))
        try:
            r = round_trip(tokenizer, score)
        except Exception as exc:  # record, do not hide
            res.files_failed += 1
            res.extra.setdefault("failures", []).append(f"{f.path.name}: {exc!r}")
            per_file.append(None)
            continue
        res.files += 1
        res.notes += r["n_notes"]
        res.lost += r["n_notes"] - r["n_matched"]
        res.invented += r["n_decoded"] - r["n_matched"]
        errs_q.append(r["err_q"])
        errs_ms.append(r["err_ms"])
        vel_errs.append(r["vel_err"])
        secs.append(r["seconds"])
        ids_total += r["n_ids"]
        bars_total += r["n_bars"]
        bars_ok.append(r["bars_ok"])
        ok, tot = ts_split.get(f.time_signature, (0, 0))
        ts_split[f.time_signature] = (ok + int(r["ts_ok"]), tot + 1)
        per_file.append(r)
        if r["encode_mutates_input"]:
            res.extra["encode() mutated the input Score's velocities (files)"] = (
                res.extra.get("encode() mutated the input Score's velocities (files)", 0) + 1)
    if res.files:
        eq, ems = np.concatenate(errs_q), np.concatenate(errs_ms)
        if len(eq):
            res.err_q_mean, res.err_q_p95 = float(eq.mean()), float(np.percentile(eq, 95))
            res.err_ms_mean, res.err_ms_p95 = float(ems.mean()), float(np.percentile(ems, 95))
            res.vel_err_mean = float(np.concatenate(vel_errs).mean())
        res.tokens_per_bar = ids_total / max(bars_total, 1)
        res.bars_ok_frac = float(np.mean(bars_ok))
        res.ms_per_file = 1000.0 * float(np.mean(secs))
    res.ts_ok_split = fmt_ts(ts_split)

    # Odd meters from all splits
    ts_odd, bars_odd, odd_err, odd_notes, odd_lost = {}, {}, [], 0, 0
    for f in odd_files:
        score = Score(str(f.path))
        try:
            r = round_trip(tokenizer, score)
        except Exception as exc:
            res.extra.setdefault("odd_failures", []).append(f"{f.path.name}: {exc!r}")
            ok, tot = ts_odd.get(f.time_signature, (0, 0))
            ts_odd[f.time_signature] = (ok, tot + 1)
            continue
        ok, tot = ts_odd.get(f.time_signature, (0, 0))
        ts_odd[f.time_signature] = (ok + int(r["ts_ok"]), tot + 1)
        ok, tot = bars_odd.get(f.time_signature, (0, 0))
        bars_odd[f.time_signature] = (ok + int(r["bars_ok"]), tot + 1)
        res.extra.setdefault("odd_bars", []).append(
            f"{f.time_signature} {f.path.name}: bars {r['n_bars']}, "
            f"bars in tokens {r['bars_in_tokens']}"
        )
        odd_err.append(r["err_q"])
        odd_notes += r["n_notes"]
        odd_lost += r["n_notes"] - r["n_matched"]
    res.ts_ok_odd = fmt_ts(ts_odd)
    res.odd_bars_ok = fmt_ts(bars_odd)
    if odd_err and len(np.concatenate(odd_err)):
        res.odd_err_q_mean = float(np.concatenate(odd_err).mean())
    res.odd_lost_pct = 100.0 * odd_lost / max(odd_notes, 1)

    probe = Score(str(files[0].path))
    try:
        res.drum_default = default_decode_is_drum(tokenizer, probe)
    except Exception as exc:
        res.extra["drum_default_error"] = repr(exc)
    valid = [r for r in per_file if r is not None]
    res.drum_with_programs = bool(valid) and all(r["drum_ok"] for r in valid)
    return res, per_file


def fmt_ts(d: dict) -> str:
    return " ".join(f"{k.replace('-', '/')}:{ok}/{tot}" for k, (ok, tot) in sorted(d.items()))


# ---------------------------------------------------------------------------
# BPE
# ---------------------------------------------------------------------------


def pick_remi_grid(results: dict[str, Result]) -> str:
    """Coarsest REMI grid whose mean onset error <= 1/4 of GMD's micro-timing std.

    Coarser grids give fewer Position tokens per bar and a smaller vocabulary;
    falls back to the finest grid. Only grids that ran without loss are eligible.
    """
    target = GMD_MICROTIMING_STD_Q / 4
    ok = [k for k in ("a", "b", "c") if k in results and results[k].error is None]
    for k in ok:
        if results[k].err_q_mean <= target:
            return k
    return ok[-1] if ok else "c"


def bpe_vocab_structure(tok) -> str:
    """How learned BPE tokens relate to bars (matters for grammar-constrained decoding)."""
    learned = [t for t in tok._vocab_learned_bytes_to_tokens.values() if len(t) > 1]
    with_bar = [t for t in learned if "Bar_None" in t]
    bar_first = [t for t in with_bar if t[0] == "Bar_None" and t.count("Bar_None") == 1]
    lens = [len(t) for t in learned]
    return (
        f"{len(learned)} merged tokens, {len(with_bar)} contain Bar_None "
        f"({len(bar_first)} only as their first base token), "
        f"base tokens per merged token mean {np.mean(lens):.1f} max {max(lens)}"
    )


def bpe_same_notes(a: Score, b: Score) -> bool:
    ta, pa, va = onsets_quarters(a)
    tb, pb, vb = onsets_quarters(b)
    if len(ta) != len(tb):
        return False
    ka = sorted(zip(np.round(ta, 6), pa, va))
    kb = sorted(zip(np.round(tb, 6), pb, vb))
    return ka == kb


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


def table(results: list[Result]) -> str:
    head = (
        "| # | tokenizer | vocab | tokens/bar | onset err mean / p95 (beats) "
        "| onset err mean / p95 (ms) | vel err | lost | invented | bars in tokens = file bars (±1) "
        "| TS survives (split) | TS survives (odd meters, all splits) "
        "| drums flag: decode() / decode(programs) | enc+dec ms/file |"
    )
    sep = "|" + "---|" * 14
    rows = [head, sep]
    for r in results:
        if r.error:
            rows.append(
                f"| {r.key} | {r.label} | {r.vocab or '-'} | CRASH: {r.error} |"
                + " |" * 10
            )
            continue
        pct = lambda n: f"{n} ({100.0 * n / max(r.notes, 1):.2f} %)"  # noqa: E731
        yn = lambda b: "n/a" if b is None else ("yes" if b else "no")  # noqa: E731
        rows.append(
            f"| {r.key} | {r.label} | {r.vocab} | {r.tokens_per_bar:.1f} "
            f"| {r.err_q_mean:.4f} / {r.err_q_p95:.4f} "
            f"| {r.err_ms_mean:.1f} / {r.err_ms_p95:.1f} "
            f"| {r.vel_err_mean:.2f} | {pct(r.lost)} | {pct(r.invented)} "
            f"| {100.0 * r.bars_ok_frac:.0f} % (odd: {r.odd_bars_ok}) "
            f"| {r.ts_ok_split} | {r.ts_ok_odd} "
            f"| {yn(r.drum_default)} / {yn(r.drum_with_programs)} "
            f"| {r.ms_per_file:.1f}"
            + (f" ({r.files_failed} files crashed)" if r.files_failed else "")
            + " |"
        )
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path("/work/shared/datasets/groove"))
    ap.add_argument("--split", default="validation")
    ap.add_argument("--bpe-vocab", type=int, default=1000)
    ap.add_argument("--bpe-base", choices=["auto", "a", "b", "c"], default="auto",
                    help="REMI grid to train BPE on (auto: see pick_remi_grid)")
    ap.add_argument("--no-bpe", action="store_true")
    ap.add_argument("--max-files", type=int, default=0, help="debug: limit files per split")
    ap.add_argument("--only", default="", help="comma-separated candidate keys")
    ap.add_argument("--json", type=Path, default=None, help="write all numbers here")
    args = ap.parse_args(argv)

    index = load_index(args.data)
    files = [f for f in index if f.split == args.split]
    odd_files = [f for f in index if f.time_signature != "4-4"]
    train_files = [f for f in index if f.split == "train"]
    if args.max_files:
        files, train_files = files[: args.max_files], train_files[: args.max_files]
    print(
        f"# {len(files)} {args.split} files, {len(odd_files)} odd-meter files "
        f"(all splits), {len(train_files)} train files for BPE; "
        f"miditok {miditok_version()}",
        file=sys.stderr,
    )

    only = set(filter(None, args.only.split(",")))
    results: dict[str, Result] = {}
    per_file: dict[str, list] = {}
    tokenizers = {}
    for cand in base_candidates():
        if only and cand.key not in only:
            continue
        t0 = time.time()
        try:
            tok = cand.build()
            res, pf = evaluate(cand.key, cand.label, tok, files, odd_files, cand.note)
            tokenizers[cand.key] = tok
            per_file[cand.key] = pf
        except Exception as exc:
            traceback.print_exc()
            res = Result(cand.key, cand.label, note=cand.note, error=repr(exc)[:200])
        results[cand.key] = res
        print(f"# {cand.key} done in {time.time() - t0:.0f} s", file=sys.stderr)

    if not args.no_bpe and (not only or "e" in only):
        base_key = args.bpe_base if args.bpe_base != "auto" else pick_remi_grid(results)
        label = f"{results[base_key].label if base_key in results else base_key} + BPE {args.bpe_vocab}"
        t0 = time.time()
        try:
            pos = {"a": 4, "b": 12, "c": 24}[base_key]
            tok = miditok.REMI(remi_config(pos))
            tok.train(
                vocab_size=args.bpe_vocab,
                model="BPE",
                files_paths=[f.path for f in train_files],
            )
            train_s = time.time() - t0
            res, pf = evaluate("e", label, tok, files, odd_files,
                               note=f"BPE trained on {len(train_files)} train files")
            res.extra["bpe_train_seconds"] = round(train_s, 1)
            res.extra["bpe_base"] = base_key
            res.extra["bpe_vocab_structure"] = bpe_vocab_structure(tok)
            if base_key in results and results[base_key].error is None:
                base = results[base_key]
                res.extra["tokens_per_bar_reduction_x"] = round(
                    base.tokens_per_bar / res.tokens_per_bar, 3)
                same = [
                    a is not None and b is not None
                    and bpe_same_notes(a["decoded"], b["decoded"])
                    for a, b in zip(per_file[base_key], pf)
                ]
                res.extra["bpe_decoded_identical_to_base_files"] = f"{sum(same)}/{len(same)}"
        except Exception as exc:
            traceback.print_exc()
            res = Result("e", label, error=repr(exc)[:200])
        results["e"] = res
        print(f"# e done in {time.time() - t0:.0f} s", file=sys.stderr)

    ordered = [r for k, r in results.items() if k != "x"] + (
        [results["x"]] if "x" in results else [])
    print(table(ordered))
    print()
    for r in ordered:
        notes = [r.note] if r.note else []
        notes += [f"{k}: {v}" for k, v in r.extra.items() if k != "odd_bars"]
        notes.append(
            f"odd meters (all splits): onset err mean {r.odd_err_q_mean:.4f} beats, "
            f"lost {r.odd_lost_pct:.2f} %"
        )
        print(f"- {r.key} ({r.label}): " + "; ".join(str(n) for n in notes))
        for line in r.extra.get("odd_bars", []):
            print(f"    - {line}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([r.__dict__ for r in ordered], indent=1, default=str))
    return 0


def miditok_version() -> str:
    try:
        from importlib.metadata import version
        return version("miditok")
    except Exception:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
