"""Humanize, measured on GMD's test split: how close to the drummer does it put quantised notes?

    .venv/bin/python benchmarks/eval_humanize.py [--data PATH] [--checkpoint PATH] [--kind beat|fill|all] [--seed N]

Every test performance is quantised (starts to the nearest 16th) and humanized with amount=1,
then compared note by note with what the drummer played:
- timing MAE in ms at the file's tempo, and velocity MAE;
- the spread: std of the offsets from the grid (ms) and of the velocities, real against
  produced. A mean predictor shrinks it; sampling should bring it back;
- the same-16th gap: how far apart hits on one 16th land (mean ms); independent noise per
  note would flam them, a drummer's hits there move together.
Three inputs: velocities flat at 100, as a clip drawn in Live has them (the model supplies the
dynamics); velocities as played (only the timing was quantised; humanize keeps them); and
accents programmed in two levels, each piece's loudest third of the take at 127 and the rest at
100, where a producer would accent them (humanize.accented) (humanize keeps the levels and adds the style's dynamics
within each): for those, how the velocities vary within a level, against how the drummer's vary
within the same notes (std, and the correlation of the two).
Rows: the quantised input itself; the style average (the train split's mean offset and
velocity per genre, piece and 16th position in the bar, backing off to genre and piece, then
piece); the learned humanizer's most likely feel (spread 0); the humanizer sampled (spread 1);
and, as an ablation, sampled with independent noise per note (no shared, drifting part).
Ghost notes: with each test groove's soft snare notes taken out, how well does the ghost head
predict where they were (BCE per free 16th, ROC AUC) against the train split's rate per
genre and 16th, and how many does humanize(ghost_notes=True) put back per bar?
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from daemon.data import DEFAULT_DATA  # noqa: E402
from daemon.humanize import (  # noqa: E402
    BUNDLED_HUMANIZER, GHOST_PITCH, GHOST_VELOCITY, PIECES, Humanizer, bar_steps, features, accented,
    ghost_candidates, level_means, make_grid, nearest_steps,
)
from daemon.train_humanizer import Performance, load_performances  # noqa: E402
from daemon.vocab import GENRES  # noqa: E402
from shared.notes import Note  # noqa: E402

FLAT_VELOCITY = 100  # what Live gives a drawn note
METHODS = ("quantised input", "style average", "learned, mean", "learned, sampled", "sampled, iid noise")
MIN_GENRE_FILES = 4  # genres with fewer test files get no row of their own


class StyleAverage:
    """The baseline: the train split's mean offset (16ths) and velocity per genre, piece and 16th in the bar."""

    def __init__(self, performances: list[Performance]) -> None:
        sums: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(3))
        for perf in performances:
            steps = nearest_steps(perf.starts)
            for pitch, step, offset, velocity in zip(perf.pitches, steps % bar_steps(perf.meter),
                                                     perf.starts * 4 - steps, perf.velocities):
                for key in self.keys(perf, int(pitch), int(step)):
                    sums[key] += (offset, velocity, 1)
        self.table = {key: (s[0] / s[2], s[1] / s[2]) for key, s in sums.items()}

    @staticmethod
    def keys(perf: Performance, pitch: int, step: int) -> tuple[tuple, ...]:
        return (perf.genre, pitch, perf.meter, step), (perf.genre, pitch), (pitch,)

    def __call__(self, perf: Performance) -> tuple[np.ndarray, np.ndarray]:
        steps = nearest_steps(perf.starts) % bar_steps(perf.meter)
        found = [next((self.table[k] for k in self.keys(perf, int(p), int(s)) if k in self.table), (0.0, 64.0))
                 for p, s in zip(perf.pitches, steps)]
        return np.array([f[0] for f in found]), np.array([f[1] for f in found])


def clip_length(perf: Performance) -> float:
    """The performance's bars, plus one when a late last hit quantises onto the bar line after them."""
    bar = perf.meter[0] * 4 / perf.meter[1]
    return perf.length + bar if nearest_steps(perf.starts).max() >= perf.length * 4 else perf.length


ACCENT = 127  # a programmed accent; the other notes get FLAT_VELOCITY


def quantised(perf: Performance, velocities: str) -> list[Note]:
    """The take on the 16th grid, its velocities `velocities`: "flat", "played" or "accents"."""
    starts = nearest_steps(perf.starts) / 4
    given = {"flat": np.full(len(starts), FLAT_VELOCITY), "played": perf.velocities,
             "accents": np.where(accented(perf.pitches, perf.velocities), ACCENT, FLAT_VELOCITY)}[velocities]
    return [Note(n.pitch, float(s), n.duration, int(v)) for n, s, v in zip(perf.notes(), starts, given)]


def within_levels(velocities: np.ndarray, levels: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Each velocity less the mean of its piece's notes at its level in the take."""
    return velocities - level_means(velocities, levels, pieces)


def compare(humanizer: Humanizer, baseline: StyleAverage, tests: list[Performance], velocities: str,
            seed: int) -> dict[str, dict[str, np.ndarray]]:
    """Per method: offsets from the grid (ms) and velocities of every test note; 'real' is the drummer."""
    found: dict[str, dict[str, list]] = {m: defaultdict(list) for m in ("real", *METHODS)}
    independent = copy.copy(humanizer)  # the ablation: each note's own noise, nothing shared
    independent.noise = {**humanizer.noise, "offset": [0.0, 0.0], "velocity": [0.0, 0.0]}
    for i, perf in enumerate(tests):
        ms = 60000 / perf.tempo / 4  # one 16th
        grid = nearest_steps(perf.starts)
        notes = quantised(perf, velocities)
        given = np.array([n.velocity for n in notes], dtype=float)
        style = GENRES[perf.genre] if perf.genre < len(GENRES) else None
        base_offset, base_velocity = baseline(perf)
        produced = {
            "real": (perf.starts * 4 - grid, perf.velocities),
            "quantised input": (np.zeros(len(grid)), np.array([n.velocity for n in notes], dtype=float)),
            "style average": (base_offset, {"flat": base_velocity, "played": perf.velocities, "accents":
                              given + within_levels(base_velocity, given, perf.pitches)}[velocities]),
        }
        for method, spread in (("learned, mean", 0.0), ("learned, sampled", 1.0), ("sampled, iid noise", 1.0)):
            model = independent if method == "sampled, iid noise" else humanizer
            out = model.humanize(notes, style, perf.tempo, perf.meter, clip_length(perf), amount=1.0,
                                     seed=seed + i, spread=spread)
            produced[method] = (np.array([n.start for n in out]) * 4 - grid, np.array([n.velocity for n in out], float))
        order = np.argsort(grid, kind="stable")
        together = grid[order][1:] == grid[order][:-1]  # neighbours in time on one 16th
        for method, (offset, velocity) in produced.items():
            found[method]["offset_ms"].append(offset * ms)
            found[method]["velocity"].append(velocity)
            found[method]["genre"].append(np.full(len(grid), perf.genre))
            found[method]["gap_ms"].append(np.abs(np.diff(offset[order]))[together] * ms)
            found[method]["within"].append(within_levels(velocity, given, perf.pitches))
    return {m: {k: np.concatenate(v) for k, v in d.items()} for m, d in found.items()}


def table(result: dict[str, dict[str, np.ndarray]], title: str) -> str:
    real = result["real"]
    lines = [title, f"{'':18} {'timing MAE ms':>13} {'velocity MAE':>12} {'offset std ms':>13} {'velocity std':>12} "
                    f"{'same-16th gap ms':>16}",
             f"{'real performance':18} {'':>13} {'':>12} {real['offset_ms'].std():13.1f} "
             f"{real['velocity'].std():12.1f} {real['gap_ms'].mean():16.1f}"]
    for method in METHODS:
        got = result[method]
        lines.append(f"{method:18} {np.abs(got['offset_ms'] - real['offset_ms']).mean():13.1f} "
                     f"{np.abs(got['velocity'] - real['velocity']).mean():12.1f} "
                     f"{got['offset_ms'].std():13.1f} {got['velocity'].std():12.1f} {got['gap_ms'].mean():16.1f}")
    return "\n".join(lines)


def level_table(result: dict[str, dict[str, np.ndarray]]) -> str:
    """For accents: the velocities within a level (piece and level in a take, its mean taken
    out), against the drummer's within the same notes."""
    real = result["real"]["within"]
    lines = ["within a programmed level: velocity std, and its correlation with the drummer's",
             f"{'real performance':18} {real.std():8.1f}"]
    for method in METHODS:
        got = result[method]["within"]
        r = float(np.corrcoef(got, real)[0, 1]) if got.std() > 0 else float("nan")
        lines.append(f"{method:18} {got.std():8.1f} {r:8.2f}")
    return "\n".join(lines)


def genre_table(result: dict[str, dict[str, np.ndarray]], genres: list[int]) -> str:
    real = result["real"]
    methods = METHODS[:4]  # the ablation differs from "learned, sampled" only in how notes move together
    head = "".join(f"{m:>22}" for m in methods)
    lines = ["per genre, timing MAE ms / velocity MAE (flat input)", f"{'genre':12} {'notes':>6}{head}"]
    for genre in genres:
        mask = real["genre"] == genre
        cells = "".join(
            f"{np.abs(result[m]['offset_ms'][mask] - real['offset_ms'][mask]).mean():15.1f} / "
            f"{np.abs(result[m]['velocity'][mask] - real['velocity'][mask]).mean():4.1f}" for m in methods)
        lines.append(f"{GENRES[genre]:12} {int(mask.sum()):6d}{cells}")
    return "\n".join(lines)


def ghost_rates(performances: list[Performance]) -> dict[tuple, float]:
    """The ghost-note baseline: the train split's rate per free 16th, by genre and position in the bar."""
    counts: dict[tuple, np.ndarray] = defaultdict(lambda: np.zeros(2))
    for perf in performances:
        free, label, _ = ghost_task(perf)
        for step, y in zip(free % bar_steps(perf.meter), label):
            for key in ((perf.genre, perf.meter, int(step)), (perf.meter, int(step)), ()):
                counts[key] += (y, 1)
    return {key: (c[0] + 0.5) / (c[1] + 1) for key, c in counts.items()}


def ghost_task(perf: Performance) -> tuple[np.ndarray, np.ndarray, list[Note]]:
    """A groove without its ghost notes: its free 16ths, whether the drummer put one there, the notes left."""
    ghost = (perf.pitches == GHOST_PITCH) & (perf.velocities < GHOST_VELOCITY)
    main = [n for n, g in zip(quantised(perf, "flat"), ghost) if not g]
    grid = make_grid(main, perf.genre, perf.tempo, perf.meter, clip_length(perf))
    free = ghost_candidates(grid)
    label = np.isin(free, nearest_steps(perf.starts[ghost]) % grid.total).astype(float)
    return free, label, main


def ghost_report(humanizer: Humanizer, train: list[Performance], tests: list[Performance], seed: int) -> str:
    rates = ghost_rates(train)
    learned, stats, labels, real_count, added, bars = [], [], [], 0, 0, 0.0
    for i, perf in enumerate(tests):
        free, label, main = ghost_task(perf)
        grid = make_grid(main, perf.genre, perf.tempo, perf.meter, clip_length(perf))
        _, head = humanizer.predict(features(grid, free, np.full(len(free), PIECES.index(GHOST_PITCH)), None,
                                             humanizer.config))
        learned.append(1 / (1 + np.exp(-head[:, 0])))
        stats.append(np.array([next(rates[k] for k in ((perf.genre, perf.meter, int(s)), (perf.meter, int(s)), ())
                                    if k in rates) for s in free % bar_steps(perf.meter)]))
        labels.append(label)
        style = GENRES[perf.genre] if perf.genre < len(GENRES) else None
        out = humanizer.humanize(main, style, perf.tempo, perf.meter, clip_length(perf), seed=seed + i,
                                 ghost_notes=True)
        added += len(out) - len(main)
        real_count += int(label.sum())
        bars += clip_length(perf) / (perf.meter[0] * 4 / perf.meter[1])
    y = np.concatenate(labels)
    lines = ["ghost notes (soft snare < velocity %d), on free 16ths of the test grooves without them" % GHOST_VELOCITY,
             f"{'':28} {'BCE nats/step':>13} {'ROC AUC':>8}"]
    for name, p in (("constant train rate", np.full(len(y), rates[()])), ("genre x 16th rate (train)",
                    np.concatenate(stats)), ("learned ghost head", np.concatenate(learned))):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        bce = -(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()
        lines.append(f"{name:28} {bce:13.3f} {auc(y, p):8.3f}")
    lines.append(f"ghost notes per bar: drummer {real_count / bars:.2f}, humanize(ghost_notes=True) {added / bars:.2f}")
    return "\n".join(lines)


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC by ranks (ties share one): the chance a real ghost step outranks an empty one."""
    order = np.argsort(score, kind="stable")
    _, first, counts = np.unique(score[order], return_index=True, return_counts=True)
    ranks = np.empty(len(score))
    ranks[order] = np.repeat(first + (counts + 1) / 2, counts)
    positives = y.sum()
    return float((ranks[y == 1].sum() - positives * (positives + 1) / 2) / (positives * (len(y) - positives)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--checkpoint", type=Path, default=BUNDLED_HUMANIZER)
    parser.add_argument("--kind", choices=("beat", "fill", "all"), default="beat")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.perf_counter()
    humanizer = Humanizer.load(args.checkpoint)
    train = load_performances(args.data, "train")
    tests = [p for p in load_performances(args.data, "test") if args.kind in ("all", p.kind)]
    baseline = StyleAverage(train)
    meters = defaultdict(int)
    for perf in tests:
        meters[perf.meter] += 1
    print(f"GMD test split, {args.kind}: {len(tests)} performances, "
          f"{sum(len(p.starts) for p in tests)} notes; meters " + ", ".join(f"{n}/{d} ({c})" for (n, d), c in
                                                                       sorted(meters.items())))
    print(f"checkpoint {args.checkpoint.name}: {humanizer.meta.get('train_notes')} train notes, "
          f"epoch {humanizer.meta.get('best_epoch')}\n")
    flat = compare(humanizer, baseline, tests, "flat", seed=args.seed)
    print(table(flat, "velocities flat at 100 (a drawn clip), amount 1") + "\n")
    print(table(compare(humanizer, baseline, tests, "played", seed=args.seed),
                "velocities as played (only timing quantised; humanize keeps them), amount 1") + "\n")
    accents = compare(humanizer, baseline, tests, "accents", seed=args.seed)
    print(table(accents, f"accents programmed: {ACCENT} on each piece's loudest third, {FLAT_VELOCITY} on the rest, "
                         "amount 1") + "\n")
    print(level_table(accents) + "\n")
    for meter in sorted(meters):
        if len(meters) > 1:
            subset = [p for p in tests if p.meter == meter]
            print(table(compare(humanizer, baseline, subset, "flat", seed=args.seed),
                        f"{meter[0]}/{meter[1]} only, flat velocities") + "\n")
    files = defaultdict(int)
    for perf in tests:
        files[perf.genre] += 1
    print(genre_table(flat, sorted((g for g, c in files.items() if c >= MIN_GENRE_FILES), key=lambda g: -files[g])))
    print()
    print(ghost_report(humanizer, train, tests, args.seed))
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
