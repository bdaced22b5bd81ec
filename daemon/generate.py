"""From a request to drum patterns: batched, grammar-constrained, reproducible sampling.

All variations of all requests in a batch advance in lockstep, one token per step, through
one KV cache; each row draws from its own seeded random stream, so a row's notes depend on
its request and seed, not on what else shared the batch.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

import torch

from daemon import checkpoint
from daemon.grammar import BAR, BarState, TokenTable, allowed_mask, bar_beats
from daemon.model import DrumTransformer
from daemon.vocab import LEVELS, NOTE_DURATION, SLOTS, Conditions, Vocabulary
from shared.notes import Note


@dataclass(frozen=True)
class GrooveRequest:
    style: str | dict[str, float] | None = None  # a genre, or {"funk": 0.7, "jazz": 0.3}
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
    guidance: float = 1.0  # classifier-free guidance; 1.0 is plain conditional sampling
    kit: dict[int, int] = field(default_factory=dict)  # canonical GM pitch -> output pitch


@dataclass
class Pattern:
    notes: list[Note]
    seed: int  # the seed that reproduces this variation alone (variations=1)


@dataclass
class _Row:
    request: GrooveRequest
    state: BarState
    rng: random.Random
    seed: int
    prefix: list[int]


class Generator:
    def __init__(self, model: DrumTransformer, vocab: Vocabulary, device: torch.device | str = "cpu") -> None:
        self.model = model.eval()
        self.vocab = vocab
        self.device = torch.device(device)
        self.table = TokenTable(vocab, self.device)
        self.block_size = model.config.block_size

    @classmethod
    def load(cls, path: Path = checkpoint.BUNDLED, device: str = "auto") -> "Generator":
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model, vocab, _ = checkpoint.load(path, device)
        return cls(model, vocab, device)

    # --- requests to rows --------------------------------------------------------------------
    def conditions(self, req: GrooveRequest) -> Conditions:
        level = lambda x: None if x is None else round(min(max(x, 0.0), 1.0) * (LEVELS - 1))  # noqa: E731
        return Conditions(
            genre=req.style if isinstance(req.style, str) else None,
            drummer=req.drummer,
            tempo=req.tempo,
            meter=tuple(req.meter),
            kind=req.kind,
            density=level(req.density),
            complexity=level(req.complexity),
        )

    def style_weights(self, style: dict[str, float]) -> torch.Tensor:
        """Vocabulary-sized weights that blend genre embeddings for a style mix."""
        weights = torch.zeros(len(self.vocab), device=self.device)
        total = sum(style.values())
        for genre, share in style.items():
            weights[self.vocab.slot_id("genre", genre)] = share / total
        return weights

    def _rows(self, requests: list[GrooveRequest]) -> list[_Row]:
        rows = []
        for req in requests:
            base_seed = req.seed if req.seed is not None else random.randrange(2**31)
            prefix = self.vocab.prefix(self.conditions(req))
            for v in range(req.variations):
                seed = base_seed + v
                rows.append(_Row(req, BarState(req.bars, tuple(req.meter)), random.Random(seed), seed, prefix))
        return rows

    # --- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, requests: list[GrooveRequest]) -> list[list[Pattern]]:
        """Patterns for each request (its variations), all sampled in one batch."""
        rows = self._rows(requests)
        guided = any(r.request.guidance != 1.0 for r in rows)
        mix = self._mix_weights(rows, guided)
        logits, cache = self._prefill(rows, guided, mix)
        while not all(r.state.done for r in rows):
            tokens = self._sample(rows, logits, guided)
            for row, token in zip(rows, tokens):
                if not row.state.done:
                    row.state.advance(token, self.table)
            if all(r.state.done for r in rows):
                break
            if cache.length >= self.block_size:
                logits, cache = self._prefill(rows, guided, mix)  # slide the window
                continue
            feed = torch.tensor(tokens * (2 if guided else 1), device=self.device)[:, None]
            logits = self.model(feed, cache)[:, -1]
        return self._patterns(requests, rows)

    def _mix_weights(self, rows: list[_Row], guided: bool) -> torch.Tensor | None:
        """Per-row genre-slot weights when any request blends styles, else None."""
        if not any(isinstance(r.request.style, dict) for r in rows):
            return None
        weights = torch.zeros(len(rows) * (2 if guided else 1), len(self.vocab), device=self.device)
        for b, row in enumerate(rows):
            style = row.request.style
            if isinstance(style, dict):
                weights[b] = self.style_weights(style)
            else:
                weights[b, row.prefix[0]] = 1.0
        if guided:  # unconditional rows keep the `any` genre
            weights[len(rows) :, self.vocab.slot_base["genre"]] = 1.0
        return weights

    def _contexts(self, rows: list[_Row], guided: bool) -> list[list[int]]:
        """Prefix + the tokens generated so far, trimmed to whole bars that fit half the block."""
        keep = self.block_size // 2 - len(SLOTS)
        contexts = []
        for row in rows:
            ids = row.state.ids
            if len(SLOTS) + len(ids) >= self.block_size:
                starts = [i for i, t in enumerate(ids) if self.table.steps[t][0][0] == BAR]
                cut = next((s for s in starts if len(ids) - s <= keep), len(ids) - keep)
                ids = ids[cut:]
            contexts.append(row.prefix + ids)
        if guided:
            uncond = self.vocab.prefix(Conditions())
            contexts += [uncond + c[len(SLOTS) :] for c in contexts]
        return contexts

    def _prefill(self, rows: list[_Row], guided: bool, mix: torch.Tensor | None) -> tuple[torch.Tensor, object]:
        """A fresh cache holding every row's context, left-padded to a common length."""
        contexts = self._contexts(rows, guided)
        longest = max(len(c) for c in contexts)
        pads = torch.tensor([longest - len(c) for c in contexts], device=self.device)
        idx = torch.tensor([[self.vocab.pad] * (longest - len(c)) + c for c in contexts], device=self.device)
        cache = self.model.new_cache(len(contexts))
        cache.pad = pads if bool(pads.any()) else None
        genre_slot = SLOTS.index("genre")
        logits = self.model(idx, cache, prefix_mix=None if mix is None else (pads + genre_slot, mix))
        return logits[:, -1], cache

    def _sample(self, rows: list[_Row], logits: torch.Tensor, guided: bool) -> list[int]:
        B = len(rows)
        logits = logits.float()
        if guided:
            g = torch.tensor([r.request.guidance for r in rows], device=logits.device)[:, None]
            cond, uncond = logits[:B], logits[B:]
            logits = uncond + g * (cond - uncond)
        mask = allowed_mask([r.state for r in rows], self.table)
        logits = logits.masked_fill(~mask, float("-inf"))
        temperature = torch.tensor([r.request.temperature for r in rows], device=logits.device)[:, None]
        probs = torch.softmax(logits / temperature, dim=-1)
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        top_p = torch.tensor([r.request.top_p for r in rows], device=logits.device)[:, None]
        # Keep the smallest set whose mass reaches top_p (the first token always stays).
        outside = sorted_probs.cumsum(-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(outside, 0.0)
        cdf = sorted_probs.cumsum(-1)
        u = torch.tensor([r.rng.random() for r in rows], device=logits.device)[:, None] * cdf[:, -1:]
        pick = torch.searchsorted(cdf, u).clamp(max=cdf.shape[1] - 1)
        return order.gather(1, pick)[:, 0].tolist()

    # --- tokens to notes -----------------------------------------------------------------------
    def _patterns(self, requests: list[GrooveRequest], rows: list[_Row]) -> list[list[Pattern]]:
        out: list[list[Pattern]] = [[] for _ in requests]
        it = iter(rows)
        for i, req in enumerate(requests):
            for _ in range(req.variations):
                row = next(it)
                out[i].append(Pattern(self.notes(row.state.ids, req), row.seed))
        return out

    def notes(self, ids: list[int], req: GrooveRequest) -> list[Note]:
        """Notes in the request's kit, inside the clip, at most one hit per pitch and time."""
        clip_end = req.bars * bar_beats(tuple(req.meter))
        best: dict[tuple[int, float], Note] = {}
        for hit in self.vocab.decode_hits(ids):
            start = round(hit.start, 6)
            if start >= clip_end:
                continue
            pitch = req.kit.get(hit.pitch, hit.pitch)
            note = Note(pitch, start, min(NOTE_DURATION, clip_end - start), hit.velocity)
            key = (pitch, start)
            if key not in best or best[key].velocity < note.velocity:  # a kit map may merge pieces
                best[key] = note
        return sorted(best.values(), key=lambda n: (n.start, n.pitch))
