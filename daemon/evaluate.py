"""`drumigen eval`: how well the drummer plays, measured against held-out GMD grooves.

Two kinds of numbers:
- likelihood: NLL per token and per note on GMD's validation and test splits;
- musicianship, per genre, on 2-bar 4/4 grooves: generated ones against real test-split ones.
  * descriptor distributions (density, per-piece hit rates, syncopation, velocity mean and
    spread, micro-timing spread, swing) compared as overlapping areas of their densities
    (MGEval's OA: 1 = the same distribution, 0 = disjoint);
  * a classifier two-sample test (C2ST): a classifier tries to tell generated from real; 50 %
    accuracy means it cannot. The same test between two real sets (test vs validation split)
    gives the bar to compare with;
  * a style classifier trained on the train split's grooves: how often it recognises the
    requested genre in generated grooves, against how often in real held-out grooves: the test
    split's, and the test and validation splits' together (for some genres the test split holds
    one to three takes, and which real grooves are the reference moves a genre's share by up
    to 0.2: docs/model.md);
  * copying: the share of 2-bar 16th-note grids found verbatim in the train split, against the
    same share for real held-out grooves;
  * validity: grooves inside the clip with every bar played;
  * the controls: what `density` and `complexity` 0..1 do to hits per bar and to the share of
    hits on off-8th 16ths, against what those levels mean in the training data.
"""

from __future__ import annotations

import logging
import math
import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from daemon import checkpoint, kit, midifile
from daemon.data import DEFAULT_DATA, evaluation_windows, load_dataset, read_index
from daemon.generate import Generator, GrooveRequest
from daemon.train import TrainConfig, evaluate
from shared.notes import Note
from shared.protocol import VARIATIONS_RANGE

log = logging.getLogger(__name__)

BAR = 4.0  # beats of a 4/4 bar
WINDOW_BARS = 2
STEPS = 16 * WINDOW_BARS  # 16ths in a window
GROUP_OF = {p: i for i, ps in enumerate(kit.GROUPS.values()) for p in ps}
DESCRIPTORS = ("density", *(f"{g} rate" for g in kit.GROUPS), "syncopation", "velocity mean", "velocity spread",
               "timing spread", "swing")
MIN_REAL_WINDOWS = 25
STYLE_SEEDS = 5  # one style classifier's accuracy moves by several points with its seed: report the mean of 5
C2ST_SEEDS = 5  # one C2ST draw moves by ±0.05-0.1 (which windows, which folds): report mean and sd of 5
MIN_TAKES = 3  # real grooves (`performance`) a genre needs for a style verdict: one is one drummer's afternoon
BOOTSTRAP = 1000  # resamples of real and generated grooves for the style ratio's interval
MIN_RATE = 0.05  # a real style accuracy under this gives no ratio: a genre its real grooves do not say


# --- grooves as numbers ----------------------------------------------------------------------
def windows_of(notes: list[Note], length: float, first: float = 0.0, loop: bool = False) -> list[list[Note]]:
    """Non-overlapping 2-bar windows from beat `first` on with at least one hit in each bar,
    times from the window start. A hit is in the window its nearest 16th is in: a downbeat played
    a hair early is its own bar's (cut at the exact bar line, 86 % of the train split's funk
    windows and 68 % of the test split's ended with the next window's downbeat, and lacked their
    own: the most telling single feature of real against generated grooves). With `loop` (a
    generated groove, whose end is its start) a hit nearest the end is the loop's one."""
    span = WINDOW_BARS * BAR

    def sixteenth(note: Note) -> float:
        return round(note.start * 4) / 4

    if loop:
        notes = [Note(n.pitch, n.start - length, n.duration, n.velocity) if n.start < length <= sixteenth(n) else n
                 for n in notes]
    out = []
    for w in range(int((length - first) // span)):
        at = first + w * span
        inside = [Note(n.pitch, n.start - at, n.duration, n.velocity) for n in notes if at <= sixteenth(n) < at + span]
        if all(any(b * BAR <= sixteenth(n) < (b + 1) * BAR for n in inside) for b in range(WINDOW_BARS)):
            out.append(inside)
    return out


def loop_windows(grooves: list[list[Note]]) -> list[list[Note]]:
    """The windows of generated 2-bar loops, each one's early one at its start: what is compared
    with real windows."""
    return [w for g in grooves for w in windows_of(g, WINDOW_BARS * BAR, loop=True)]


def descriptors(notes: list[Note]) -> np.ndarray:
    steps = [n.start * 4 for n in notes]  # in 16ths
    nearest = [round(s) for s in steps]
    offsets = [s - r for s, r in zip(steps, nearest)]  # in 16ths, + = late
    velocities = [n.velocity for n in notes]
    rates = [sum(GROUP_OF.get(n.pitch) == g for n in notes) / WINDOW_BARS for g in range(len(kit.GROUPS))]
    upbeats = [(n.start % 1.0) for n in notes if 0.375 <= n.start % 1.0 < 0.875]
    return np.array([
        len(notes) / WINDOW_BARS,
        *rates,
        sum(r % 2 == 1 for r in nearest) / len(notes),
        float(np.mean(velocities)),
        float(np.std(velocities)),
        float(np.std(offsets)),
        float(np.mean(upbeats)) - 0.5 if upbeats else 0.0,
    ])


def grid(notes: list[Note]) -> np.ndarray:
    """Which piece group is hit on which 16th: the pattern without its feel."""
    g = np.zeros((len(kit.GROUPS), STEPS), dtype=np.float32)
    for n in notes:
        step = round(n.start * 4)
        if n.pitch in GROUP_OF and 0 <= step < STEPS:
            g[GROUP_OF[n.pitch], step] = 1.0
    return g


def features(window: list[Note]) -> np.ndarray:
    return np.concatenate([grid(window).ravel(), descriptors(window)])


# --- statistics ------------------------------------------------------------------------------
def overlap_area(a: np.ndarray, b: np.ndarray) -> float:
    """MGEval's overlapping area of two Gaussian kernel density estimates."""
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    if hi - lo < 1e-9:
        return 1.0
    xs = np.linspace(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo), 512)

    def kde(v: np.ndarray) -> np.ndarray:
        bw = 1.06 * max(v.std(), 0.02 * (hi - lo)) * len(v) ** -0.2  # Silverman's rule, floored
        d = np.exp(-0.5 * ((xs[:, None] - v[None, :]) / bw) ** 2).sum(1)
        return d / np.trapezoid(d, xs)

    return float(np.trapezoid(np.minimum(kde(a), kde(b)), xs))


def fit_classifier(x: np.ndarray, y: np.ndarray, classes: int, epochs: int = 300, seed: int = 0) -> torch.nn.Module:
    """A small MLP on standardised features, class-balanced: enough to tell grooves apart. A
    feature constant in `x` (a grid cell no training window hits) is scaled by 1, not by 1e-6:
    a held-out window hitting it came in at 10^6 and its prediction was the random weights'
    (a third of pop's C2ST windows), which pulled a C2ST towards 0.5."""
    torch.manual_seed(seed)
    mean, std = x.mean(0), x.std(0)
    std = np.where(std < 1e-6, 1.0, std)
    net = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 64), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                              torch.nn.Linear(64, classes))
    xt, yt = torch.tensor((x - mean) / std, dtype=torch.float32), torch.tensor(y)
    counts = torch.bincount(yt, minlength=classes).float()
    weight = counts.sum() / (classes * counts.clamp(min=1))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        F.cross_entropy(net(xt), yt, weight=weight).backward()
        opt.step()
    net.eval()
    net.standardise = lambda v: torch.tensor((v - mean) / std, dtype=torch.float32)  # type: ignore[attr-defined]
    return net


def predict(net: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return net(net.standardise(x)).argmax(1).numpy()


def c2st(a: np.ndarray, b: np.ndarray, folds: int = 5, seed: int = 0, takes_a: list | None = None,
         takes_b: list | None = None, size: int | None = None) -> float | None:
    """Cross-validated accuracy of telling set a from set b (balanced by subsampling, to at most
    `size` windows a side, so that two C2STs compare like with like). Given the
    take each window comes from, a take's windows stay in one fold: dealt window by window, the
    classifier learnt to recognise takes, not realness (real funk told from real funk at 0.94,
    0.56 by take). None where a side has windows of fewer than 2 takes."""
    n = min(len(a), len(b), size or len(a))
    rng = np.random.default_rng(seed)
    pick_a, pick_b = rng.permutation(len(a))[:n], rng.permutation(len(b))[:n]
    takes = [np.asarray(t if t is not None else range(len(side)))[pick] for t, side, pick in
             ((takes_a, a, pick_a), (takes_b, b, pick_b))]
    if min(len(np.unique(t)) for t in takes) < 2:
        return None
    fold = []
    for t in takes:  # each side's takes dealt round the folds in a random order
        order = rng.permutation(np.unique(t))
        rank = {take: i for i, take in enumerate(order)}
        fold.append(np.array([rank[take] % folds for take in t]))
    x, y, fold = np.concatenate([a[pick_a], b[pick_b]]), np.array([0] * n + [1] * n), np.concatenate(fold)
    correct = 0
    for f in range(folds):
        test = fold == f
        if not test.any() or (~test).sum() == 0:
            continue
        net = fit_classifier(x[~test], y[~test], 2, epochs=200, seed=seed + f)
        correct += int((predict(net, x[test]) == y[test]).sum())
    return correct / (2 * n)


def _spread(values: list[float | None]) -> tuple[float, float] | None:
    """Mean and sd of C2ST draws, None where a side had too few takes."""
    kept = [v for v in values if v is not None]
    return (float(np.mean(kept)), float(np.std(kept))) if kept else None


def _per_take(hits: np.ndarray, takes: list[str]) -> np.ndarray:
    """Each performance's share of its windows recognised."""
    takes_a = np.asarray(takes)
    return np.array([hits[takes_a == t].mean() for t in np.unique(takes_a)])


def _by_take(hits: np.ndarray, takes: list[str]) -> float:
    """Mean over performances of each one's share of windows recognised: a take of 52 windows,
    its genre told 1 % of the time, weighed as much as a fifth of funk's 250 windows when
    windows were counted."""
    return float(_per_take(hits, takes).mean())


def _ratio_interval(gen_hits: np.ndarray, real_hits: np.ndarray, takes: list[str], seed: int = 0,
                    level: float = 0.9) -> tuple[float, float] | None:
    """The `level` interval of generated / real (performance-weighted) style accuracy, resampling
    real performances and generated grooves; None with fewer than MIN_TAKES performances. A
    resample whose real rate is under MIN_RATE has no finite ratio: past the share of those,
    the upper end is inf (jazz's 0 % takes are a sixteenth of its resamples)."""
    per_take = _per_take(real_hits, takes)
    if len(per_take) < MIN_TAKES:
        return None
    rng = np.random.default_rng(seed)
    real = per_take[rng.integers(0, len(per_take), (BOOTSTRAP, len(per_take)))].mean(1)
    gen = gen_hits[rng.integers(0, len(gen_hits), (BOOTSTRAP, len(gen_hits)))].mean(1)
    ratios = np.where(real >= MIN_RATE, gen / np.maximum(real, MIN_RATE), np.inf)
    low, high = np.quantile(ratios, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")  # inf, not nan
    return float(low), float(high)


# --- the evaluation ----------------------------------------------------------------------------
@dataclass
class RealGrooves:
    windows: dict[str, dict[str, list[list[Note]]]]  # split -> genre -> windows
    tempos: dict[str, list[float]]  # genre -> its test takes' tempos: the conditions generation is asked in
    takes: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # split -> genre -> each window's performance
    train_odd: list[list[Note]] = field(default_factory=list)  # the train split's windows from bar 2, 4, ...:
                                                               # a copy of bars 2-3 is a copy too


def performance(take_id: str) -> str:
    """What a statistic counts as one real groove: a take, but the four drummers' takes of one
    of GMD's `eval_session` grooves (40 of the test split's 77 4/4 beats) are one groove: each
    played the same part, their rates go together (soul's groove 3: 0 % in all four), and
    counted as four they made pop's one groove four takes."""
    parts = take_id.split("/")  # drummer/session/number
    return f"eval_session/{parts[-1]}" if len(parts) == 3 and parts[1] == "eval_session" else take_id


def real_grooves(data: Path) -> RealGrooves:
    windows: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    takes: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    train_odd: list[list[Note]] = []
    tempos = defaultdict(list)
    for row in read_index(data):
        if row["beat_type"] != "beat" or row["time_signature"] != "4-4":
            continue
        genre = row["style"].split("/")[0]
        groove = midifile.read(data / row["midi_filename"])
        notes = [Note(kit.to_canonical(n.pitch), n.start, n.duration, n.velocity) for n in groove.notes]
        cut = windows_of(notes, groove.length)
        windows[row["split"]][genre] += cut
        takes[row["split"]][genre] += [performance(row["id"])] * len(cut)
        if row["split"] == "train":
            train_odd += windows_of(notes, groove.length, first=BAR)
        if row["split"] == "test" and cut:
            tempos[genre].append(float(row["bpm"]))
    return RealGrooves(windows, dict(tempos), takes, train_odd)


def likelihood(path: Path, data: Path, cache_dir: Path) -> dict[str, dict]:
    model, vocab, meta = checkpoint.load(path)
    _, performances = load_dataset(data, cache_dir, vocab=vocab)  # its own merges: no BPE fitted anew
    cfg = TrainConfig(batch_size=16, block_size=model.config.block_size)
    out = {}
    for split in ("validation", "test"):
        windows = evaluation_windows([p for p in performances if p.split == split], vocab, cfg.block_size)
        out[split] = evaluate(model, windows, vocab, cfg, torch.device("cpu"))
    return out


def quality(generator: Generator, real: RealGrooves, per_genre: int, temperature: float, guidance: float,
            seed: int = 0, focus: int = 1, strength: float | None = None, top_p: float = GrooveRequest.top_p) -> dict:
    genres = [g for g, w in real.windows["test"].items() if len(w) >= MIN_REAL_WINDOWS and g in real.windows["train"]]
    if not genres:  # a dataset of a few takes (a test's): nothing to compare with
        raise ValueError(f"no genre has {MIN_REAL_WINDOWS} or more 2-bar 4/4 beat windows in the test split "
                         "and any in the train split: point --data at the Groove MIDI Dataset")
    genres.sort(key=lambda g: -len(real.windows["test"][g]))
    generated, valid, total = {}, 0, 0
    for i, genre in enumerate(genres):
        batch = VARIATIONS_RANGE[1] // focus  # variations x focus rows, as many as a request may have
        grooves = []
        for b in range(math.ceil(per_genre / batch)):  # each batch at the tempo of the genre's test takes in turn
            request = GrooveRequest(style=genre, bars=WINDOW_BARS, tempo=real.tempos[genre][b % len(real.tempos[genre])],
                                    kind="beat", variations=batch, temperature=temperature, top_p=top_p,
                                    strength=strength, guidance=guidance, focus=focus, seed=seed + 1000 * i + batch * b)
            grooves += [p.notes for p in generator.generate([request])[0]]
        total += len(grooves)
        kept = loop_windows(grooves)
        valid += len(kept)
        generated[genre] = kept[:per_genre]

    # style classifier, trained on the train split's grooves of the evaluated genres
    train_x = [features(w) for g in genres for w in real.windows["train"][g]]
    train_y = [k for k, g in enumerate(genres) for _ in real.windows["train"][g]]
    style = [fit_classifier(np.array(train_x), np.array(train_y), len(genres), seed=s) for s in range(STYLE_SEEDS)]

    train_grids = {grid(w).tobytes() for g in real.windows["train"] for w in real.windows["train"][g]}
    train_grids |= {grid(w).tobytes() for w in real.train_odd}  # every 2 bars of training data, from any bar

    rows = []
    for k, genre in enumerate(genres):
        real_w, gen_w = real.windows["test"][genre], generated[genre]
        real_d = np.array([descriptors(w) for w in real_w])
        gen_d = np.array([descriptors(w) for w in gen_w])
        real_f, gen_f = np.array([features(w) for w in real_w]), np.array([features(w) for w in gen_w])
        val_w = real.windows["validation"].get(genre, [])
        val_f = np.array([features(w) for w in val_w])
        train_f = np.array([features(w) for w in real.windows["train"][genre]])
        test_takes = real.takes["test"][genre]
        size = min(len(real_f), len(gen_f), len(train_f))  # both C2STs alike (soul has 143 train windows)
        gen_c2st = [c2st(real_f, gen_f, seed=s, takes_a=test_takes, size=size) for s in range(C2ST_SEEDS)]
        real_c2st = [c2st(real_f, train_f, seed=s, takes_a=test_takes, takes_b=real.takes["train"][genre],
                          size=size) for s in range(C2ST_SEEDS)]  # what the model learned from, told from test
        held_f = np.concatenate([real_f, val_f]) if val_w else real_f
        held_takes = test_takes + real.takes["validation"].get(genre, [])
        real_hits = np.mean([predict(net, held_f) == k for net in style], axis=0)  # per window: test, then validation
        gen_hits = np.mean([predict(net, gen_f) == k for net in style], axis=0)
        rows.append({
            "genre": genre,
            "real": len(real_w),
            "generated": len(gen_w),
            "oa": {d: overlap_area(real_d[:, j], gen_d[:, j]) for j, d in enumerate(DESCRIPTORS)},
            "c2st": _spread(gen_c2st),  # each generated groove its own take
            "c2st_real": _spread(real_c2st),
            "takes": len(set(test_takes)),
            "held_takes": len(set(held_takes)),
            "style_real": _by_take(real_hits[: len(real_w)], test_takes),
            "style_held_out": _by_take(real_hits, held_takes),
            "style_generated": float(gen_hits.mean()),
            "style_interval": _ratio_interval(gen_hits, real_hits[: len(real_w)], test_takes, seed=k),
            "copied_generated": float(np.mean([grid(w).tobytes() in train_grids for w in gen_w])),
            "copied_real": float(np.mean([grid(w).tobytes() in train_grids for w in real_w])),
        })
    return {"genres": rows, "validity": valid / max(total, 1), "patterns": total}


CONTROL_VALUES = (0.0, 0.25, 0.5, 0.75, 1.0)
CONTROL_GENRES = ("rock", "funk", "hiphop", "jazz", "latin")


def controls(generator: Generator, real: RealGrooves, per_genre: int = 16, seed: int = 0,
             values: tuple[float, ...] = CONTROL_VALUES, focus: int = 1, strength: float | None = None) -> dict:
    """What `density` and `complexity` do, one swept with the other left open, over a few genres
    at their test takes' median tempo: mean hits per bar (density) and share of hits on off-8th 16ths
    (complexity, the measure its training labels were made from; daemon/data.py). Each value
    is set on its own quintile of the training bars, so the reference is that quintile's range."""
    vocab = generator.vocab
    out: dict[str, list] = {"density": [], "complexity": []}
    for control, measure in (("density", DESCRIPTORS.index("density")), ("complexity", DESCRIPTORS.index("syncopation"))):
        edges = vocab.density_edges if control == "density" else vocab.complexity_edges
        for value in values:
            requests = [GrooveRequest(style=g, bars=WINDOW_BARS, kind="beat",
                                      tempo=float(np.median(real.tempos.get(g, [120.0]))),
                                      variations=per_genre, seed=seed + 1000 * i, focus=focus, strength=strength,
                                      **{control: value})
                        for i, g in enumerate(CONTROL_GENRES)]
            level = getattr(generator.conditions(requests[0]), control)  # the quintile the value asks for
            grooves = [p.notes for patterns in generator.generate(requests) for p in patterns]
            measured = [descriptors(w)[measure] for w in loop_windows(grooves)]
            low = edges[level - 1] if level > 0 else None
            high = edges[level] if level < len(edges) else None
            out[control].append({"value": value, "mean": float(np.mean(measured)), "sd": float(np.std(measured)),
                                 "level": (low, high)})
    return out


def controls_table(result: dict) -> str:
    def span(level: tuple, digits: int) -> str:
        low, high = (None if v is None else f"{v:.{digits}f}" for v in level)
        return f"< {high}" if low is None else f">= {low}" if high is None else f"{low}-{high}"

    lines = ["| value | density: hits per bar | its training quintile | complexity: off-8th share | its training quintile |",
             "|---|---|---|---|---|"]
    for d, c in zip(result["density"], result["complexity"]):
        lines.append(f"| {d['value']:.2f} | {d['mean']:.1f} ± {d['sd']:.1f} | {span(d['level'], 0)} | "
                     f"{c['mean']:.2f} ± {c['sd']:.2f} | {span(c['level'], 2)} |")
    return "\n".join(lines)


def _interval_text(interval: tuple[float, float] | None, performances: int) -> str:
    """The style ratio's interval as the table shows it (see _ratio_interval)."""
    if interval is None:
        return f"{performances} real groove{'s' * (performances != 1)}: too few"
    low, high = interval
    return "unbounded: real rate near 0" if low == np.inf else f"{low:.2f}-{'∞' if high == np.inf else f'{high:.2f}'}"


def table(result: dict) -> str:
    """The per-genre table. "generated / real" is the style accuracy of generated grooves as a share
    of real ones' (each real groove weighed alike, `performance`): the product's bar is 0.95 (a
    genre whose real grooves are recognised under MIN_RATE of the time has none), against the
    test split's grooves ("test", with its 90 % interval over resampled real grooves and
    generated ones) and all held-out ones, test and validation ("held out"); none with fewer
    than MIN_TAKES real grooves. The C2STs are mean ± sd over C2ST_SEEDS draws: generated against
    test, and train against test (the data the model learned from, as many windows), the C2ST a
    model that played its training data would score."""
    lines = ["| genre | test grooves / windows / generated | mean OA | C2ST generated vs test | C2ST train vs test | "
             "style acc. real: test | held out | style acc. generated | generated / real: test (90 % interval) | "
             "held out | copied (generated) | copied (real) |", "|" + "---|" * 12]
    share = lambda generated, real: "–" if real < MIN_RATE else f"{generated / real:.2f}"  # noqa: E731
    spread = lambda v: "–" if v is None else f"{v[0]:.2f} ± {v[1]:.2f}"  # noqa: E731
    for r in result["genres"]:
        interval = _interval_text(r["style_interval"], r["takes"])
        held_out = (share(r["style_generated"], r["style_held_out"]) if r["held_takes"] >= MIN_TAKES
                    else "too few grooves")
        lines.append(f"| {r['genre']} | {r['takes']} / {r['real']} / {r['generated']} | "
                     f"{np.mean(list(r['oa'].values())):.2f} | {spread(r['c2st'])} | {spread(r['c2st_real'])} | "
                     f"{r['style_real']:.0%} | {r['style_held_out']:.0%} | {r['style_generated']:.0%} | "
                     f"{share(r['style_generated'], r['style_real'])} ({interval}) | "
                     f"{held_out} | "
                     f"{r['copied_generated']:.1%} | {r['copied_real']:.1%} |")
    rows = result["genres"]
    lines += ["", "| descriptor | OA (mean over genres) |", "|---|---|"]
    lines += [f"| {d} | {np.mean([r['oa'][d] for r in rows]):.2f} |" for d in DESCRIPTORS]
    lines += ["", f"validity: {result['validity']:.1%} of {result['patterns']} generated patterns have every bar "
              "played (that every token sequence decodes, inside the clip, one hit a piece at a time, is the "
              "grammar's: tests/daemon/test_generate.py holds 1,000 random requests to it)"]
    return "\n".join(lines)


def run(path: Path, data: Path = DEFAULT_DATA, cache_dir: Path = Path(".cache"), per_genre: int = 64,
        temperature: float = 1.0, strength: float | None = None, guidance: float = 1.0, focus: int = 1,
        nll: bool = True, top_p: float = GrooveRequest.top_p) -> Iterator[str]:
    """The report, part by part as each is measured: the likelihoods are not lost when the data
    has too few real grooves to judge generated ones by (the part after them refuses)."""
    random.seed(0)
    if nll:
        for split, m in likelihood(path, data, cache_dir).items():
            yield (f"{split} NLL: {m['nll_token']:.4f} nats/token, {m['nll_note']:.4f} nats/note ({m['tokens']} tokens)"
                   if m["tokens"] else f"{split} NLL: none, {data} has no {split}-split performances")
    generator = Generator.load(path, "auto")
    real = real_grooves(data)
    yield table(quality(generator, real, per_genre, temperature, guidance, focus=focus, strength=strength, top_p=top_p))
    yield controls_table(controls(generator, real, focus=focus, strength=strength))
