"""Learned styles, measured: do grooves generated in a style learned from 10 files move towards
held-out grooves of the same drummer, compared with the style's base genre alone?

    .venv/bin/python benchmarks/eval_styles.py [--drummer drummer7] [--learn 10] [--per-condition 64] [--seed 0] [--strength S]

The model never trained on GMD's test split. No drummer-genre pair there has more than 7 beat
files, so the held-out combination is one drummer's test-split 4/4 beats (drummer7: 21 files,
mixed funk/soul/hiphop/rock/pop/jazz, the model has seen this drummer's other sessions): 10 teach
the style, the rest are the held-out set. Compared, each with `--per-condition` generated 2-bar
4/4 beats at the held-out files' median tempo:
- base genre: the genre learning started from (the closest one), drummer `any`;
- learned vector only: the learned genre-slot weights, drummer `any`, no groove template;
- learned vector + drummer: with the drummer learning picked (is it the vector or the pick?);
- learned style as played: what `generate` with style=<learned> gives, the daemon's way
  (vector, drummer and the groove template's timing);
- learned + timing and velocity template: the template's velocities applied too;
- reference: the base genre with the built-in drummer token, which the model learned from that
  drummer's whole train split (dozens of files, not 10).
Measures against the held-out real 2-bar windows: NLL per token of those windows under each
prefix (no sampling noise), the mean overlapping area of the descriptor distributions
(daemon/evaluate.py; 1 = same), C2ST accuracy (0.5 = indistinguishable; mean of 3 seeds), and a
drummer classifier trained on the train split's 4/4 beats: the share of grooves it attributes to
the drummer. The same numbers for the 10 teaching files give the real-vs-real bar.

Generated grooves play at each style's own default strength (the base genre and the reference
at 1.5, the learned style at 1; docs/styles.md), or all at --strength S.

With --presets: how each preset plays at 100 BPM, blend alone and with its template and
anchors applied. With --programmed: a style learned from five programmed techno clips, played
with and without the anchors it learned (what the clips play in every bar).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon import checkpoint, kit, midifile, styles  # noqa: E402
from daemon.data import DEFAULT_DATA  # noqa: E402
from daemon.evaluate import (  # noqa: E402
    BAR, DESCRIPTORS, WINDOW_BARS, c2st, descriptors, features, fit_classifier, loop_windows, overlap_area, predict,
    windows_of,
)
from daemon.generate import Generator, GrooveRequest  # noqa: E402
from daemon.vocab import DRUMMERS  # noqa: E402
from shared.notes import Note  # noqa: E402


def rows_of(data: Path, split: str, drummer: str | None = None) -> list[dict]:
    with (data / "info.csv").open() as f:
        return [r for r in csv.DictReader(f) if r["split"] == split and r["beat_type"] == "beat"
                and r["time_signature"] == "4-4" and (drummer is None or r["drummer"] == drummer)]


def real_windows(data: Path, rows: list[dict]) -> list[list[Note]]:
    return real_windows_and_takes(data, rows)[0]


def real_windows_and_takes(data: Path, rows: list[dict]) -> tuple[list[list[Note]], list[str]]:
    """The 2-bar windows of the takes, and the take each window is from (c2st keeps a take in one fold)."""
    out, takes = [], []
    for r in rows:
        groove = midifile.read(data / r["midi_filename"])
        notes = [Note(kit.to_canonical(n.pitch), n.start, n.duration, n.velocity) for n in groove.notes]
        cut = windows_of(notes, groove.length)
        out += cut
        takes += [r["id"]] * len(cut)
    return out, takes


def generate(generator: Generator, style, drummer: str | None, tempo: float, count: int, seed: int,
             voice_changes: dict | None = None, strength: float | None = None) -> list[list[Note]]:
    """`count` 2-bar beats as the daemon plays them; `voice_changes` alter the style's Voice
    (template=None: without its groove template; drummer=None: without its drummer)."""
    voice = generator.voice
    if voice_changes:
        generator.voice = lambda s, strength=None: dataclasses.replace(voice(s, strength), **voice_changes)
    try:
        grooves = []
        for b in range(0, count, 16):
            request = GrooveRequest(style=style, drummer=drummer, bars=WINDOW_BARS, tempo=tempo, kind="beat",
                                    variations=min(16, count - b), seed=seed + b, strength=strength)
            grooves += [p.notes for p in generator.generate([request])[0]]
    finally:
        generator.voice = voice
    return [g for g in grooves if loop_windows([g])]


def held_out_nll(model, vocab, weights: dict[int, float], drummer: str | None, data: Path, rows: list[dict]) -> float:
    """NLL per token of the held-out files' 2-bar windows with this style in the prefix."""
    vector = torch.zeros(len(vocab))
    for token, w in weights.items():
        vector[token] = w
    sequences = [w for r in rows for w in styles.windows(styles.read_groove(data / r["midi_filename"]), vocab)]
    return styles.nll(model, vector, sequences, vocab.slot_id("drummer", drummer), vocab.pad)


def feel(grooves: list[list[Note]]) -> tuple[float, float, float, float]:
    """What the presets promise: swing (daemon/evaluate.py's descriptor: how far after the & the
    upbeat notes sit, in beats), off-beat 16ths' lateness and the backbeat snare's (in 16ths),
    and the share of bars with a kick on all four beats."""
    def late(keep) -> float:
        offsets = [n.start * 4 - round(n.start * 4) for g in grooves for n in g if keep(n, round(n.start * 4))]
        return float(np.mean(offsets)) if offsets else float("nan")

    swing = float(np.mean([descriptors(g)[-1] for g in grooves]))
    bars = [[n.start - b * BAR for n in g if n.pitch == 36 and b * BAR - 0.1 <= n.start < (b + 1) * BAR - 0.1]
            for g in grooves for b in range(WINDOW_BARS)]
    four = float(np.mean([all(any(abs(k - q) < 0.1 for k in kicks) for q in range(4)) for kicks in bars]))
    return (swing, late(lambda n, s: s % 2 == 1), late(lambda n, s: n.pitch in (37, 38, 40) and s % 8 == 4), four)


def presets(generator: Generator, per_preset: int, seed: int) -> None:
    """Each preset's grooves at 100 BPM, as the model plays the blend and with its template applied."""
    print("| preset | grooves | swing (beats) | off-beat 16ths late (16ths) | backbeat snare late (16ths) "
          "| kick on all 4 beats |")
    print("|---|---|---|---|---|---|")
    for i, (name, preset) in enumerate(styles.PRESETS.items()):
        grooves = generate(generator, name, None, 100.0, per_preset, seed + 1000 * i, {"template": None, "anchors": None})
        shaped = generate(generator, name, None, 100.0, per_preset, seed + 1000 * i)  # as the daemon plays it
        for label, gs in ((f"{name} blend alone", grooves), (name, shaped)):
            print(f"| {label} | {len(gs)} | " + " | ".join(f"{x:+.2f}" for x in feel(gs)[:3])
                  + f" | {feel(gs)[3]:.0%} |")


def programmed(checkpoint_path: Path, count: int, seed: int, steps: int) -> None:
    """Grooves far from GMD's: a style learned from five 4-bar techno clips, per bar as played,
    without its anchors, and `dance` alone, against the clips."""
    from tests.support import techno_clip

    clips = [techno_clip(clap=v % 2 == 1, crash=v == 4) for v in range(5)]
    folder = Path(tempfile.mkdtemp(prefix="styles-"))
    style = styles.learn_style_from_clips("techno", clips, checkpoint_path, steps, folder=folder)
    print(f"learned from {len(clips)} clips: base {style.base}, drummer {style.drummer}, "
          f"loss {style.fit['loss_base']:.2f} -> {style.fit['loss_style']:.2f}; in every bar: "
          f"{style.anchors.describe() if style.anchors else 'nothing'}\n")
    generator = Generator.load(checkpoint_path, "cpu", style_folder=folder)
    def per_bar(grooves: list[list[Note]]) -> list[list[Note]]:
        """Each loop's bars, a hit in its nearest bar (a downbeat a hair early, the loop's too),
        timed from that bar's start."""
        loop, bars = WINDOW_BARS * BAR, []
        for g in grooves:
            split: list[list[Note]] = [[] for _ in range(WINDOW_BARS)]
            for n in g:
                b = int((n.start + 1 / 8) % loop // BAR)
                split[b].append(dataclasses.replace(n, start=(n.start + 1 / 8) % loop - b * BAR - 1 / 8))
            bars += split
        return bars

    conditions = {"the clips": per_bar([[n for n in kit_notes(c[0]) if n.start < WINDOW_BARS * BAR] for c in clips]),
                  "learned style as played": per_bar(generate(generator, "techno", None, 125.0, count, seed)),
                  "without its anchors": per_bar(generate(generator, "techno", None, 125.0, count, seed,
                                                          {"anchors": None})),
                  "dance alone": per_bar(generate(generator, "dance", None, 125.0, count, seed))}
    print("| grooves | bars | a kick on every beat | hits | hats | snare on 2 and 4 | ride | toms |")
    print("|---|---|---|---|---|---|---|---|")
    for label, bars in conditions.items():
        def on(pitches, beats, bar):
            return all(any(n.pitch in pitches and abs(n.start - q) <= 1 / 8 for n in bar) for q in beats)
        mean = lambda f: float(np.mean([f(bar) for bar in bars]))  # noqa: E731
        print(f"| {label} | {len(bars)} | {mean(lambda b: on((35, 36), range(4), b)):.0%} | {mean(len):.1f} "
              f"| {mean(lambda b: sum(n.pitch in kit.GROUPS['hats'] for n in b)):.1f} "
              f"| {mean(lambda b: on(kit.GROUPS['snare'], (1, 3), b)):.0%} "
              f"| {mean(lambda b: sum(n.pitch in kit.GROUPS['ride'] for n in b)):.1f} "
              f"| {mean(lambda b: sum(n.pitch in kit.GROUPS['toms'] for n in b)):.1f} |")


def kit_notes(notes: list[Note]) -> list[Note]:
    """A clip's notes as the model plays them (claps as the snare: kit.played_as)."""
    heard = kit.played_as({}, [n.pitch for n in notes])
    return [dataclasses.replace(n, pitch=heard(n.pitch)) for n in notes]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--checkpoint", type=Path, default=checkpoint.BUNDLED)
    ap.add_argument("--drummer", default="drummer7", choices=DRUMMERS)
    ap.add_argument("--learn", type=int, default=10, help="files the style learns from")
    ap.add_argument("--per-condition", dest="per_condition", type=int, default=64)
    ap.add_argument("--steps", type=int, default=styles.STEPS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--presets", action="store_true", help="measure the presets' feel instead")
    ap.add_argument("--programmed", action="store_true", help="measure a style learned from programmed techno clips")
    ap.add_argument("--strength", type=float,
                    help="play every condition at this strength (default: each style's own; not with --presets)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.presets:
        presets(Generator.load(args.checkpoint, "cpu"), args.per_condition, args.seed)
        return
    if args.programmed:
        programmed(args.checkpoint, args.per_condition, args.seed, args.steps)
        return

    rows = rows_of(args.data, "test", args.drummer)
    random.Random(args.seed).shuffle(rows)
    teach, held = rows[: args.learn], rows[args.learn :]
    print(f"{args.drummer}: {len(rows)} test-split 4/4 beats, {len(teach)} teach the style, {len(held)} held out")

    folder = Path(tempfile.mkdtemp(prefix="styles-"))
    wall, cpu = time.perf_counter(), time.process_time()
    style = styles.learn_style("bench", [args.data / r["midi_filename"] for r in teach], args.checkpoint,
                               args.steps, folder=folder)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    top = ", ".join(f"{t} {w:+.2f}" for t, w in sorted(style.weights.items(), key=lambda kv: -abs(kv[1]))[:6])
    print(f"learned in {wall:.1f} s wall, {cpu:.1f} s CPU ({args.threads} thread(s)); base {style.base}, "
          f"drummer {style.drummer}; weights: {top}; in every bar: "
          f"{style.anchors.describe() if style.anchors else 'nothing'}")

    generator = Generator.load(args.checkpoint, "cpu", style_folder=folder)
    model, vocab = generator.model, generator.vocab
    learned = styles.resolve("bench", vocab, model, folder)
    base_weights = styles.resolve(style.base, vocab).weights
    tempo = float(np.median([float(r["bpm"]) for r in held]))
    conditions = {  # label -> (request style, genre-slot weights and drummer for the NLL, Voice changes)
        "base genre": (style.base, base_weights, None, {}),
        "learned vector only": ("bench", learned.weights, None, {"drummer": None, "template": None}),
        "learned vector + drummer": ("bench", learned.weights, learned.drummer, {"template": None}),
        "learned style as played (+ timing template)": ("bench", None, None, {}),
        f"reference: base + {args.drummer} token": (style.base, base_weights, args.drummer, {}),
    }
    generated, nlls = {}, {}
    for i, (label, (request_style, weights, drummer, changes)) in enumerate(conditions.items()):
        ask_drummer = args.drummer if label.startswith("reference") else None
        generated[label] = generate(generator, request_style, ask_drummer, tempo, args.per_condition,
                                    args.seed + 1000 * i, changes, args.strength)
        if weights is not None:
            nlls[label] = held_out_nll(model, vocab, weights, drummer, args.data, held)
    generated["learned + timing and velocity template"] = [
        style.template.apply(g, (4, 4), WINDOW_BARS * BAR, timing=1.0, velocity=1.0)
        for g in generated["learned vector + drummer"]]

    (real_held, held_takes), (real_teach, teach_takes) = (real_windows_and_takes(args.data, rows) for rows in (held, teach))
    train_rows = rows_of(args.data, "train")
    train_x, train_y = [], []
    for k, d in enumerate(DRUMMERS):
        w = real_windows(args.data, [r for r in train_rows if r["drummer"] == d])
        train_x += [features(x) for x in w]
        train_y += [k] * len(w)
    who = fit_classifier(np.array(train_x), np.array(train_y), len(DRUMMERS))
    target = DRUMMERS.index(args.drummer)

    held_d = np.array([descriptors(w) for w in real_held])
    held_f = np.array([features(w) for w in real_held])
    print(f"held-out real windows: {len(real_held)}; tempo {tempo:g} BPM; "
          f"drummer classifier calls {np.mean(predict(who, held_f) == target):.0%} of them {args.drummer}\n")
    print(f"| grooves | n | held-out NLL/token | mean OA | C2ST vs held-out | classified as {args.drummer} |")
    print("|---|---|---|---|---|---|")
    table = {**{label: loop_windows(grooves) for label, grooves in generated.items()},  # as drumigen eval compares
             f"real: the {len(teach)} teaching files": real_teach}
    oa_rows = {}
    for label, grooves in table.items():
        d = np.array([descriptors(w) for w in grooves])
        f = np.array([features(w) for w in grooves])
        oa_rows[label] = [overlap_area(held_d[:, j], d[:, j]) for j in range(len(DESCRIPTORS))]
        takes = teach_takes if grooves is real_teach else None  # a generated groove is a take of its own
        accs = [c2st(held_f, f, seed=s, takes_a=held_takes, takes_b=takes) for s in range(3)]
        acc = "–" if None in accs else f"{np.mean(accs):.3f}"  # None: a side of fewer than 2 takes
        nll = nlls.get(label)
        print(f"| {label} | {len(grooves)} | {'–' if nll is None else f'{nll:.4f}'} | {np.mean(oa_rows[label]):.3f} "
              f"| {acc} | {np.mean(predict(who, f) == target):.0%} |")
    print("\n| descriptor | " + " | ".join(oa_rows) + " |")
    print("|---|" + "---|" * len(oa_rows))
    for j, name in enumerate(DESCRIPTORS):
        print(f"| {name} | " + " | ".join(f"{oa[j]:.2f}" for oa in oa_rows.values()) + " |")


if __name__ == "__main__":
    main()
