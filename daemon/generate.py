"""From a request to drum patterns: batched, grammar-constrained, reproducible sampling.

All variations of all requests in a batch advance in lockstep, one token per step, through
one KV cache; each row draws from its own seeded random stream, so a row's notes depend on
its request and seed, not on what else shared the batch (up to float rounding in batched
matmuls, which would have to land a draw within ~1e-6 of a boundary to change a note).

Where the time goes (benchmarks/bench_generate.py): a 4-bar groove is ~140 one-token steps,
each a forward pass of a small model, so per-op overhead rules, not FLOPs. Hence the model's
lean `step()`, grammar masks looked up per automaton state rather than rebuilt, top-p over the
allowed ids only (in numpy, cheaper than torch at a few hundred floats), rows leaving the
batch as soon as they finish, and notes read straight from the token pieces.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from daemon import checkpoint, kit, styles
from daemon.anchors import Anchors, OnTheBeat
from daemon.cuda_graphs import GraphedSteps
from daemon.grammar import BAR, BarState, TokenTable
from daemon.groove_template import Feel, GrooveTemplate
from daemon.model import DrumTransformer
from daemon.vocab import GENRES, LEVELS, NOTE_DURATION, SLOTS, Conditions, Vocabulary
from shared.notes import Note, bar_beats, without_doubled_ones
from shared.protocol import SEED_RANGE, STYLE_STRENGTH

# A new beat's first bar has a hit on its downbeat (grammar onsets, as drumify's). Training windows
# sometimes start where a take starts, and a quarter of GMD's takes come in after the one; a
# loop that starts late sounds broken. Without this 9 % of beats did (docs/model.md).
ON_THE_ONE = ((0,),)
TIE = 1e-3  # nats: typicality scores closer than this are equal (Generator._patterns)


@dataclass(frozen=True)
class GrooveRequest:
    style: str | dict[str, float] | None = None  # any style name (daemon/styles.py), or {"funk": 0.7, "my-dub": 0.3}
    drummer: str | None = None
    bars: int = 4
    tempo: float = 120.0
    meter: tuple[int, int] = (4, 4)
    variations: int = 1
    temperature: float = 1.0
    top_p: float = 0.95
    seed: int | None = None
    kind: str | None = None  # "beat" or "fill"
    density: float | None = None  # 0..1
    complexity: float | None = None  # 0..1
    strength: float | None = None  # how far the style is pushed from `any`; None: each style's own (Generator.voice)
    guidance: float = 1.0  # classifier-free guidance; 1.0 is plain conditional sampling
    focus: int = 1  # takes sampled per variation, the one most typical of its style kept (Generator._typicality)
    kit: dict[int, int] = field(default_factory=dict)  # canonical GM pitch -> output pitch
    primer: tuple[int, ...] = ()  # model ids after the prefix that every variation starts from (a clip)
    fresh_bar: int = 0  # a bar (from 1) that does not follow the one before it in time (grammar.BarState)
    onsets: tuple[tuple[int, ...], ...] = ()  # per bar, grid positions that must each get a hit (drumify)
    pieces: tuple[int, ...] = ()  # the only pitches sampled hits may play (a cymbal line's own); empty: any
    loops: bool = True  # its end leads into its own one (a clip); False: into what follows (live mode, clip ops)
    voice: Voice | None = None  # `style` resolved once (requests.request_for); None: resolved when sampled

    @property
    def rows(self) -> int:
        """Rows it adds to a sampling batch: one per take of each variation."""
        return self.variations * self.focus


@dataclass
class Pattern:
    notes: list[Note]
    seed: int  # the seed that reproduces this variation alone (variations=1, the same focus)


@dataclass(frozen=True)
class Voice:
    """What a request's style means to the model: the genre slot (a genre token, or a blend of
    embeddings), the drummer it brings, the genre whose habits complete open controls, and the
    groove template laid over the notes."""

    genre: str | None = None  # the genre token, when no blend replaces it
    blend: dict[int, float] | None = None  # genre-slot weights by token id, strength applied (styles.push)
    drummer: str | None = None
    habits: str | None = None  # genre whose priors fill open controls; None: leave them open
    template: GrooveTemplate | Feel | None = None  # a learned style's, or a preset's feel in any meter
    feel: str | None = None  # genre whose feel humanize plays (it knows genres); None: GMD's as a whole
    levels: tuple[int, int] | None = None  # a learned style's density and complexity, for open controls
    anchors: Anchors | OnTheBeat | None = None  # hits every bar of a beat plays (daemon/anchors.py)


@dataclass
class _Row:
    request: GrooveRequest
    source: int  # the request's index in the batch
    voice: Voice
    state: BarState
    rng: random.Random
    seed: int
    prefix: list[int]
    start: int = 0  # state.ids[start:] follow the prefix in the model's context (the window)
    # What focus judges: state.ids[judged_from:judged_to], sampled in the row's first window (which
    # began at judged_start), so every take is judged on about as many tokens, however it slides.
    judged_from: int = 0  # the first sampled token (after any clip the row was given)
    judged_start: int = 0  # the first window's start, once it has ended
    judged_to: int | None = None  # where the first window ended (the first slide); None: the groove ended in it
    own_logp: float = 0.0  # with focus: their log-likelihood under the row's prefix, the groove's end included
    dropped: bool = False  # its request was abandoned: the row left the batch unfinished

    @property
    def guided(self) -> bool:
        return self.request.guidance != 1.0


class Generator:
    # Intra-op threads while sampling on a CPU. A decode step is ~35 tiny ops; splitting each
    # across cores buys little even on an idle machine, and when another process holds a core
    # (Live's audio engine, a test run) every op waits for the descheduled thread: with 2
    # threads a step measured 5-50x slower under such load, with 1 thread ~1.3x.
    # None leaves torch's setting alone.
    threads: int | None = 1
    # oneDNN is off while sampling on a CPU. The only op of ours it runs is GELU, where its fixed
    # cost per call (~24 µs on a one-row step's 1,024 activations, against ~4 for ATen's own
    # kernel of the same erf formula; torch 2.13) was a tenth of the step (docs/model.md).
    # Matmuls go to MKL either way.
    onednn: bool = False

    def __init__(self, model: DrumTransformer, vocab: Vocabulary, device: torch.device | str = "cpu",
                 priors: dict | None = None, style_folder: Path | None = None) -> None:
        self.model = model.eval()
        self.priors = priors or {}  # genre -> [[drummer, kind, density, complexity, count], ...] (data.condition_priors)
        self.vocab = vocab
        self.device = torch.device(device)
        self.table = TokenTable(vocab)
        self.block_size = model.config.block_size
        self.uncond_prefix = vocab.prefix(Conditions())
        # The cache decoding runs in: rows padded to the longest keep going, each within the block.
        self.capacity = self.block_size + self.block_size // 2
        # On a GPU, decode steps replay CUDA graphs (daemon/cuda_graphs.py); None: eager step().
        self.graphed = GraphedSteps(model, self.capacity, self.table.size) if self.device.type == "cuda" else None
        self.style_folder = style_folder  # learned styles; None: styles.default_folder()

    @classmethod
    def load(cls, path: Path = checkpoint.BUNDLED, device: str = "auto",
             style_folder: Path | None = None) -> "Generator":
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, vocab, meta = checkpoint.load(path, device)
        return cls(model, vocab, device, meta.get("priors"), style_folder)

    # --- requests to rows --------------------------------------------------------------------
    def voice(self, style: str | dict[str, float] | None, strength: float | None = None) -> Voice:
        """The Voice of a style name or mix; styles.UnknownStyle (a KeyError) or StyleError when a
        name is unknown, damaged or learned on another model.

        A genre is its own token. Anything else is a blend at the genre slot (styles.resolve);
        presets and genre mixes take the habits of their strongest genre, while drummers and
        learned styles leave open controls open, as they were learned or trained with them open.
        The heaviest style lends its groove template, if it has one.

        Each style is pushed from `any` by `strength` (a dial on the genre slot alone: at 0 the slot
        is `any`, while the drummers, densities and feel the style brings stay), or by its own
        default: STYLE_STRENGTH for genres and presets; 1 for a learned style, the strength learning
        fitted it at (1.5 buys it nothing on the shipped model, docs/styles.md), and for a drummer,
        which has no genre to push. In a mix each part keeps its own default.
        """
        if style is None:
            return Voice()
        mix = {style: 1.0} if isinstance(style, str) else dict(style)
        names = {name.strip().lower(): share for name, share in mix.items()}
        own = {name: STYLE_STRENGTH if name in GENRES or name in styles.PRESETS else 1.0 for name in names}
        strengths = own if strength is None else dict.fromkeys(names, strength)
        if len(names) == 1 and (genre := next(iter(names))) in GENRES:  # its own token, or pushed from `any`
            token, s = self.vocab.slot_id("genre", genre), strengths[genre]
            blend = None if s == 1.0 else styles.push({token: 1.0}, s, self.vocab.slot_base["genre"])
            return Voice(genre=genre, blend=blend, habits=genre, feel=genre)
        resolved = styles.resolve_mix(names, self.vocab, self.model, self.style_folder, strengths)
        genres_only = all(name in GENRES or name in styles.PRESETS for name in names)  # its strongest genre, as mixed
        return Voice(blend=resolved.weights, drummer=resolved.drummer, habits=resolved.feel if genres_only else None,
                     template=resolved.template, feel=resolved.feel, levels=resolved.levels,
                     anchors=resolved.anchors)

    def conditions(self, req: GrooveRequest, voice: Voice | None = None) -> Conditions:
        level = lambda x: None if x is None else round(min(max(x, 0.0), 1.0) * (LEVELS - 1))  # noqa: E731
        voice = voice or req.voice or self.voice(req.style, req.strength)
        density, complexity = voice.levels or (None, None)  # a learned style's, where the request leaves them open
        return Conditions(
            genre=voice.genre,
            drummer=req.drummer or voice.drummer,
            tempo=req.tempo,
            meter=tuple(req.meter),
            kind=req.kind or ("beat" if req.style is not None else None),  # a style plays grooves unless asked for fills
            density=density if req.density is None else level(req.density),
            complexity=complexity if req.complexity is None else level(req.complexity),
        )

    def _complete(self, cond: Conditions, genre: str | None, rng: random.Random) -> Conditions:
        """A genre's open controls drawn from how the training data played that genre.

        Training drops each control at random, so "funk, any drummer, any density" is a prefix
        the model saw rarely; funk with a real funk drummer, density and complexity it saw
        often, and it then plays the genre more clearly (docs/model.md has the measurement).
        Fields the request set are kept, and only matching examples are drawn from (or, where
        none match, the nearest); an open `kind` means a beat. `genre` is the style's Voice.habits.
        """
        table = self.priors.get(genre) if genre else None
        if not table:
            return cond
        fields = ("drummer", "kind", "density", "complexity")
        given = {f: getattr(cond, f) for f in fields if getattr(cond, f) is not None}
        given.setdefault("kind", "beat")  # a groove unless a fill was asked for
        # A level the genre's data never played (pop has no density of 3 or 4) still gets a
        # drummer of the genre: drawn from the examples nearest it (complexity let go, then density).
        for loose in ((), ("complexity",), ("complexity", "density")):
            matching = [e for e in table if all(e[fields.index(f)] == v for f, v in given.items() if f not in loose)]
            if matching:
                break
        else:
            return cond
        drawn = rng.choices(matching, weights=[e[-1] for e in matching])[0]
        return dataclasses.replace(cond, **{f: given.get(f, drawn[i]) for i, f in enumerate(fields)})

    def _rows(self, requests: list[GrooveRequest]) -> list[_Row]:
        """One row per take: `focus` takes of each variation, in order. Take 0 draws from the
        variation's seed alone, so focus 1 is plain sampling; take k from "seed/k". A row's
        state may start past the prefix: `state.follow(ids, self.table)` forces known tokens (a
        clip to continue); sampling, windows and padding then work from wherever each row stands.
        A new beat starts on the one (ON_THE_ONE); a fill, a continued clip or drumify's rhythm
        starts where it starts."""
        rows = []
        for source, req in enumerate(requests):
            base_seed = req.seed if req.seed is not None else random.randrange(SEED_RANGE[1] + 1)
            voice = req.voice or self.voice(req.style, req.strength)
            conditions = self.conditions(req, voice)
            for v in range(req.variations):
                seed = variation_seed(base_seed, v)
                for take in range(req.focus):
                    rng = random.Random(seed if take == 0 else f"{seed}/{take}")
                    completed = self._complete(conditions, voice.habits, rng)
                    prefix = self.vocab.prefix(completed)
                    on_the_one = completed.kind == "beat" and not req.primer and not req.onsets
                    state = BarState(req.bars, tuple(req.meter), onsets=ON_THE_ONE if on_the_one else req.onsets,
                                     fresh_bar=req.fresh_bar, pieces=req.pieces,
                                     anchors=self._anchors(req, voice) if completed.kind == "beat" else ())
                    state.follow(list(req.primer), self.table)
                    rows.append(_Row(req, source, voice, state, rng, seed, prefix, judged_from=len(state.ids)))
        return rows

    @staticmethod
    def _anchors(req: GrooveRequest, voice: Voice) -> tuple[tuple[int, int], ...]:
        """The (position, pitch) hits each sampled bar of a beat plays: the style's, in the
        request's meter, on the pieces it may play (a fill plays none)."""
        anchors = voice.anchors.positions(tuple(req.meter)) if voice.anchors else ()
        return tuple(a for a in anchors if a[1] in req.pieces) if req.pieces else anchors

    # --- sampling ----------------------------------------------------------------------------
    def generate(self, requests: list[GrooveRequest],
                 abandoned: Callable[[int], bool] | None = None,
                 finished: Callable[[int, list[Pattern]], None] | None = None) -> list[list[Pattern] | None]:
        """Patterns for each request (its variations), all sampled in one batch.

        `abandoned(i)`, asked before every decode step, says nobody waits for request i any more
        (the daemon's client cancelled it, or its timeout passed): its rows leave the batch at
        once, as finished rows do, and its entry is None. `finished(i, patterns)` hears each
        request as soon as its last row ends, so a 1-bar request batched with 16-bar ones is
        answered after its own steps, not theirs."""
        threads, onednn = torch.get_num_threads(), torch.backends.mkldnn.enabled
        if self.device.type == "cpu":
            torch.set_num_threads(self.threads or threads)
            torch.backends.mkldnn.enabled = self.onednn
        try:
            with torch.inference_mode():
                return self._generate(requests, abandoned, finished)
        finally:
            torch.set_num_threads(threads)
            torch.backends.mkldnn.enabled = onednn

    def _generate(self, requests: list[GrooveRequest], abandoned: Callable[[int], bool] | None,
                  finished: Callable[[int, list[Pattern]], None] | None) -> list[list[Pattern] | None]:
        rows = self._rows(requests)
        if not rows:
            return [[] for _ in requests]
        out: dict[int, list[Pattern] | None] = {}  # requests answered so far
        for row in rows:  # rows that start with known tokens (row.state.follow) longer than the block
            if len(SLOTS) + len(row.state.ids) > self.block_size:
                row.start = self._window_start(row)
        live = list(range(len(rows)))  # rows still sampling, in batch order
        batch = self._batch(rows, live)
        logits, cache = self._prefill(rows, batch, decode=True)
        while True:
            scores = logits.float().cpu().numpy()  # on a GPU a view of a buffer the next step overwrites
            twin = {r: b for b, (r, conditional) in enumerate(batch) if not conditional}
            tokens = []
            for b, r in enumerate(live):
                row = rows[r]
                tokens.append(self._draw(row, scores[b], scores[twin[r]] if r in twin else None))
                row.state.advance(tokens[-1], self.table)
                if row.request.focus > 1 and row.judged_to is None:
                    row.own_logp += self._log_likelihood(scores[b], tokens[-1], row.state.done)
            if abandoned is not None:
                self._drop_abandoned(rows, live, abandoned)
            still = [b for b, r in enumerate(live) if not (rows[r].state.done or rows[r].dropped)]
            if not still:
                break
            if len(still) < len(live):  # finished rows leave the batch and cost nothing more
                if finished is not None:
                    self._answer(requests, rows, {rows[live[b]].source for b in range(len(live))}, out, finished)
                live, tokens = [live[b] for b in still], [tokens[b] for b in still]
                where = {entry: b for b, entry in enumerate(batch)}
                batch = self._batch(rows, live)
                cache.keep([where[entry] for entry in batch])
            self._slide(rows, batch, cache)
            feed = tokens + [t for r, t in zip(live, tokens) if r in twin]
            logits = self._step(feed, cache)
        self._answer(requests, rows, set(range(len(requests))), out, finished)
        return [out[i] for i in range(len(requests))]

    def _answer(self, requests: list[GrooveRequest], rows: list[_Row], sources: set[int],
                out: dict[int, list[Pattern] | None], finished: Callable[[int, list[Pattern]], None] | None) -> None:
        """Patterns for those of `sources` whose rows have all ended (None where abandoned),
        each request once, handed to `finished` as they come."""
        for source in sorted(sources - out.keys()):
            takes = [row for row in rows if row.source == source]
            if any(row.dropped for row in takes):
                out[source] = None
            elif all(row.state.done for row in takes):
                out[source] = self._patterns(requests[source], takes)
                if finished is not None:
                    finished(source, out[source])

    @staticmethod
    def _drop_abandoned(rows: list[_Row], live: list[int], abandoned: Callable[[int], bool]) -> None:
        """Mark the rows of requests nobody waits for any more (asked once per request that has
        rows still sampling: one whose last rows just finished is answered)."""
        sampling = {rows[r].source for r in live if not rows[r].state.done}
        gone = {source for source in sampling if abandoned(source)}
        for r in live:
            rows[r].dropped = rows[r].source in gone

    def _step(self, tokens: list[int], cache) -> torch.Tensor:
        """Logits for one more token per row, from a CUDA graph on a GPU."""
        if self.graphed is not None:
            return self.graphed.step(tokens, cache)
        return self.model.step(torch.tensor(tokens, device=self.device), cache, self.table.size)

    @staticmethod
    def _batch(rows: list[_Row], live: list[int]) -> list[tuple[int, bool]]:
        """The batch's entries as (row, conditional): every live row, then the unconditional
        twins of those that use classifier-free guidance. Both parts stay in row order."""
        return [(r, True) for r in live] + [(r, False) for r in live if rows[r].guided]

    def _draw(self, row: _Row, cond: np.ndarray, uncond: np.ndarray | None) -> int:
        """One token for `row` from its logits, among the ids the grammar allows."""
        ids = self.table.allowed(row.state)
        u = row.rng.random()  # drawn every step, so a row's stream never depends on its masks
        logits = cond[ids]
        if uncond is not None:
            base = uncond[ids].astype(np.float64)
            logits = base + row.request.guidance * (logits - base)
        cooled = row.request.temperature != 1.0  # at 1, choices change nothing: not looked up
        choices = self.table.choices(row.request.meter[1])[ids] if cooled else None
        return int(ids[sample_top_p(logits, row.request.temperature, row.request.top_p, u, choices)])

    # --- the context window ------------------------------------------------------------------
    def _context(self, row: _Row, conditional: bool, last: bool = True) -> list[int]:
        """The row's prefix (its own, or the all-`any` one of its unconditional twin) and its
        tokens in the window; without `last`, all but the newest."""
        ids = row.state.ids[row.start :] if last else row.state.ids[row.start : -1]
        return (row.prefix if conditional else self.uncond_prefix) + ids

    def _window_start(self, row: _Row) -> int:
        """Where a full row's window restarts: the first bar start that leaves at most half the
        block of tokens, so the model keeps whole bars of the groove it is continuing."""
        ids, keep = row.state.ids, self.block_size // 2 - len(SLOTS)
        starts = (i for i, t in enumerate(ids) if i >= row.start and self.table.steps[t][0][0] == BAR)
        return next((s for s in starts if len(ids) - s <= keep), len(ids) - keep)

    def _slide(self, rows: list[_Row], batch: list[tuple[int, bool]], cache) -> None:
        """Before the newest tokens go in: a row whose context would outgrow the block restarts
        its window (a fresh prefill of its own, written into its cache row), and a full cache
        forgets padding slots. Each row slides when its own length says so, whatever else
        shares the batch, so its notes do not depend on the batch."""
        full = sorted({r for r, _ in batch if len(SLOTS) + len(rows[r].state.ids) - rows[r].start > self.block_size})
        if full:
            for r in full:
                if rows[r].judged_to is None:  # the first window ends here, its newest token included
                    rows[r].judged_start, rows[r].judged_to = rows[r].start, len(rows[r].state.ids)
                rows[r].start = self._window_start(rows[r])
            entries = [(b, entry) for b, entry in enumerate(batch) if entry[0] in full]
            _, fresh = self._prefill(rows, [entry for _, entry in entries], decode=False, last=False)
            for i, (b, _) in enumerate(entries):
                cache.replace_row(b, fresh, i)
        if cache.length == cache.capacity:
            cache.shift(int(cache.pad.min()))  # every row is shorter than the block: all padded

    def _prefill(self, rows: list[_Row], batch: list[tuple[int, bool]], decode: bool,
                 last: bool = True) -> tuple[torch.Tensor, object]:
        """A cache holding every entry's context, left-padded to a common length, and the logits
        after it (only for ids a sampler may pick): the one decoding goes on in (`decode`), or a
        block's worth for a row that slides its window."""
        contexts = [self._context(rows[r], conditional, last) for r, conditional in batch]
        longest = max(len(c) for c in contexts)
        pads = torch.tensor([longest - len(c) for c in contexts], device=self.device)
        idx = torch.tensor([[self.vocab.pad] * (longest - len(c)) + c for c in contexts], device=self.device)
        if decode and self.graphed is not None:
            cache = self.graphed.cache(len(contexts), pads)
        else:
            cache = self.model.new_cache(len(contexts), self.capacity if decode else None, pad=pads)
        mix = self._mix_weights(rows, batch)
        genre_slot = SLOTS.index("genre")
        logits = self.model(idx, cache, prefix_mix=None if mix is None else (pads + genre_slot, mix))
        return logits[:, -1, : self.table.size], cache

    def _mix_weights(self, rows: list[_Row], batch: list[tuple[int, bool]]) -> torch.Tensor | None:
        """Per-entry genre-slot weights when a conditional entry blends or pushes its style (its
        Voice's blend), else None; an unconditional entry (conditional False) has the `any` genre."""
        if not any(conditional and rows[r].voice.blend for r, conditional in batch):
            return None
        weights = torch.zeros(len(batch), len(self.vocab), device=self.device)
        for b, (r, conditional) in enumerate(batch):
            blend = rows[r].voice.blend
            if not conditional:  # unconditional twins keep the `any` genre
                weights[b, self.vocab.slot_base["genre"]] = 1.0
            elif blend:
                weights[b, list(blend)] = torch.tensor(list(blend.values()), device=self.device)
            else:
                weights[b, rows[r].prefix[SLOTS.index("genre")]] = 1.0
        return weights

    # --- focus: the most typical of several takes ---------------------------------------------
    def _log_likelihood(self, logits: np.ndarray, token: int, closing: bool) -> float:
        """log p(token) under one step's logits; for the token that closed the groove, log p of
        any Bar (the groove ends here, whichever Bar-led id was drawn)."""
        z = logits.astype(np.float64)
        top = z.max()
        total = top + np.log(np.exp(z - top).sum())
        if closing:
            bars = z[self.table.starts_bar]
            return float(top + np.log(np.exp(bars - top).sum()) - total)
        return float(z[token] - total)

    @torch.inference_mode()
    def _typicality(self, rows: list[_Row]) -> list[float]:
        """How much more likely each row's tokens are under its style than under no style:
        row.own_logp, summed while sampling, minus log p(the same tokens | the prefix with what
        the style fills set to `any`: the genre slot, and the drummer when the style brought one,
        as a drummer or a learned style does; a drummer the request names is a control and
        stays, as does one a genre's habits drew). The tokens are those the row sampled in its
        first context window (not a clip it was given), and the groove's end if it came there:
        takes that slide their windows at different points are still judged on as many tokens.
        The model as its own style judge (pointwise mutual information): best of 2 takes by
        this lifts how often a style classifier recognises the genre, with no loss in how real
        the grooves look (docs/model.md). One teacher-forced pass, right-padded (causal
        attention never looks at the padding), in chunks of 16 rows."""
        inputs, targets, spans = [], [], []
        for row in rows:
            plain = list(row.prefix)
            plain[SLOTS.index("genre")] = self.vocab.slot_base["genre"]
            if row.voice.drummer and not row.request.drummer:
                plain[SLOTS.index("drummer")] = self.vocab.slot_base["drummer"]
            ended = row.judged_to is None
            window = row.state.ids[row.start :] if ended else row.state.ids[row.judged_start : row.judged_to]
            tokens = plain + window
            inputs.append(tokens if ended else tokens[:-1])  # a window that slid is one token over the block
            targets.append(tokens[1:])
            first = len(plain) + (row.judged_from - (row.start if ended else row.judged_start))
            spans.append((first - 1, len(tokens) - 1, ended))  # targets[first - 1:] were sampled
        ends = torch.from_numpy(self.table.starts_bar).to(self.device)
        plain_logp: list[float] = []
        for c in range(0, len(inputs), 16):
            chunk = range(c, min(c + 16, len(inputs)))
            longest = max(len(inputs[i]) for i in chunk)
            idx = torch.tensor([inputs[i] + [self.vocab.pad] * (longest - len(inputs[i])) for i in chunk],
                               device=self.device)
            tgt = torch.tensor([targets[i] + [0] * (longest - len(targets[i])) for i in chunk], device=self.device)
            logp = torch.log_softmax(self.model(idx)[..., : self.table.size].float(), -1)  # (B, T, V)
            taken = logp.gather(2, tgt[..., None].clamp(max=self.table.size - 1)).squeeze(2)
            position = torch.arange(longest, device=self.device)
            lo, hi = (torch.tensor([spans[i][k] for i in chunk], device=self.device) for k in (0, 1))
            sampled = ((position >= lo[:, None]) & (position < hi[:, None])).float()
            last = torch.tensor([len(inputs[i]) - 1 for i in chunk], device=self.device)
            ended = torch.tensor([spans[i][2] for i in chunk], device=self.device)
            end = logp[torch.arange(len(chunk), device=self.device), last][:, ends].logsumexp(1) * ended
            plain_logp += ((taken * sampled).sum(1) + end).tolist()
        return [row.own_logp - plain for row, plain in zip(rows, plain_logp)]

    # --- tokens to notes -----------------------------------------------------------------------
    def _patterns(self, req: GrooveRequest, takes: list[_Row]) -> list[Pattern]:
        """A request's patterns: each variation's one take, or the most typical of its `focus`
        takes (judged within the request, so what else shared the batch cannot pick them)."""
        scores = self._typicality(takes) if req.focus > 1 else [0.0] * len(takes)
        found = []
        for v in range(req.variations):
            mine = list(zip(takes, scores))[v * req.focus : (v + 1) * req.focus]
            best = max(score for _, score in mine)
            # The first take within TIE of the best: where the style adds nothing over no style,
            # every score is float noise from the batched pass, which must not pick the notes.
            row = next(r for r, score in mine if score >= best - TIE)
            found.append(Pattern(self.notes(row.state.ids, req, row.voice.template), row.seed))
        return found

    def notes(self, ids: list[int], req: GrooveRequest, template: GrooveTemplate | Feel | None = None) -> list[Note]:
        """Notes in the request's kit, inside the clip, at most one hit per pitch and time, and a
        beat's loop point played once (without_doubled_ones); with a style's groove template, its
        feel laid over the model's timing of the sampled hits (a primer's hits are the user's
        clip, and its feel is theirs)."""
        clip_end = req.bars * bar_beats(tuple(req.meter))
        hits = [Note(h.pitch, round(h.start, 6), NOTE_DURATION, h.velocity) for h in self.table.hits(ids)]
        known = len(self.table.hits(list(req.primer))) if req.primer else 0
        sampled = [h for h in hits[known:] if h.start < clip_end]
        if template is not None:  # the first bar played after a primer starts on its one, as a new beat does
            one = sum(self.table.steps[t][0][0] == BAR for t in req.primer) * bar_beats(tuple(req.meter))
            sampled = template.apply(sampled, tuple(req.meter), clip_end, one=one)
        hits = [h for h in hits[:known] if h.start < clip_end] + sampled
        best: dict[tuple[int, float], Note] = {}
        for hit in hits:
            start = round(hit.start, 6)
            pitch = req.kit.get(hit.pitch, hit.pitch)
            note = Note(pitch, start, min(NOTE_DURATION, clip_end - start), hit.velocity)
            key = (pitch, start)
            if key not in best or best[key].velocity < note.velocity:  # a kit map may merge pieces
                best[key] = note
        out = sorted(best.values(), key=lambda n: (n.start, n.pitch))
        if req.loops:  # the clip ops ask with loops False: they know what follows their notes
            out = without_doubled_ones(out, clip_end, out, meter=tuple(req.meter), piece=kit.drum_of(req.kit))
        return out


def variation_seed(seed: int, variation: int) -> int:
    """The seed variation `variation` of a request plays, inside SEED_RANGE: a seed a reply
    carries can always be sent back to play that variation alone."""
    return (seed + variation) % (SEED_RANGE[1] + 1)


def sample_top_p(logits: np.ndarray, temperature: float, top_p: float, u: float,
                 choices: np.ndarray | None = None) -> int:
    """Index drawn by inverse CDF at `u` in [0, 1) from softmax(logits / temperature), cut to
    the smallest set of most likely entries whose mass reaches `top_p` (the first always stays).
    temperature <= 0 means the most likely entry. A few numpy calls over the allowed ids only:
    at a few hundred floats that is cheaper than torch's per-op overhead.

    With `choices` (per entry, which musical choice it makes: TokenTable.choices), temperature
    sharpens or flattens the choices, each by its whole mass, and leaves the odds within one
    alone: softmax(logits) * mass(choice)^(1/temperature - 1). A snare on 2 comes as a dozen
    ids, one per velocity and hair off the grid, each less likely than one closed hat, so plain
    temperature turned a cool groove into hats at one velocity (docs/model.md, "Temperature")."""
    if temperature <= 0:
        return int(logits.argmax())
    p = logits.astype(np.float64)
    p -= p.max()
    if temperature != 1.0 and choices is None:  # the default: a multiply by 1 changes nothing
        p *= 1.0 / temperature
    np.exp(p, out=p)
    if temperature != 1.0 and choices is not None:  # `tiny`: a choice whose every id underflowed stays out
        p *= np.maximum(np.bincount(choices, p)[choices], np.finfo(np.float64).tiny) ** (1.0 / temperature - 1.0)
    order = p.argsort()[::-1]  # most likely first
    cdf = p[order].cumsum()
    last = min(int(cdf.searchsorted(top_p * cdf[-1])), len(cdf) - 1)  # the nucleus ends here
    return int(order[min(int(cdf.searchsorted(u * cdf[last])), last)])
