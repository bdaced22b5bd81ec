"""`humanize`: put a GMD drummer's feel into quantised drum notes.

Why learned: the style's average offset and velocity per 16th (the baseline in
benchmarks/eval_humanize.py) knows where in the bar a hit falls but not what is played
around it, yet how early a hat lands or how hard a snare hits depends on the pattern too.
A small MLP reads, per note: the genre, the piece, its place in the beat and in the bar,
the tempo, which pieces are hit a few 16ths either side, how busy the bar and the step are
and, when the clip has them, the note's own velocity. It predicts a Laplace distribution of
the real offset (in 16ths) and of the real velocity: the location is the feel (and the
best guess under absolute error), the scale is how loosely that drummer plays there, which
is what sampling draws from so the result is not robotic. A second head on the same trunk
gives, for every 16th without a snare, the chance of a soft snare ghost note there, with
its offset and velocity. daemon/train_humanizer.py trains it on GMD.
"""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from daemon import checkpoint, kit
from daemon.vocab import GENRES, NOTE_DURATION
from shared.notes import Note, bar_beats

log = logging.getLogger(__name__)

BUNDLED_HUMANIZER = Path(__file__).resolve().parent / "checkpoints" / "humanizer-gmd.pt"
FORMAT = "mididrumigen-humanizer"
FORMAT_VERSION = 4  # 2 added noise["repeat"] (behind `chance`); 3 noise["levels"] (accent_levels); 4 noise["floor"]
# A version-1 checkpoint humanizes without `chance`; 1 and 2 keep programmed accent levels as played.
READABLE_VERSIONS = (1, 2, 3, 4)

PIECES = tuple(kit.PIECE_NAMES)  # the canonical kit; any other pitch is one more "other" piece
GROUPS = (  # what the context features see: the pieces a drummer thinks in
    (36,), (38,), (37, 40), (42, 44), (46,), (51, 53, 59), (43, 45, 47, 48, 50), (49, 52, 55, 57),
)
GROUP_OF_PIECE = np.array([next((g for g, ps in enumerate(GROUPS) if p in ps), len(GROUPS)) for p in PIECES]
                          + [len(GROUPS)])
SNARES = tuple(sorted(kit.zones_of(38)))  # a step with any of these has no room for a ghost note
FIGURE_GROUP = {i: g for g, pitches in enumerate(kit.GROUPS.values()) for i, p in enumerate(PIECES) if p in pitches}
GHOST_PITCH = 38
GHOST_VELOCITY = 45  # GMD snare hits softer than this are ghost notes (the trough of its velocity histogram)
MAX_BAR_STEPS = 32  # position features a checkpoint has; those past TRAINED_BAR_STEPS are never set
TRAINED_BAR_STEPS = 16  # GMD plays 4/4 bars (and a few 3/4, 6/8): a longer bar is heard as such bars in a row
# GMD's train split plays 50-290 BPM. A clip outside is heard at the nearest of them, its timing
# kept in milliseconds: at 20 BPM, fed as it was, notes moved 81 ms on average (23 at 50 BPM).
TRAINED_TEMPOS = (50.0, 290.0)
END_MARGIN = 1 / 64  # beats: the latest start a note may get before the clip end
NEVER_VARIED = 1e-3  # a feature column whose std in training is no more than this never varied there
MIN_GHOST_CHANCE = 0.05  # with `chance`, rarer ghost notes are left out rather than cluttering the clip
FIGURE_OFFSET = 0.06  # 16ths (9 ms at 100 BPM): how far a stroke of a 32nd figure moves; the model's own
                      # spread there holds the 32nds' half-16th places (55 ms at 100 BPM, past the next stroke)
ONE_STROKE = 0.02  # beats: hits of one drum this near each other (a snare and its clap, played) are one stroke
FIGURE_REACH = 0.035  # beats: hits a 32nd apart, give or take this, are a 32nd figure: humanized, still (each
                      # moved at most FIGURE_OFFSET, 0.015); triplets, 1/6 and 1/12 of a beat apart, are not
MAX_OFFSET = 0.49  # 16ths: a hit moved no further stays nearer its own step (at 0.5 exactly, humanized
                   # again it was the next step's and doubled the hit there: 22 of 640 notes at 174 BPM)


@dataclass
class HumanizerConfig:
    context: int = 4  # 16ths either side whose hits the model sees
    hidden: int = 128
    layers: int = 2
    dropout: float = 0.1
    lr: float = 4e-3
    weight_decay: float = 1e-4
    batch_size: int = 2048
    epochs: int = 12
    patience: int = 4  # epochs without a better validation loss before stopping
    known_velocity_rate: float = 0.5  # share of training notes shown with their played velocity
    no_genre_rate: float = 0.1  # share shown without a genre, so `style=None` is learned too
    seed: int = 1337
    threads: int = 1


# --- clips on the 16th grid ----------------------------------------------------------------------
@dataclass
class Grid:
    """A clip the way the model sees it: hits on 16th steps, and what is known about them."""

    steps: np.ndarray  # (N,) int: each note's nearest 16th from the clip start
    pieces: np.ndarray  # (N,) int: index in PIECES, len(PIECES) for a pitch outside the kit
    velocities: np.ndarray  # (N,) float 1..127
    known: bool  # the velocities were played or shaped (not one flat value)
    genre: int  # index in GENRES, len(GENRES) for no style
    tempo: float
    meter: tuple[int, int]
    total: int  # 16ths in the clip


def piece_index(pitch: int) -> int:
    canonical = kit.to_canonical(pitch)
    canonical = kit.PLAYED_AS.get(canonical, canonical)  # other pitches are "other"
    return PIECES.index(canonical) if canonical in PIECES else len(PIECES)


def genre_index(style: str | None) -> int:
    """GMD's primary style ('funk/groove1' -> funk); None is 'any style'."""
    if not style:
        return len(GENRES)
    genre = style.split("/")[0].strip().lower()
    if genre not in GENRES:
        raise ValueError(f"unknown style {style!r}: use one of {', '.join(GENRES)}")
    return GENRES.index(genre)


def bar_steps(meter: tuple[int, int]) -> int:
    """16ths in one bar (at least one)."""
    return max(1, round(meter[0] * 16 / meter[1]))


def position_span(meter: tuple[int, int]) -> int:
    """16ths after which the position in the bar starts again, for the position and meter
    features. Positions the data never showed (a 7/4 bar's last 12 16ths) left the model guessing:
    it put a ghost note on nearly every free 16th and loosened the timing 3x. So a longer bar is
    read as bars the data has: 12/8 as two 6/8 bars, 7/4 as 4/4 and then 3/4."""
    per_bar = bar_steps(meter)
    if per_bar <= TRAINED_BAR_STEPS:
        return per_bar
    return 12 if compound(meter) else TRAINED_BAR_STEPS  # compound: dotted quarters


def compound(meter: tuple[int, int]) -> bool:
    """A meter counted in dotted quarters (3/8, 6/8, 9/8, 12/8)."""
    return meter[1] == 8 and meter[0] % 3 == 0


def meter_feature(meter: tuple[int, int]) -> tuple[float, bool]:
    """The meter features of a bar, as one of the two meters GMD plays: compound bars as 6/8,
    every other bar as 4/4 (and its bar positions as those of the first beats of one). A bar
    the data lacks, fed as itself, moved the ghost notes' chance by its length: on the same notes
    per free 16th 0.35 in 2/4, 0.27 in 3/4, 0.18 in 5/8, 0.02 in 7/8 and 0 in 3/8, against 0.13
    in 4/4 (GMD's 4/4 beats: 0.13; its five 3/4 takes: 0.16)."""
    return (0.75, True) if compound(meter) else (1.0, False)


GRIDS = (4, 8, 16, 3, 6, 12)  # per beat: 16ths, 32nds, 64ths, 8th, 16th and 32nd triplets
GRID_TOLERANCE = 1e-4  # beats: a programmed note sits on its grid to MIDI's tick, not a played one
TRIPLET_REACH = 0.02  # beats: a played note this close to a place only triplets have is near it


TRIPLET_PLACES = (1 / 6, 1 / 3, 2 / 3, 5 / 6)  # of the beat: where only triplets go


def near_a_triplet(start: float, reach: float) -> bool:
    """Whether a note lies within `reach` beats of a place only triplets have."""
    within = start - math.floor(start)
    return any(abs(within - place) < reach for place in TRIPLET_PLACES)


def triplet_beats(notes: list[Note]) -> set[int]:
    """The beats of a played clip that are played in triplets: two or more notes near a place only
    triplets have (1/6, 1/3, 2/3, 5/6 of the beat), none near the off-beat 16ths (1/4, 3/4). A
    16th groove humanized before has notes drifted near a triplet place now and then, one at a
    time; a triplet fill or a shuffle's beat has them in numbers."""
    triplet_only, sixteenth_only = {}, set()
    for n in notes:
        beat, within = math.floor(n.start), n.start - math.floor(n.start)
        if near_a_triplet(n.start, TRIPLET_REACH):
            triplet_only[beat] = triplet_only.get(beat, 0) + 1
        elif any(abs(within - place) < TRIPLET_REACH for place in (1 / 4, 3 / 4)):
            sixteenth_only.add(beat)
    return {beat for beat, count in triplet_only.items() if count >= 2 and beat not in sixteenth_only}


def in_a_32nd_figure(starts: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Per note, whether it is one of three or more strokes of one drum (kit.GROUPS: a snare and
    its rim are one) each a 32nd from the next, give or take FIGURE_REACH: a roll, a drag, trap
    hats. Hits of the drum at one time (a snare layered with a clap, ONE_STROKE) are one stroke. Two strokes
    are not enough: 16ths played loosely, one early and one late, come as near (a ghost note so
    taken moved into the next bar); flams, triplets and 16ths in time are further apart."""
    figure = np.zeros(len(starts), dtype=bool)
    drums = np.array([FIGURE_GROUP.get(p, -1) for p in pieces.tolist()])
    for drum in np.unique(drums[drums >= 0]):  # a piece of no group is never a figure
        mine = np.flatnonzero(drums == drum)
        order = np.argsort(starts[mine], kind="stable")
        ordered = starts[mine][order]
        begins = np.r_[True, np.diff(ordered) > ONE_STROKE]  # hits nearer than that are one stroke
        at = np.empty(len(mine), dtype=int)
        at[order] = np.cumsum(begins) - 1  # each note's stroke
        strokes = ordered[begins]
        apart = np.abs(np.diff(strokes) - 1 / 8) <= FIGURE_REACH  # each pair of neighbouring strokes
        run = np.zeros(len(strokes), dtype=bool)
        if len(apart) > 1:
            joined = np.r_[False, apart[:-1] & apart[1:], False]  # a stroke with a 32nd on both sides
            run = joined.copy()
            run[:-1] |= joined[1:]  # and the two it joins
            run[1:] |= joined[:-1]
        figure[mine] = run[at]
    return figure


def on_a_grid(start: float, grids: tuple[int, ...] = GRIDS) -> bool:
    """Whether a note sits on one of `grids` (per beat), as programmed notes do (a played one may
    too, by chance)."""
    return any(abs(start * g - round(start * g)) < GRID_TOLERANCE * g for g in grids)


def nearest_steps(starts: np.ndarray) -> np.ndarray:
    return np.floor(np.asarray(starts, dtype=np.float64) * 4 + 0.5).astype(np.int64)


MAX_LEVELS = 4  # velocities a programmed clip gives one piece at most (a played one has dozens)
SHARED_LEVELS = 0.9  # share of a programmed clip's notes at a velocity another note of their piece has too
ACCENTED_SHARE = 1 / 3  # how a take is programmed to fit noise["levels"]: each piece's loudest third accented


def accent_levels(velocities: np.ndarray, pieces: np.ndarray) -> bool:
    """Whether a clip's velocities are levels a producer programmed (notes at 100, accents at 127,
    a ghost note at 40) rather than played: per piece at most MAX_LEVELS values, and nearly every
    note at a value another note of its piece shares. Levels say where the accents go, not how a
    drummer plays them: humanize keeps them and adds the style's dynamics within each. Played
    velocities almost never look so (15 of 3,866 one- to four-bar windows of GMD's validation
    takes), nor do the model's own grooves (none of 288)."""
    if len(np.unique(velocities)) < 2:
        return False
    groups = np.bincount(level_groups(velocities, pieces))
    per_piece = np.bincount(np.unique(np.stack([pieces, velocities]), axis=1)[0].astype(np.int64))
    return per_piece.max() <= MAX_LEVELS and groups[groups > 1].sum() >= SHARED_LEVELS * len(velocities)


def level_bounds(levels: np.ndarray, pieces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per note, the softest and loudest velocity humanize may give it: up to halfway to the next
    level of its piece, so that no accent ever comes out softer than the notes it stands out from."""
    low, high = np.ones(len(levels)), np.full(len(levels), 127.0)
    for piece in np.unique(pieces):
        mask = pieces == piece
        values = np.unique(levels[mask])
        at = np.searchsorted(values, levels[mask])
        middle = (values[1:] + values[:-1]) / 2
        low[mask] = np.r_[1.0, np.ceil(middle + 0.5)][at]
        high[mask] = np.r_[np.floor(middle - 0.5), 127.0][at]
    return low.astype(np.int64), high.astype(np.int64)


def level_groups(levels: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Per note, the index of its (piece, velocity level) group."""
    return np.unique(np.stack([pieces, levels]), axis=1, return_inverse=True)[1].ravel()


def level_means(values: np.ndarray, levels: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """Per note, the mean of `values` over the notes of its piece at its velocity level."""
    groups = level_groups(levels, pieces)
    return (np.bincount(groups, values) / np.bincount(groups))[groups]


def accented(pieces: np.ndarray, velocities: np.ndarray) -> np.ndarray:
    """Per note, whether it is among its piece's loudest ACCENTED_SHARE of a take: where a producer
    programming the take would put the accents."""
    loud = np.zeros(len(velocities), dtype=bool)
    for piece in np.unique(pieces):
        mask = pieces == piece
        loud[mask] = velocities[mask] >= np.quantile(velocities[mask], 1 - ACCENTED_SHARE)
    return loud


def make_grid(notes: list[Note], genre: int, tempo: float, meter: tuple[int, int], length: float) -> Grid:
    velocities = np.array([n.velocity for n in notes], dtype=np.float64)
    return Grid(nearest_steps(np.array([n.start for n in notes])), np.array([piece_index(n.pitch) for n in notes]),
                velocities, bool(len(notes) and velocities.min() != velocities.max()), genre, float(tempo),
                tuple(meter), max(1, math.ceil(length * 4 - 1e-6)))


def feature_slices(config: HumanizerConfig) -> dict[str, slice]:
    """Where each kind of feature sits in a row (training masks some of them)."""
    sizes = {"genre": len(GENRES) + 1, "piece": len(PIECES) + 1, "beat": 4, "bar": MAX_BAR_STEPS, "meter": 2,
             "tempo": 2, "context": (2 * config.context + 1) * (len(GROUPS) + 1), "busy": 2, "velocity": 3}
    slices, at = {}, 0
    for name, size in sizes.items():
        slices[name] = slice(at, at + size)
        at += size
    return slices


def features(grid: Grid, steps: np.ndarray, pieces: np.ndarray, velocities: np.ndarray | None,
             config: HumanizerConfig) -> np.ndarray:
    """One row per query (a note, or a candidate ghost note) at `steps`, with the clip `grid` around it.

    `velocities` is None when the query notes have no velocity of their own to go by.
    """
    n = len(steps)
    cols = feature_slices(config)
    x = np.zeros((n, cols["velocity"].stop), dtype=np.float32)
    rows = np.arange(n)
    x[:, cols["genre"].start + grid.genre] = 1
    x[rows, cols["piece"].start + pieces] = 1
    x[rows, cols["beat"].start + steps % 4] = 1
    per_bar = bar_steps(grid.meter)
    span = position_span(grid.meter)
    x[rows, cols["bar"].start + steps % per_bar % span] = 1
    x[:, cols["meter"]] = meter_feature(grid.meter)
    x[:, cols["tempo"]] = (grid.tempo / 120, 120 / grid.tempo)
    # which groups are hit at each step around the query; the clip wraps, as a loop does
    hits = np.zeros((grid.total, len(GROUPS) + 1), dtype=np.float32)
    hits[grid.steps % grid.total, GROUP_OF_PIECE[grid.pieces]] = 1
    around = (steps[:, None] + np.arange(-config.context, config.context + 1)) % grid.total
    x[:, cols["context"]] = hits[around].reshape(n, around.shape[1] * hits.shape[1])
    bars = grid.steps // per_bar
    per_bar_count = np.bincount(bars, minlength=int(max(bars.max(initial=0), steps.max(initial=0) // per_bar)) + 1)
    per_step_count = np.bincount(grid.steps % grid.total, minlength=grid.total)
    x[:, cols["busy"]] = np.stack([per_bar_count[steps // per_bar] / per_bar,
                                   per_step_count[steps % grid.total] / 4], 1)
    if velocities is not None and grid.known:
        x[:, cols["velocity"]] = np.stack([np.ones(n), velocities / 127, _rank_in_piece(velocities, pieces)], 1)
    return x


def _rank_in_piece(velocities: np.ndarray, pieces: np.ndarray) -> np.ndarray:
    """0 for the clip's softest hit on that piece, 1 for its loudest (ties share a rank): the accents."""
    rank = np.full(len(velocities), 0.5)
    for p in np.unique(pieces):
        mask = pieces == p
        v = velocities[mask]
        ordered = np.sort(v)
        ties = np.searchsorted(ordered, v, "left") + np.searchsorted(ordered, v, "right") - 1
        rank[mask] = ties / 2 / max(len(v) - 1, 1)
    return rank


def ghosted_bars(notes: list[Note], grid: Grid) -> np.ndarray:
    """Bars that have ghost notes already (a snare, GM 38, softer than GHOST_VELOCITY beside a
    louder snare, side stick, rim or clap): an earlier press's, a fill's, the user's. They get no
    more, so pressing humanize again does not pile them up (2, 4, 8, ... 18 over 8 presses); the
    other bars still get theirs."""
    bars = grid.steps // bar_steps(grid.meter)
    soft = grid.velocities < GHOST_VELOCITY
    ghost = np.array([kit.to_canonical(n.pitch) == GHOST_PITCH for n in notes], dtype=bool) & soft
    backbeat = np.isin(np.array(PIECES + (-1,))[grid.pieces], SNARES) & ~soft
    return np.intersect1d(bars[ghost], bars[backbeat])


def ghost_candidates(grid: Grid) -> np.ndarray:
    """16th steps with no snare, side stick or rim hit: where a ghost note may go."""
    snare = np.isin(np.array(PIECES + (-1,))[grid.pieces], SNARES)
    free = np.ones(grid.total, dtype=bool)
    free[grid.steps[snare] % grid.total] = False
    return np.flatnonzero(free)


# --- the model --------------------------------------------------------------------------------------
class HumanizerNet(nn.Module):
    """An MLP trunk with two heads: a note's feel, and a ghost note at a free step.

    note head: offset location, log scale (16ths), velocity location, log scale (/127).
    ghost head: logit of a ghost note, then the same four numbers for it.
    """

    def __init__(self, n_features: int, config: HumanizerConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(config.layers):
            layers += [nn.Linear(width, config.hidden), nn.GELU(), nn.Dropout(config.dropout)]
            width = config.hidden
        self.trunk = nn.Sequential(*layers)
        self.note = nn.Linear(width, 4)
        self.ghost = nn.Linear(width, 5)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.note(h), self.ghost(h)


def laplace_std(log_scale: np.ndarray) -> np.ndarray:
    """The standard deviation of the head's Laplace, from its log scale b (clamped as in training):
    b * sqrt(2)."""
    return np.exp(np.clip(log_scale, -7, 3)) * np.sqrt(2)


def laplace_nll(y: torch.Tensor, loc: torch.Tensor, log_scale: torch.Tensor,
                weight: torch.Tensor | None = None) -> torch.Tensor:
    """Laplace rather than Gaussian: its location is the median, what an absolute error rewards,
    and micro-timing has heavy tails (flams, pushed fills). `weight` picks the rows that count."""
    log_scale = log_scale.clamp(-7, 3)
    nll = (y - loc).abs() * torch.exp(-log_scale) + log_scale
    if weight is None:
        return nll.mean()
    return (nll * weight).sum() / weight.sum().clamp_min(1)


# --- using it ---------------------------------------------------------------------------------------
class Humanizer:
    """The trained net with its feature normalisation and noise structure, ready to humanize clips."""

    def __init__(self, net: HumanizerNet, config: HumanizerConfig, mean: torch.Tensor, std: torch.Tensor,
                 noise: dict[str, list[float]], meta: dict) -> None:
        # A column that never varied in training (a piece GMD never plays: a clap, a shaker; a bar
        # position past a 4/4 bar) was kept at a scale of 1e-3, so one clap put 1,000 into the net
        # and threw every note near it to the clamp at 127: such a column keeps its own scale.
        std = torch.where(std <= NEVER_VARIED, torch.ones_like(std), std)
        self.net, self.config, self.mean, self.std = net.eval(), config, mean, std
        # noise: target -> [shared, decay] (train_humanizer.noise_structure), "repeat" -> per piece, "levels" -> level_fit's
        self.noise, self.meta = noise, meta

    @classmethod
    def load(cls, path: Path = BUNDLED_HUMANIZER) -> "Humanizer":
        state = checkpoint.read(path, "humanizer checkpoint")
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise ValueError(f"{path} is not a MidiDrumiGen humanizer checkpoint")
        if state.get("version") not in READABLE_VERSIONS:
            raise ValueError(f"{path} has humanizer format {state.get('version')}; this version reads "
                             f"{', '.join(map(str, READABLE_VERSIONS))}: retrain it with drumigen train-humanizer")
        try:
            config = HumanizerConfig(**state["config"])
            net = HumanizerNet(len(state["mean"]), config)
            net.load_state_dict(state["model"])
            return cls(net, config, state["mean"], state["std"], state["noise"], state["meta"])
        except (TypeError, KeyError, RuntimeError, AttributeError, ValueError) as err:  # fields or tensors that do not fit
            raise checkpoint.damaged(path, "humanizer checkpoint", err) from None

    def save(self, path: Path) -> None:
        checkpoint.write(path, {"format": FORMAT, "version": FORMAT_VERSION, "config": asdict(self.config),
                                "model": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
                                "mean": self.mean, "std": self.std, "noise": self.noise, "meta": self.meta})

    @torch.no_grad()
    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Raw head outputs (note, ghost) for feature rows."""
        note, ghost = self.net((torch.from_numpy(x) - self.mean) / self.std)
        return note.double().numpy(), ghost.double().numpy()

    def humanize(self, notes: list[Note], style: str | None, tempo: float, meter: tuple[int, int],
                 length: float | None = None, amount: float = 1.0, seed: int | None = None,
                 ghost_notes: bool = False, spread: float = 1.0, chance: bool = False) -> list[Note]:
        """The notes played with the learned feel of `style` (None: of GMD as a whole).

        amount 0..1 blends from the input (0: returned unchanged) to the full feel (1).
        spread scales the sampled looseness: 0 gives the model's most likely feel, no chance.
        A clip whose velocities were played keeps them, and they inform the timing (a soft hit
        sits differently from an accent); a flat clip gets the style's dynamics; one programmed
        in a few levels (accent_levels) keeps each level where it is, the style's dynamics added
        within it (its hats' lilt, its scatter), the levels informing the timing as played ones do.
        The i-th note returned is the i-th note given, pitch untouched; ghost notes (only with
        `ghost_notes`, and only in bars with a backbeat and without ghost notes: ghosted_bars) follow.
        Starts stay in [0, length); length defaults to the whole bars that cover the notes. In a
        programmed clip (most notes on a grid: 16ths, 32nds, triplets) each note keeps its
        placement plus the offset of its nearest 16th; in a played one (or one humanized before)
        a note around a 16th is placed at that 16th plus the offset, so humanizing twice does not
        drift twice as far. A note on a triplet place (written so, or played so in a beat played
        in triplets) keeps its swing and gets the scatter only. Hits of one pitch keep their order
        and stay apart (kept_apart). Same input and seed, same output.

        `chance` leaves to Live 12 the dice it can roll on every pass of the clip, so the groove
        is never quite the same twice: each ghost note comes with its chance as its probability
        (at least MIN_GHOST_CHANCE) instead of being rolled once here, and a velocity this shapes
        becomes a range (velocity_deviation: Live plays between velocity and velocity +
        deviation) with the spread by which GMD's drummers vary that piece from one bar to the
        next (noise["repeat"]); the rest of the scatter is drawn here as usual. All timing stays
        baked in, as Live has no per-note timing chance; the same seed gives the same starts.
        """
        if not 0.0 <= amount <= 1.0:
            raise ValueError(f"amount must be 0..1, got {amount}")
        if not 0.0 <= spread <= 2.0:
            raise ValueError(f"spread must be 0..2, got {spread}")
        if not tempo > 0:
            raise ValueError(f"tempo must be positive, got {tempo}")
        if chance and "repeat" not in self.noise:
            raise ValueError("this humanizer checkpoint (format 1) cannot leave chance to Live; "
                             "retrain it with drumigen train-humanizer")
        genre = genre_index(style)
        bar = bar_beats(meter)
        if length is None:
            length = (math.floor(max((n.start for n in notes), default=0.0) / bar + 1e-6) + 1) * bar
        if any(not 0.0 <= n.start < length for n in notes):
            raise ValueError(f"notes must start inside the clip, 0 to {length:g} beats")
        if amount == 0.0 or not notes:
            return list(notes)
        heard = min(max(tempo, TRAINED_TEMPOS[0]), TRAINED_TEMPOS[1])
        timing = tempo / heard  # 16ths at the tempo heard -> 16ths at the clip's, as many ms
        grid = make_grid(notes, genre, heard, meter, length)
        rng = np.random.default_rng(seed)
        walk = self._walk(grid.total, rng)
        note_out, _ = self.predict(features(grid, grid.steps, grid.pieces, grid.velocities, self.config))
        levels = grid.known and "levels" in self.noise and accent_levels(grid.velocities, grid.pieces)
        if levels:  # the dynamics the style would give the clip unaccented, re-centred on each level below
            unaccented, _ = self.predict(features(grid, grid.steps, grid.pieces, None, self.config))
            note_out = np.concatenate([note_out[:, :2], unaccented[:, 2:]], 1)
        offsets, velocities, ranges = self._draw(note_out, grid.steps, grid.pieces, walk, rng, spread, chance,
                                                 timing)
        floor = self._floor(grid.pieces)
        if levels:  # noise["levels"]: how much of the style's lilt and scatter a level leaves to add
            follow, scatter = self.noise["levels"]
            loc = note_out[:, 2] * 127
            lilt = loc - level_means(loc, grid.velocities, grid.pieces)
            velocities = grid.velocities + follow * lilt + scatter * (velocities - loc)
            ranges = scatter * ranges
        else:
            velocities = floored(velocities, floor)
        # A programmed clip (most notes on some grid: 16ths, 32nds, triplets) keeps each note's place
        # plus the feel; in a played one (or one humanized before) a note takes the feel from its
        # nearest 16th instead, so a clip humanized again does not drift further each time; but in
        # a beat played in triplets (a fill, a shuffle) notes keep their places, the feel, learned
        # on 16ths, laid on top.
        played = 2 * sum(not on_a_grid(n.start) for n in notes) > len(notes)
        in_triplets = triplet_beats(notes) if played else set()
        # A hit in a run of 32nds on one drum (a roll, a drag, trap hats) is placed as a triplet is: its
        # own place kept (in a played clip, its nearest 32nd), the scatter alone added. The mean
        # offset the model gives a hit among 32nds is the 32nd itself (GMD's 32nds sit half a 16th
        # off their nearest one): added to a written 32nd it moved strokes most of a 32nd, and at
        # their nearest 16th two strokes landed on one place; a roll humanized twice came back
        # with strokes under 10 ms apart in 16 of 30 presses (29 of 30 at the third).
        in_32nds = in_a_32nd_figure(np.array([n.start for n in notes]), grid.pieces)
        # A note on a triplet place keeps its swing as written and gets only the scatter: the
        # model's mean offset, learned on 16ths, is mostly swing itself (GMD's swung "a" of the
        # beat played at the triplet), and added to a written triplet it swung it twice (0.67 of
        # the beat to 0.54-0.66 in one press, then pulled to the 8th by the next).
        swung = np.array([near_a_triplet(n.start, TRIPLET_REACH if played else GRID_TOLERANCE)
                          and (not played or math.floor(n.start) in in_triplets) for n in notes], dtype=bool)
        swung |= in_32nds
        offsets = np.clip(offsets - np.where(swung, note_out[:, 0] * timing, 0.0), -MAX_OFFSET, MAX_OFFSET)
        offsets[in_32nds] = np.clip(offsets[in_32nds], -FIGURE_OFFSET, FIGURE_OFFSET)
        # Layered samples are one stroke: a snare and a clap on one hit, kicks 35 and 36, pitches
        # heard as one piece at one time, move together (each its own draw split them 12 ms apart,
        # a flam). A pitch twice at one time (a flam quantised onto one 16th) stays two strokes.
        strokes: dict[tuple[int, float], tuple[int, set[int]]] = {}
        for i, (piece, note) in enumerate(zip(grid.pieces.tolist(), notes)):
            first, pitches = strokes.setdefault((piece, note.start), (i, set()))
            if piece < len(PIECES) and note.pitch not in pitches:  # "other" pitches are no one piece
                offsets[i] = offsets[first]
                pitches.add(note.pitch)
        out = []
        bounds = zip(*level_bounds(grid.velocities, grid.pieces)) if levels else itertools.repeat((1, 127))
        for note, step, offset, velocity, width, (softest, loudest), figure, lowest in zip(
                notes, grid.steps, offsets, velocities, ranges, bounds, in_32nds, floor):
            if not played or math.floor(note.start) in in_triplets:
                anchor = note.start
            else:
                anchor = round(note.start * 8) / 8 if figure else step / 4
            start = note.start + amount * (anchor + offset / 4 - note.start)
            if grid.known and not levels:  # played velocities, and any range the user gave them, stay the user's
                out.append(self._place(note, start, note.velocity, length))
            else:  # a range, like the noise it stands for, scales with the amount
                shaped = note.velocity + amount * (velocity - note.velocity)
                softest = int(max(softest, min(lowest, note.velocity)))  # not under the floor, unless the user's note was
                out.append(self._place(note, start, shaped, length, amount * width if chance else None, loudest,
                                       softest))
        origins = [n.start for n in notes]
        if ghost_notes:
            ghosts = self._ghosts(notes, grid, amount, walk, rng, spread, length, chance, timing)
            out += ghosts
            origins += [round(g.start * 4) / 4 for g in ghosts]  # each on its 16th step, moved < half a 16th
        return kept_apart(out, origins, length, len(notes))

    def _walk(self, total: int, rng: np.random.Generator) -> np.ndarray:
        """(total, 2): per 16th, the unit-variance part of the offset and velocity deviations that all hits
        there share, drifting from step to step (AR(1)). A drummer pushes or lays back for a while and
        hits on one 16th move together; independent noise per note would flam and sound sloppy."""
        decay = np.array([self.noise["offset"][1], self.noise["velocity"][1]])
        walk = rng.normal(size=(total, 2))
        walk[1:] *= np.sqrt(1 - decay**2)
        for t in range(1, total):
            walk[t] += decay * walk[t - 1]
        return walk

    def _draw(self, head: np.ndarray, steps: np.ndarray, pieces: np.ndarray, walk: np.ndarray,
              rng: np.random.Generator, spread: float, chance: bool = False,
              timing: float = 1.0) -> tuple[np.ndarray, ...]:
        """Offsets (16ths), velocities and velocity ranges from the head's (loc, log scale) x 2, with
        the learned correlation. Ranges are 0 unless `chance`: then the part of a hit's own velocity
        scatter that changes from one pass of a groove to the next (noise["repeat"], per piece) is
        not drawn here but returned as the width of a uniform range with that spread, for Live to
        draw from on each pass; the total spread is the same, and so is every offset. `timing`
        scales the offsets (a clip heard at another tempo than its own keeps them in ms)."""
        shared = np.array([self.noise["offset"][0], self.noise["velocity"][0]])
        own = rng.laplace(size=(len(head), 2)) / np.sqrt(2)
        std = laplace_std(head[:, [1, 3]]) * spread
        own_std = np.sqrt(1 - shared) * std
        ranges = np.zeros(len(head))
        if chance:
            per_pass = np.minimum(np.asarray(self.noise["repeat"])[pieces] * spread, own_std[:, 1])
            own_std[:, 1] = np.sqrt(own_std[:, 1] ** 2 - per_pass**2)
            ranges = np.sqrt(12) * per_pass * 127  # a uniform range's std is its width / sqrt(12)
        noise = np.sqrt(shared) * walk[steps % len(walk)] * std + own * own_std
        offsets = np.clip((head[:, 0] + noise[:, 0]) * timing, -MAX_OFFSET, MAX_OFFSET)
        return offsets, (head[:, 2] + noise[:, 1]) * 127, ranges

    def _floor(self, pieces: np.ndarray) -> np.ndarray:
        """Per note, the softest a drummer plays its piece (its train split's 1st percentile,
        noise["floor"]), as a whole velocity; 1 for a checkpoint before format 4."""
        if "floor" not in self.noise:
            return np.ones(len(pieces))
        return np.ceil(np.asarray(self.noise["floor"])[pieces] * 127)

    def _ghosts(self, notes: list[Note], grid: Grid, amount: float, walk: np.ndarray, rng: np.random.Generator,
                spread: float, length: float, chance: bool = False, timing: float = 1.0) -> list[Note]:
        free = ghost_candidates(grid)
        # Bars with a backbeat to ghost around (a snare, side stick, rim or clap) and no ghost
        # notes yet: a rest stays a rest, and a hat, ride, tom or kick line stays one (each got
        # 0.5-1.3 ghost snares a bar, a snare part nobody played).
        backbeat = np.isin(np.array(PIECES + (-1,))[grid.pieces], SNARES)
        bars, backbeats = free // bar_steps(grid.meter), grid.steps[backbeat] % grid.total // bar_steps(grid.meter)
        free = free[np.isin(bars, backbeats) & ~np.isin(bars, ghosted_bars(notes, grid))]
        if not len(free):
            return []
        pieces = np.full(len(free), PIECES.index(GHOST_PITCH))
        _, head = self.predict(features(grid, free, pieces, None, self.config))
        odds = amount / (1 + np.exp(-head[:, 0]))
        rolled = rng.random(len(free)) < odds  # drawn either way, so the rest of the stream is the same
        chosen = odds >= MIN_GHOST_CHANCE if chance else rolled
        offsets, velocities, ranges = self._draw(head[:, 1:], free, pieces, walk, rng, spread, chance, timing)
        floor = self._floor(pieces)  # the snare's, for every ghost note
        velocities, softest = floored(velocities, floor), int(floor[0])
        snares = [n.pitch for n in notes if kit.to_canonical(n.pitch) == GHOST_PITCH]
        pitch = max(set(snares), key=snares.count) if snares else GHOST_PITCH  # the user's snare pad
        probability = np.round(odds, 3) if chance else np.ones(len(free))
        return [self._place(Note(pitch, step / 4, NOTE_DURATION, 1, float(p)), step / 4 + amount * offset / 4,
                            velocity, length, width if chance else None, GHOST_VELOCITY - 1, softest)
                for step, offset, velocity, width, p in zip(free[chosen], offsets[chosen], velocities[chosen],
                                                           ranges[chosen], probability[chosen])]

    @staticmethod
    def _place(note: Note, start: float, velocity: float, length: float, width: float | None = None,
               loudest: int = 127, softest: int = 1) -> Note:
        """The note at `start` (inside the clip) and `velocity` (within softest..loudest). With a
        `width`, the velocity is a range that wide (Live's velocity_deviation), centred on
        `velocity` as far as the limits allow; without, the note keeps its own range."""
        start = float(min(max(start, 0.0), length - END_MARGIN))
        placed = replace(note, start=start, duration=min(note.duration, length - start))
        if width is None:  # the note's own range, kept within the limits from its new velocity
            low = int(min(max(round(velocity), softest), loudest))
            return replace(placed, velocity=low, velocity_deviation=min(max(note.velocity_deviation, 1.0 - low),
                                                                        float(loudest - low)))
        wide = int(min(round(width), loudest - softest))
        low = int(min(max(round(velocity - wide / 2), softest), loudest - wide))
        return replace(placed, velocity=low, velocity_deviation=float(wide))


def floored(velocities: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """The style's velocities, a draw under its piece's floor (Humanizer._floor) mirrored back over
    it. The Laplace's low tail put 6 % of a flat clip's hats, and 2 % of ghost notes, at the clamp
    at 1, silent (GMD's test takes: 0.5 % of hats at 10 or under); mirrored at the floor, the tail
    stays a soft stroke. The floor is also the lowest a velocity range reaches (_place)."""
    return np.where(velocities < floor, 2 * floor - velocities, velocities)


KEEP_APART = 1 / 3  # of their gap in the clip: how near each other two hits of one pitch may come


def kept_apart(notes: list[Note], origins: list[float], length: float, fixed: int) -> list[Note]:
    """Hits of one pitch in their order and apart: at least KEEP_APART of the gap between where
    they came from (`origins`). Each note drawn its own way, a 32nd roll came back jumbled (34 of
    1,599 neighbours in 24 played clips) and now and then two hits at one time, which MIDI and
    Live hold as one. Of the first `fixed` notes (the clip's own) the later of two too near is
    moved on as far as it takes (no further than its own offset's reach), the last kept inside
    the clip; a ghost note after them that comes too near a hit of its pitch is left out, so
    what ghost notes there are never moves the clip's notes."""
    out = list(notes)
    lines: dict[int, list[int]] = {}
    for i in sorted(range(fixed), key=lambda i: origins[i]):
        lines.setdefault(notes[i].pitch, []).append(i)
    for line in lines.values():  # in slots of one origin: a flam quantised onto one 16th stays two strokes
        slots = [list(group) for _, group in itertools.groupby(line, key=lambda i: origins[i])]
        starts = {i: notes[i].start for i in line}
        gaps = [KEEP_APART * (origins[b[0]] - origins[a[0]]) for a, b in zip(slots, slots[1:])]
        for k, gap in enumerate(gaps):
            floor = max(starts[i] for i in slots[k]) + gap
            starts.update({i: max(starts[i], floor) for i in slots[k + 1]})
        starts.update({i: min(starts[i], length - END_MARGIN) for i in slots[-1]})
        for k in reversed(range(len(gaps))):
            ceiling = min(starts[i] for i in slots[k + 1]) - gaps[k]
            starts.update({i: min(starts[i], ceiling) for i in slots[k]})
        for i, start in starts.items():
            if start != notes[i].start:
                out[i] = replace(notes[i], start=start, duration=min(notes[i].duration, length - start))
    kept = out[:fixed]
    for i in range(fixed, len(notes)):
        if all((out[i].start - out[j].start) * (origins[i] - origins[j]) > 0  # in order, and apart
               and abs(out[i].start - out[j].start) >= KEEP_APART * abs(origins[i] - origins[j])
               for j in lines.get(notes[i].pitch, [])):
            kept.append(out[i])
            lines.setdefault(notes[i].pitch, []).append(i)
    return kept
