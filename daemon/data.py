"""The Groove MIDI Dataset as training windows.

Each performance is tokenized once (and cached); a training example is a window that starts
at a random bar, prefixed by that performance's conditions. Density and complexity labels
are measured on the bars the window covers, so a request can ask for them later.

GMD is 1,138 takes in 4/4 and 12 in any other meter, so a model trained on it as it is learns
that a bar ends after four quarter notes, and leaves a 7/8 or 12/8 bar's last counts empty
(docs/model.md). Some windows of 4/4 takes are therefore replayed in another meter (`rebar`),
cut and joined the way a drummer fits a groove to one.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch

from daemon.vocab import BPE_VOCAB_SIZE, LEVELS, POSITIONS_PER_BEAT, SLOTS, TOKENIZER_CONFIG, Conditions, Vocabulary

log = logging.getLogger(__name__)

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets" / "groove"
SPLITS = ("train", "validation", "test")
CACHE_VERSION = 3  # bump when the cached fields change

# Meters a 4/4 window may be replayed in, and how often, relative to each other: those the
# product is asked for most (3/4, 6/8, 5/4, 7/8, 12/8) first.
REBAR_METERS = {
    (3, 4): 3, (6, 8): 3, (5, 4): 2, (7, 8): 2, (12, 8): 2, (5, 8): 1, (9, 8): 1, (2, 4): 1, (6, 4): 1,
    (7, 4): 1, (2, 2): 1, (3, 8): 0.5, (3, 2): 0.5, (1, 4): 0.25, (8, 4): 0.25, (4, 2): 0.25,
}  # fmt: skip
COMPOUND = {(3, 8), (6, 8), (9, 8), (12, 8)}  # counted in dotted quarters: a 4/4 beat becomes one


@dataclass
class Performance:
    name: str  # the MIDI path inside the dataset
    split: str
    genre: str
    drummer: str
    bpm: float
    meter: tuple[int, int]
    kind: str
    ids: torch.Tensor  # (N,) unmerged REMI ids, int16; merged per window after augmentation
    bar_starts: list[int]  # index of each Bar token in ids
    bar_notes: list[int]  # hits in each bar
    bar_offbeats: list[int]  # hits on the off-8th 16ths of each bar

    def conditions(self, bars: range, vocab: Vocabulary) -> Conditions:
        n = max(len(bars), 1)
        density = sum(self.bar_notes[b] for b in bars) / n
        hits = max(sum(self.bar_notes[b] for b in bars), 1)
        complexity = sum(self.bar_offbeats[b] for b in bars) / hits
        return Conditions(
            genre=self.genre,
            drummer=self.drummer,
            tempo=self.bpm,
            meter=self.meter,
            kind=self.kind,
            density=vocab.level(density, "density"),
            complexity=vocab.level(complexity, "complexity"),
        )


INDEX_COLUMNS = ("id", "drummer", "style", "bpm", "beat_type", "time_signature", "midi_filename", "split")


def read_index(data: Path) -> list[dict]:
    """info.csv's rows, each checked for what training and evaluation read from it: a column
    missing or a bpm that is no number was a KeyError or ValueError traceback mid-run."""
    index = data / "info.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: point --data at the Groove MIDI Dataset folder")
    with index.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in INDEX_COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise ValueError(f"{index} has no {', '.join(missing)} column{'s' * (len(missing) > 1)} "
                             f"(GMD's info.csv has {', '.join(INDEX_COLUMNS)})")
        rows = list(reader)
    for line, row in enumerate(rows, start=2):  # the header is line 1
        if None in row or None in row.values():  # csv's marks of a row with more fields, or fewer
            raise ValueError(f"{index} line {line} has {'more' if None in row else 'fewer'} fields than its header")
        try:
            if not (math.isfinite(float(row["bpm"])) and float(row["bpm"]) > 0):
                raise ValueError
            num, den = row["time_signature"].split("-")
            int(num), int(den)
        except (ValueError, AttributeError):
            raise ValueError(f"{index} line {line}: bpm {row['bpm']!r} and time_signature "
                             f"{row['time_signature']!r} must read as GMD's do (120, 4-4)") from None
    return rows


def bar_stats(ids: list[int], vocab: Vocabulary) -> tuple[list[int], list[int], list[int]]:
    """Bar starts, hits per bar and off-8th hits per bar, read off unmerged REMI ids."""
    starts, notes, offbeats = [], [], []
    position, sixteenth = 0, POSITIONS_PER_BEAT / 4
    for i, token in enumerate(ids):
        name = vocab.base_names[token]
        if name == "Bar_None":
            starts.append(i)
            notes.append(0)
            offbeats.append(0)
        elif name.startswith("TimeSig_"):
            sixteenth = POSITIONS_PER_BEAT * int(name.split("/")[1]) / 16
        elif name.startswith("Position_"):
            position = int(name.split("_")[1])
        elif name.startswith("PitchDrum_") and starts:
            notes[-1] += 1
            offbeats[-1] += round(position / sixteenth) % 2
    return starts, notes, offbeats


def levels_of(base_ids: list[int], vocab: Vocabulary) -> tuple[int, int] | None:
    """The density and complexity levels of bars of unmerged REMI ids, as training labels a
    window (Performance.conditions), over the bars that play: a bar of rest says nothing about
    how busy the playing is. None without a hit."""
    _, hits, offbeats = bar_stats(base_ids, vocab)
    played = [h for h in hits if h]
    if not played:
        return None
    return vocab.level(sum(played) / len(played), "density"), vocab.level(sum(offbeats) / sum(played), "complexity")


def condition_priors(performances: list[Performance], vocab: Vocabulary, window_bars: int = 2) -> dict:
    """genre -> [[drummer, kind, density level, complexity level, count], ...] over train windows.

    A request that names a genre but leaves the other controls open is completed by drawing
    them from here, so the model sees a prefix like the ones it trained on (a genre with a
    real drummer, density and complexity) rather than a rare `any` combination.
    """
    counts: dict[str, dict[tuple, int]] = {}
    for p in performances:
        for first in range(0, len(p.bar_starts), window_bars):
            c = p.conditions(range(first, min(first + window_bars, len(p.bar_starts))), vocab)
            key = (c.drummer, c.kind, c.density, c.complexity)
            genre = counts.setdefault(p.genre, {})
            genre[key] = genre.get(key, 0) + 1
    return {g: [[*k, n] for k, n in sorted(c.items())] for g, c in sorted(counts.items())}


def _quantile_edges(values: list[float], levels: int) -> list[float]:
    values = sorted(values)
    return [values[len(values) * k // levels] for k in range(1, levels)]


def load_dataset(data: Path, cache_dir: Path, limit: int | None = None,
                 vocab: Vocabulary | None = None) -> tuple[Vocabulary, list[Performance]]:
    """Tokenize every performance (or read the cache), with BPE merges and density/complexity
    levels fitted on the train split; or with a given `vocab` (a teacher's, daemon/train.py),
    whose merges and levels are kept, so its prompts mean what they meant to the teacher."""
    rows = read_index(data)
    if limit:  # a few files of each split, for tests and smoke runs
        rows = [r for s in SPLITS for r in [r for r in rows if r["split"] == s][:limit]]
    given = None if vocab is None else vocab.to_dict()
    # Every label the performances carry (a re-split or relabelled info.csv is a new dataset) and
    # each file's bytes (one edited in place, even to the same size: GMD's 1,150 files hash in ~20 ms).
    files = [(sorted(r.items()), hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None)
             for r in rows for path in [data / r["midi_filename"]]]
    parts = (CACHE_VERSION, TOKENIZER_CONFIG, BPE_VOCAB_SIZE, files)
    key = hashlib.sha256(repr(parts if given is None else (*parts, given)).encode())
    cache = cache_dir / f"gmd-{key.hexdigest()[:16]}.pt"
    if cache.is_file():
        try:
            saved = torch.load(cache, weights_only=True)
            return Vocabulary.from_dict(saved["vocab"]), [Performance(**p) for p in saved["performances"]]
        except Exception as exc:  # cut short by a Ctrl-C, or another version's layout: made again
            log.warning("tokenizing again: the cache %s could not be read (%s)", cache, exc)

    import symusic

    train_files = [data / r["midi_filename"] for r in rows if r["split"] == "train"]
    if not train_files:
        raise ValueError(f"{data / 'info.csv'} has no train-split performances to learn from")
    if vocab is None:
        vocab = Vocabulary.build(train_files)
    performances = []
    for row in rows:
        path = data / row["midi_filename"]
        try:
            ids = vocab.encode_score(symusic.Score(str(path)))
        except Exception as exc:  # one bad file must not sink a training run
            log.warning("skipping %s: %s", path, exc)
            continue
        starts, notes, offbeats = bar_stats(ids, vocab)
        if not starts:
            log.warning("skipping %s: no bars", path)
            continue
        num, den = row["time_signature"].split("-")
        performances.append(
            Performance(
                name=row["midi_filename"],
                split=row["split"],
                genre=row["style"].split("/")[0],
                drummer=row["drummer"],
                bpm=float(row["bpm"]),
                meter=(int(num), int(den)),
                kind=row["beat_type"],
                ids=torch.tensor(ids, dtype=torch.int16),
                bar_starts=starts,
                bar_notes=notes,
                bar_offbeats=offbeats,
            )
        )
    if given is None:
        train_bars = [(n, o) for p in performances if p.split == "train" for n, o in zip(p.bar_notes, p.bar_offbeats)]
        vocab.density_edges = _quantile_edges([n for n, _ in train_bars], LEVELS)
        vocab.complexity_edges = _quantile_edges([o / max(n, 1) for n, o in train_bars], LEVELS)
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(f".{os.getpid()}.tmp")  # a whole file or none: a run stopped mid-write,
    torch.save({"vocab": vocab.to_dict(), "performances": [vars(p) for p in performances]}, partial)
    partial.replace(cache)                               # or torchrun's ranks writing at once
    return vocab, performances


class WindowSampler:
    """Random bar-aligned windows with conditioning dropout and musically safe augmentation.

    Augmentation works on unmerged REMI tokens (a merged token hides its velocities and
    pitches), then the window is BPE-merged and cut to the block size.
    """

    def __init__(self, performances: list[Performance], vocab: Vocabulary, block_size: int,
                 drop_slot: float = 0.2, drop_all: float = 0.1, augment: bool = True, seed: int = 0,
                 genre_balance: float = 0.0, rebar: float = 0.0) -> None:
        self.performances = performances
        self.vocab = vocab
        self.block_size = block_size
        self.drop_slot, self.drop_all, self.augment = drop_slot, drop_all, augment
        self.rng = random.Random(seed)
        for name, value in (("genre_balance", genre_balance), ("rebar", rebar)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be 0..1, got {value}")
        self.rebar = rebar  # the share of 4/4 windows replayed in another meter (module docstring)
        self.meters = [m for m in REBAR_METERS if m in vocab.meters] if rebar else []
        # A short fill weighs like a few bars, so fills are seen, not drowned by long beats.
        weights = [len(p.bar_starts) + 3 for p in performances]
        # With genre_balance a, a genre is drawn in proportion to its bars ** (1 - a): 0 keeps the
        # data's balance, 1 draws every genre alike, so a rare genre's token is learned from more looks.
        genre_bars = Counter()
        for p, w in zip(performances, weights):
            genre_bars[p.genre] += w
        self.weights = [w * genre_bars[p.genre] ** -genre_balance for p, w in zip(performances, weights)]
        base = vocab.base_vocab
        self.velocity_ids = [i for t, i in sorted(base.items(), key=lambda kv: kv[1]) if t.startswith("Velocity_")]
        # crash 1 <-> crash 2, ride <-> ride 2: another cymbal of the same kind, same style
        self.swaps = [(base["PitchDrum_49"], base["PitchDrum_57"]), (base["PitchDrum_51"], base["PitchDrum_59"])]

    def window(self, p: Performance, first_bar: int, augment: bool,
               meter: tuple[int, int] | None = None) -> tuple[list[int], range]:
        """Merged ids of the window starting at `first_bar` (replayed in `meter`, if given), and
        the take's bars it covers."""
        start = p.bar_starts[first_bar]
        base = p.ids[start : start + 3 * self.block_size].tolist()  # BPE merges ~1.7x
        per_bar = 1  # the window's bars per bar of the take
        if meter is not None:
            base = rebar(base, meter, self.vocab)
            per_bar = replayed_bars(meter)
        if augment:
            base = self._augment(base)
        merged = self.vocab.merge(base)[: self.block_size - len(SLOTS)]
        bars = sum(1 for t in merged if self.vocab.pieces[t][0] == "Bar_None")
        return merged, range(first_bar, first_bar + max(-(-bars // per_bar), 1))

    def sample(self) -> list[int]:
        p = self.rng.choices(self.performances, weights=self.weights)[0]
        first = self.rng.randrange(len(p.bar_starts))
        meter = None
        if self.meters and p.meter == (4, 4) and self.rng.random() < self.rebar:
            meter = self.rng.choices(self.meters, weights=[REBAR_METERS[m] for m in self.meters])[0]
        body, bars = self.window(p, first, self.augment, meter)
        cond = p.conditions(bars, self.vocab)
        if meter is not None:
            cond = _replace(cond, meter=meter, tempo=rebar_tempo(cond.tempo, meter))
        if self.augment and self.rng.random() < 0.3:  # a small tempo change keeps the feel
            cond = _replace(cond, tempo=cond.tempo * self.rng.uniform(0.93, 1.07))
        if self.rng.random() < self.drop_all:
            cond = Conditions()
        else:
            cond = Conditions(**{s: None if self.rng.random() < self.drop_slot else getattr(cond, s) for s in SLOTS})
        return self.vocab.prefix(cond) + body

    def _augment(self, tokens: list[int]) -> list[int]:
        scale = self.rng.uniform(0.8, 1.2)  # a drummer playing softer or harder
        n = len(self.velocity_ids)
        table = {vid: self.velocity_ids[min(max(round((i + 1) * scale) - 1, 0), n - 1)]
                 for i, vid in enumerate(self.velocity_ids)}
        for a, b in self.swaps:
            if self.rng.random() < 0.5:
                table[a], table[b] = b, a
        return [table.get(t, t) for t in tokens]

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        return collate([self.sample() for _ in range(batch_size)], self.block_size, self.vocab.pad)


def rebar(ids: list[int], meter: tuple[int, int], vocab: Vocabulary) -> list[int]:
    """A stretch of unmerged 4/4 REMI ids (from a Bar on) as bars of `meter`.

    Shorter simple meters keep each bar's first counts (3/4: beats 1-3; 7/8: all but the last
    8th); longer ones add counts of the same bar (5/4: 1 2 3 4 3; 6/4: 1 2 3 4 3 4; 7/4:
    1 2 3 4 1 2 3). Compound meters take each quarter note as a dotted quarter (12/8: a bar;
    6/8: half a bar; 9/8: its first three beats; 3/8: one beat), swinging straight 16ths onto
    the triplet grid unless the stretch already plays on it. The tempo that keeps the same
    beats per minute is `rebar_tempo`. docs/model.md lists what this trained the shipped model
    on that a fix will change with the next training run (cuts at exact beat edges, a shuffle
    test that rarely fires).
    """
    names = vocab.base_names
    bars: list[list[tuple[int, int, int]]] = []  # per 4/4 bar: (position, pitch id, velocity id)
    position, pitch = 0, None
    for token in ids:
        name = names[token]
        if name == "Bar_None":
            bars.append([])
        elif name.startswith("Position_"):
            position = int(name[9:])
        elif name.startswith("PitchDrum_"):
            pitch = token
        elif name.startswith("Velocity_") and pitch is not None and bars:
            bars[-1].append((position, pitch, token))
            pitch = None
    q = POSITIONS_PER_BEAT
    out: list[list[tuple[int, int, int]]] = []
    if meter in COMPOUND:
        warp = not _on_triplets([h[0] for bar in bars for h in bar])
        beats = meter[0] // 3  # 4/4 beats per new bar: each is a dotted quarter
        for bar in bars:
            for first in range(0, replayed_bars(meter) * beats, beats):
                out.append([(3 * (b - first) * q + round(3 * _swing(p % q, warp)), k, v)
                            for p, k, v in bar if first <= (b := p // q) < first + beats])
    else:
        length = meter[0] * 4 * q // meter[1]  # the bar in 4/4 positions (24 per quarter)
        extra = max(0, length - 4 * q)
        since = 2 * q if extra <= 2 * q else 0  # where the added counts are copied from
        scale = meter[1] / 4  # positions per 4/4 position in this meter's beat
        for bar in bars:
            hits = [h for h in bar if h[0] < length]
            hits += [(p - since + 4 * q, k, v) for p, k, v in bar if since <= p < since + extra]
            out.append([(int(p * scale), k, v) for p, k, v in hits])
    base = vocab.base_vocab
    tokens = []
    for bar in out:
        tokens += [base["Bar_None"], base[f"TimeSig_{meter[0]}/{meter[1]}"]]
        seen, last = set(), -1
        for p, k, v in sorted(bar, key=lambda h: h[0]):  # stable: the take's order within a position
            if (p, k) in seen:
                continue
            seen.add((p, k))
            if p != last:
                tokens.append(base[f"Position_{p}"])
                last = p
            tokens += [k, v]
    return tokens


def replayed_bars(meter: tuple[int, int]) -> int:
    """How many bars of `meter` `rebar` makes of one 4/4 bar: 4 of 3/8, 2 of 6/8, else 1."""
    return 4 // (meter[0] // 3) if meter in COMPOUND else 1


def rebar_tempo(tempo: float, meter: tuple[int, int]) -> float:
    """A window's tempo in quarter notes per minute once replayed in `meter`: a compound meter
    plays each 4/4 beat as a dotted quarter, so its quarter notes are 1.5 times as fast."""
    return tempo * 1.5 if meter in COMPOUND else tempo


def _on_triplets(positions: list[int]) -> bool:
    """Whether a stretch's off-beat hits sit on the triplet grid (a shuffle) rather than on 16ths."""
    q = POSITIONS_PER_BEAT
    near = [min(abs(p % q - t) for t in (q / 3, 2 * q / 3)) < min(abs(p % q - s) for s in (q / 4, q / 2, 3 * q / 4))
            for p in positions if p % q]
    return len(near) >= 4 and sum(near) >= 0.75 * len(near)


def _swing(offset: int, warp: bool) -> float:
    """An offset inside a beat (of POSITIONS_PER_BEAT), swung when `warp`: the straight 8th moves
    to the third triplet, and what lies between moves with it."""
    q = POSITIONS_PER_BEAT
    if not warp:
        return offset
    return offset * 4 / 3 if offset <= q / 2 else 2 * q / 3 + (offset - q / 2) * 2 / 3


def _replace(cond: Conditions, **changes) -> Conditions:
    return Conditions(**{**vars(cond), **changes})


def collate(sequences: list[list[int]], block_size: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-token targets; padding and the prefix's own tokens are not predicted."""
    x = torch.full((len(sequences), block_size), pad, dtype=torch.long)
    y = torch.full((len(sequences), block_size), -1, dtype=torch.long)
    for row, seq in enumerate(sequences):
        seq = seq[: block_size + 1]
        x[row, : len(seq)] = torch.tensor(seq)
        y[row, : len(seq) - 1] = torch.tensor(seq[1:])
        y[row, : len(SLOTS) - 1] = -1
    return x, y


def evaluation_windows(performances: list[Performance], vocab: Vocabulary, block_size: int) -> list[list[int]]:
    """Consecutive, non-overlapping windows with full conditions: a fixed, comparable NLL set."""
    sampler = WindowSampler(performances, vocab, block_size, augment=False)
    windows = []
    for p in performances:
        first = 0
        while first < len(p.bar_starts):
            body, bars = sampler.window(p, first, augment=False)
            windows.append(vocab.prefix(p.conditions(bars, vocab)) + body)
            first = bars.stop
    return windows
