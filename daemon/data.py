"""The Groove MIDI Dataset as training windows.

Each performance is tokenized once (and cached); a training example is a window that starts
at a random bar, prefixed by that performance's conditions. Density and complexity labels
are measured on the bars the window covers, so a request can ask for them later.
"""

from __future__ import annotations

import csv
import hashlib
import logging
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


def read_index(data: Path) -> list[dict]:
    index = data / "info.csv"
    if not index.is_file():
        raise FileNotFoundError(f"{index} not found: point --data at the Groove MIDI Dataset folder")
    with index.open(newline="") as f:
        return list(csv.DictReader(f))


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
    parts = (CACHE_VERSION, TOKENIZER_CONFIG, BPE_VOCAB_SIZE, [r["midi_filename"] for r in rows])
    key = hashlib.sha256(repr(parts if given is None else (*parts, given)).encode())
    cache = cache_dir / f"gmd-{key.hexdigest()[:16]}.pt"
    if cache.is_file():
        saved = torch.load(cache, weights_only=True)
        vocab = Vocabulary.from_dict(saved["vocab"])
        return vocab, [Performance(**p) for p in saved["performances"]]

    import symusic

    if vocab is None:
        vocab = Vocabulary.build([data / r["midi_filename"] for r in rows if r["split"] == "train"])
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
    torch.save({"vocab": vocab.to_dict(), "performances": [vars(p) for p in performances]}, cache)
    return vocab, performances


class WindowSampler:
    """Random bar-aligned windows with conditioning dropout and musically safe augmentation.

    Augmentation works on unmerged REMI tokens (a merged token hides its velocities and
    pitches), then the window is BPE-merged and cut to the block size.
    """

    def __init__(self, performances: list[Performance], vocab: Vocabulary, block_size: int,
                 drop_slot: float = 0.2, drop_all: float = 0.1, augment: bool = True, seed: int = 0,
                 genre_balance: float = 0.0) -> None:
        self.performances = performances
        self.vocab = vocab
        self.block_size = block_size
        self.drop_slot, self.drop_all, self.augment = drop_slot, drop_all, augment
        self.rng = random.Random(seed)
        if not 0.0 <= genre_balance <= 1.0:
            raise ValueError(f"genre_balance must be 0..1, got {genre_balance}")
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

    def window(self, p: Performance, first_bar: int, augment: bool) -> tuple[list[int], range]:
        """Merged ids of the window starting at `first_bar`, and the bars it covers."""
        start = p.bar_starts[first_bar]
        base = p.ids[start : start + 3 * self.block_size].tolist()  # BPE merges ~1.7x
        if augment:
            base = self._augment(base)
        merged = self.vocab.merge(base)[: self.block_size - len(SLOTS)]
        bars = sum(1 for t in merged if self.vocab.pieces[t][0] == "Bar_None")
        return merged, range(first_bar, first_bar + max(bars, 1))

    def sample(self) -> list[int]:
        p = self.rng.choices(self.performances, weights=self.weights)[0]
        body, bars = self.window(p, self.rng.randrange(len(p.bar_starts)), self.augment)
        cond = p.conditions(bars, self.vocab)
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
