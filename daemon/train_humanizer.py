"""Training the humanizer (daemon/humanize.py) on the Groove MIDI Dataset: `drumigen train-humanizer`.

Data: GMD's train split (beats and fills); the validation split picks the epoch; the test
split is only for benchmarks/eval_humanize.py. Each performance is quantised to the 16th
grid, the input a producer would have; the targets are what the drummer played.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from daemon import checkpoint, kit, midifile
from daemon.data import DEFAULT_DATA, read_index
from daemon.humanize import (
    BUNDLED_HUMANIZER, GHOST_PITCH, GHOST_VELOCITY, NEVER_VARIED, PIECES, Humanizer, HumanizerConfig, HumanizerNet,
    accented, feature_slices, features, genre_index, ghost_candidates, laplace_nll, laplace_std, level_groups,
    level_means, make_grid, nearest_steps, piece_index,
)
from daemon.vocab import NOTE_DURATION
from shared.notes import Note

log = logging.getLogger(__name__)


# --- data -------------------------------------------------------------------------------------------
@dataclass
class Performance:
    """One GMD file in the canonical kit, with the conditions a request would give."""

    pitches: np.ndarray  # canonical
    starts: np.ndarray  # beats
    velocities: np.ndarray
    genre: int
    tempo: float
    meter: tuple[int, int]
    length: float
    kind: str  # beat or fill

    def notes(self) -> list[Note]:
        return [Note(int(p), float(s), NOTE_DURATION, int(v))
                for p, s, v in zip(self.pitches, self.starts, self.velocities)]


def load_performances(data: Path, split: str) -> list[Performance]:
    """Every performance of one GMD split, read with daemon.midifile."""
    found = []
    for row in read_index(data):
        if row["split"] != split:
            continue
        groove = midifile.read(data / row["midi_filename"])
        pitches = np.array([kit.to_canonical(n.pitch) for n in groove.notes])
        found.append(Performance(pitches, np.array([n.start for n in groove.notes]),
                                 np.array([n.velocity for n in groove.notes], dtype=np.float64),
                                 genre_index(row["style"]), groove.tempo, groove.meter, groove.length,
                                 row["beat_type"]))
    return found


def examples(performances: list[Performance], config: HumanizerConfig) -> dict[str, np.ndarray]:
    """Training rows: every note of each quantised performance, and every free 16th as a ghost candidate.

    Notes show their played velocity (training hides it on a share of rows); ghost candidates
    see the performance without its ghost notes, as a producer's clip would be.
    """
    note_x, note_y, note_at, ghost_x, ghost_y = [], [], [], [], []
    for index, perf in enumerate(performances):
        notes = perf.notes()
        grid = make_grid(notes, perf.genre, perf.tempo, perf.meter, perf.length)
        note_x.append(features(grid, grid.steps, grid.pieces, grid.velocities, config))
        note_y.append(np.stack([perf.starts * 4 - grid.steps, perf.velocities / 127], 1))
        note_at.append(np.stack([np.full(len(notes), index), grid.steps], 1))
        ghost = (perf.pitches == GHOST_PITCH) & (perf.velocities < GHOST_VELOCITY)
        main = make_grid([n for n, g in zip(notes, ghost) if not g], perf.genre, perf.tempo, perf.meter, perf.length)
        free = ghost_candidates(main)
        ghost_x.append(features(main, free, np.full(len(free), PIECES.index(GHOST_PITCH)), None, config))
        first_ghost = {}  # step -> the first ghost note on it
        for i in reversed(np.flatnonzero(ghost)):
            first_ghost[int(grid.steps[i]) % grid.total] = i
        y = np.zeros((len(free), 3))
        for row, step in enumerate(free):
            if (i := first_ghost.get(int(step))) is not None:
                y[row] = (1, perf.starts[i] * 4 - grid.steps[i], perf.velocities[i] / 127)
        ghost_y.append(y)
    return {"note_x": np.concatenate(note_x), "note_y": np.concatenate(note_y), "note_at": np.concatenate(note_at),
            "ghost_x": np.concatenate(ghost_x), "ghost_y": np.concatenate(ghost_y)}


# --- training ---------------------------------------------------------------------------------------
def _mask(x: torch.Tensor, cols: dict[str, slice], generator: torch.Generator, velocity_rate: float | None,
          no_genre_rate: float) -> torch.Tensor:
    """Hide the played velocity (and the genre) on a share of rows, as a flat or style-less clip would.

    Works on normalised rows: velocity and genre columns are left unnormalised for that.
    """
    x = x.clone()
    n = len(x)
    if velocity_rate is not None:
        hide = torch.rand(n, generator=generator) >= velocity_rate
        x[hide, cols["velocity"]] = 0
    no_genre = torch.rand(n, generator=generator) < no_genre_rate
    x[no_genre, cols["genre"]] = 0
    x[no_genre, cols["genre"].stop - 1] = 1
    return x


def _losses(net: HumanizerNet, note_x: torch.Tensor, note_y: torch.Tensor, ghost_x: torch.Tensor,
            ghost_y: torch.Tensor, played: torch.Tensor) -> dict[str, torch.Tensor]:
    """Laplace NLLs of offset and velocity, the ghost notes' BCE and their feel.

    A played velocity is kept as it is (see Humanizer.humanize), so rows that show it (`played`)
    teach timing only: their velocity target would be the input itself.
    """
    note, _ = net(note_x)
    _, ghost = net(ghost_x)
    real = ghost_y[:, 0]
    return {"offset": laplace_nll(note_y[:, 0], note[:, 0], note[:, 1]),
            "velocity": laplace_nll(note_y[:, 1], note[:, 2], note[:, 3], (~played).float()),
            "ghost": F.binary_cross_entropy_with_logits(ghost[:, 0], real),
            "ghost feel": 0.1 * (laplace_nll(ghost_y[:, 1], ghost[:, 1], ghost[:, 2], real)
                                 + laplace_nll(ghost_y[:, 2], ghost[:, 3], ghost[:, 4], real))}


def noise_structure(u: np.ndarray, at: np.ndarray) -> list[float]:
    """How a drummer's deviations from the model's location hang together, for sampling.

    u: standardised residuals; at: (file, 16th step) of each. Returns [shared, decay]: the
    correlation of two hits on one 16th, and how much of that shared part carries on to the
    next 16th (the AR(1) coefficient of Humanizer._walk).
    """
    order = np.lexsort((at[:, 1], at[:, 0]))
    u, at = u[order], at[order]
    same = (at[1:] == at[:-1]).all(1)
    shared = float(np.clip(np.corrcoef(u[1:][same], u[:-1][same])[0, 1], 0.0, 0.95))
    first = np.r_[True, ~same]  # one hit per (file, step)
    u, at = u[first], at[first]
    nxt = (at[1:, 0] == at[:-1, 0]) & (at[1:, 1] == at[:-1, 1] + 1)
    carried = float(np.corrcoef(u[1:][nxt], u[:-1][nxt])[0, 1])
    return [round(shared, 4), round(float(np.clip(carried / max(shared, 1e-3), 0.0, 0.95)), 4)]


def level_fit(performances: list[Performance], head: np.ndarray, at: np.ndarray) -> list[float]:
    """[follow, scatter] for a clip programmed in accent levels, from takes the net was not fitted
    to (the validation split: on the train split's own velocities the slope came out 1.5x too
    steep), each programmed as `accented` says. Within a level (one piece's notes at one velocity
    in a take), how much of the model's unaccented dynamics `head` (its velocity location and
    scale per note, the velocity hidden) the drummers' velocities follow: the regression slope;
    and the share of the model's noise that then brings the spread within a level to the
    drummers'. The model's scatter, uncertain where the accents go, is wider than what is left
    once a level says so. With no level of two notes to learn from: no lilt, the whole noise."""
    loc, std = head[:, 2] * 127, laplace_std(head[:, 3]) * 127
    lilt, real, var = [np.zeros(0)], [np.zeros(0)], [np.zeros(0)]  # no takes: nothing learned
    for index, perf in enumerate(performances):
        rows = at[:, 0] == index
        pieces = np.array([piece_index(p) for p in perf.pitches])
        levels = accented(pieces, perf.velocities)
        groups = level_groups(levels, pieces)
        shared = np.bincount(groups)[groups] > 1  # a note alone at its level says nothing of the spread in it
        lilt.append((loc[rows] - level_means(loc[rows], levels, pieces))[shared])
        real.append((perf.velocities - level_means(perf.velocities, levels, pieces))[shared])
        var.append(std[rows][shared] ** 2)
    lilt, real, var = np.concatenate(lilt), np.concatenate(real), np.concatenate(var)
    if not lilt @ lilt > 0 or not var.sum() > 0:
        return [0.0, 1.0]
    follow = float(lilt @ real / (lilt @ lilt))
    scatter = float(np.sqrt(max(real @ real - follow**2 * (lilt @ lilt), 0.0) / var.sum()))
    return [round(follow, 4), round(scatter, 4)]


def repeat_spread(performances: list[Performance], min_pairs: int = 50) -> list[float]:
    """Per piece (PIECES, then "other"), how much a drummer's velocity on that piece at one place
    in the bar changes from one bar of a beat to the next, in /127: the robust std of those
    bar-to-bar differences (1.4826 times their median size; they centre on 0, as a drummer
    drifts neither way) over sqrt(2). Pieces with fewer than `min_pairs` pairs get
    the value of all pieces pooled. It is what `chance` leaves to Live's dice on every pass."""
    diffs: list[list[float]] = [[] for _ in range(len(PIECES) + 1)]
    for perf in performances:
        if perf.kind != "beat":
            continue
        per_bar = perf.meter[0] * 16 // perf.meter[1]
        first: dict[tuple[int, int, int], float] = {}  # (piece, bar, step in bar) -> velocity of its first hit
        for piece, step, velocity in zip(map(piece_index, perf.pitches), nearest_steps(perf.starts), perf.velocities):
            first.setdefault((piece, int(step) // per_bar, int(step) % per_bar), velocity)
        for (piece, bar, step), velocity in first.items():
            if (again := first.get((piece, bar + 1, step))) is not None:
                diffs[piece].append(again - velocity)

    def spread(d: list[float]) -> float:
        return float(1.4826 * np.median(np.abs(d)) / np.sqrt(2) / 127)

    pooled = spread([x for d in diffs for x in d])
    return [round(spread(d) if len(d) >= min_pairs else pooled, 4) for d in diffs]


def velocity_floor(performances: list[Performance], min_notes: int = 200) -> list[float]:
    """Per piece (PIECES, then "other"), the softest a drummer plays it, in /127: the 1st
    percentile of its velocities in beats and fills. Pieces with fewer than `min_notes` notes
    get 1/127, no floor. Humanize mirrors a sampled velocity under it back over it."""
    velocities: list[list[float]] = [[] for _ in range(len(PIECES) + 1)]
    for perf in performances:
        for piece, velocity in zip(map(piece_index, perf.pitches), perf.velocities):
            velocities[piece].append(velocity)
    return [round(float(np.percentile(v, 1)) / 127 if len(v) >= min_notes else 1 / 127, 4) for v in velocities]


def fit(train_set: list[Performance], val_set: list[Performance], config: HumanizerConfig) -> tuple[Humanizer, dict]:
    """Fit on `train_set`, keeping the epoch with the best loss on `val_set`; then measure on
    `train_set` how the drummers' deviations from the fitted locations hang together."""
    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        torch.manual_seed(config.seed)
        generator = torch.Generator().manual_seed(config.seed)
        train = {k: torch.from_numpy(v) for k, v in examples(train_set, config).items()}
        val = {k: torch.from_numpy(v) for k, v in examples(val_set, config).items()}
        everything = torch.cat([train["note_x"], train["ghost_x"]])
        mean, std = everything.mean(0), everything.std(0).clamp_min(NEVER_VARIED)
        del everything
        cols = feature_slices(config)
        mean[cols["velocity"]], std[cols["velocity"]] = 0.0, 1.0  # a hidden velocity stays exactly 0
        mean[cols["genre"]], std[cols["genre"]] = 0.0, 1.0  # and so does a hidden genre's one-hot
        for split in (train, val):
            for key in ("note_x", "ghost_x"):
                split[key] = (split[key] - mean) / std
            for key in ("note_y", "ghost_y"):
                split[key] = split[key].float()
        net = HumanizerNet(len(mean), config)
        opt = torch.optim.AdamW(net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        n_notes, n_ghost = len(train["note_x"]), len(train["ghost_x"])
        batches = max(1, n_notes // config.batch_size)
        ghost_batch = max(1, n_ghost // batches)
        val_x = [_mask(val["note_x"], cols, torch.Generator().manual_seed(0), rate, config.no_genre_rate)
                 for rate in (0.0, 1.0)]  # flat clips and played ones weigh the same
        best, best_state, best_epoch, history = math.inf, None, 0, []
        for epoch in range(config.epochs):
            net.train()
            for group in opt.param_groups:  # cosine decay over the epoch budget
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * epoch / config.epochs))
            notes = torch.randperm(n_notes, generator=generator)
            ghosts = torch.randperm(n_ghost, generator=generator)
            for b in range(batches):
                i = notes[b * config.batch_size:(b + 1) * config.batch_size]
                j = ghosts[b * ghost_batch:(b + 1) * ghost_batch]
                x = _mask(train["note_x"][i], cols, generator, config.known_velocity_rate, config.no_genre_rate)
                gx = _mask(train["ghost_x"][j], cols, generator, None, config.no_genre_rate)
                played = x[:, cols["velocity"].start] > 0
                loss = sum(_losses(net, x, train["note_y"][i], gx, train["ghost_y"][j], played).values())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            net.eval()
            with torch.no_grad():
                flat, played = (_losses(net, vx, val["note_y"], val["ghost_x"], val["ghost_y"],
                                        vx[:, cols["velocity"].start] > 0) for vx in val_x)
            parts = {**flat, "offset": (flat["offset"] + played["offset"]) / 2}
            val_loss = sum(parts.values()).item()
            history.append(round(val_loss, 4))
            log.info("humanizer epoch %d: validation loss %.4f (%s)", epoch + 1, val_loss,
                     ", ".join(f"{k} {v.item():.4f}" for k, v in parts.items()))
            if val_loss < best:
                best, best_epoch = val_loss, epoch + 1
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            elif epoch + 1 - best_epoch >= config.patience:
                break
        net.load_state_dict(best_state)
        net.eval()
        with torch.no_grad():
            val_note, _ = net(val_x[0])
            train_note, _ = net(_mask(train["note_x"], cols, generator, 0.0, 0.0))  # flat clips, genre given
            val_plain, _ = net(_mask(val["note_x"], cols, generator, 0.0, 0.0))  # the same, held out
        y = train["note_y"]
        u = ((y - train_note[:, [0, 2]]) * torch.exp(-train_note[:, [1, 3]].clamp(-7, 3))).numpy()
        noise = {name: noise_structure(u[:, k], train["note_at"].numpy())
                 for k, name in enumerate(("offset", "velocity"))}
        noise["repeat"] = repeat_spread(train_set)
        noise["levels"] = level_fit(val_set, val_plain.double().numpy(), val["note_at"].numpy())
        noise["floor"] = velocity_floor(train_set)
        meta = {"train_notes": n_notes, "train_ghost_steps": n_ghost, "val_notes": len(val["note_x"]),
                "best_epoch": best_epoch, "epochs_run": len(history), "val_loss": round(best, 4),
                "val_history": history,
                "val_offset_mae_16ths": round((val_note[:, 0] - val["note_y"][:, 0]).abs().mean().item(), 4),
                "val_velocity_mae": round(((val_note[:, 2] - val["note_y"][:, 1]).abs().mean() * 127).item(), 2)}
        return Humanizer(net, config, mean, std, noise, meta), meta
    finally:
        torch.set_num_threads(threads)


def train_humanizer(data: Path = DEFAULT_DATA, out: Path = BUNDLED_HUMANIZER,
                    config: HumanizerConfig | None = None) -> dict:
    """Read GMD's train and validation splits, fit, save to `out`; returns what it measured."""
    started = time.perf_counter()
    checkpoint.check_writable(out)  # now, not after the fit
    train_set, val_set = load_performances(data, "train"), load_performances(data, "validation")
    empty = [split for split, found in (("train", train_set), ("validation", val_set)) if not found]
    if empty:  # numpy's "need at least one array to concatenate" said it
        raise ValueError(f"{data / 'info.csv'} has no {' or '.join(empty)}-split performances: the humanizer "
                         "learns from the train split and picks its epoch on the validation split")
    read_s = time.perf_counter() - started
    humanizer, meta = fit(train_set, val_set, config or HumanizerConfig())
    meta.update(read_seconds=round(read_s, 1), seconds=round(time.perf_counter() - started, 1))
    humanizer.save(out)
    return meta
