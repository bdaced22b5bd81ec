"""Grammar-constrained decoding: only token sequences that are valid drum bars can be sampled.

The grammar over base REMI tokens is

    Bar TimeSig_<requested> ( Position_p ( PitchDrum_k Velocity_v )+ )*   ... repeated per bar

with positions strictly rising and below the bar's length, no piece struck twice at one
position, and exactly the requested number of bars. A model id may stand for several base
tokens (a BPE merge), so every id is summarised once into tensors (what it starts with, the
positions and pitches it holds, what it ends with) and the per-step mask is a handful of
vectorised comparisons rather than a Python loop over the vocabulary.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from daemon.vocab import POSITIONS_PER_BEAT, Vocabulary

# What a token (or its first base piece) is.
OTHER, BAR, TIMESIG, POSITION, PITCH, VELOCITY = range(6)
_KIND = {"Bar": BAR, "TimeSig": TIMESIG, "Position": POSITION, "PitchDrum": PITCH, "Velocity": VELOCITY}

# The grammar's states: what the last base token was.
START, AFTER_BAR, AFTER_TIMESIG, AFTER_POSITION, AFTER_PITCH, AFTER_VELOCITY = range(6)
_AFTER = {BAR: AFTER_BAR, TIMESIG: AFTER_TIMESIG, POSITION: AFTER_POSITION, PITCH: AFTER_PITCH,
          VELOCITY: AFTER_VELOCITY}

# Which first piece each state accepts.
_ACCEPTS = {
    START: {BAR},
    AFTER_BAR: {TIMESIG},
    AFTER_TIMESIG: {POSITION, BAR},
    AFTER_POSITION: {PITCH},
    AFTER_PITCH: {VELOCITY},
    AFTER_VELOCITY: {PITCH, POSITION, BAR},
}

PITCH_BASE = 32  # pitch bit i stands for MIDI pitch PITCH_BASE + i; the kit spans 35..60


def positions_per_bar(meter: tuple[int, int]) -> int:
    return meter[0] * POSITIONS_PER_BEAT  # MidiTok counts positions per beat of the denominator


def bar_beats(meter: tuple[int, int]) -> float:
    """Length of one bar in quarter notes (Live's beats)."""
    return meter[0] * 4 / meter[1]


class TokenTable:
    """Per-id summaries of the vocabulary, built once per model."""

    def __init__(self, vocab: Vocabulary, device: torch.device | str = "cpu") -> None:
        V = len(vocab)
        first = torch.full((V,), OTHER, dtype=torch.long)
        last = torch.full((V,), OTHER, dtype=torch.long)
        first_pos = torch.full((V,), -1, dtype=torch.long)  # first Position in the token, -1 if none
        max_pos = torch.full((V,), -1, dtype=torch.long)
        meter = torch.full((V,), -1, dtype=torch.long)  # index into vocab.meters, -1 if no TimeSig
        lead_pitches = torch.zeros(V, dtype=torch.long)  # pitches before the token's first Position
        broken = torch.zeros(V, dtype=torch.bool)  # can never be valid (Bar mid-token, a double hit)
        self.steps: list[list[tuple[int, int]]] = []  # (kind, value) pieces, for state updates
        for i in range(V):
            pieces = _parse(vocab.pieces[i]) if i < len(vocab.pieces) else []
            self.steps.append(pieces)
            if not pieces or any(k == OTHER for k, _ in pieces):
                continue
            first[i], last[i] = pieces[0][0], pieces[-1][0]
            seen_position = pieces[0][0] == BAR
            struck: set[int] = set()
            for j, (kind, value) in enumerate(pieces):
                if kind == BAR and j > 0:
                    broken[i] = True
                elif kind == TIMESIG:
                    meter[i] = vocab.meters.index(value)
                elif kind == POSITION:
                    first_pos[i] = value if first_pos[i] < 0 else first_pos[i]
                    max_pos[i] = max(max_pos[i].item(), value)
                    seen_position, struck = True, set()
                elif kind == PITCH:
                    if value in struck:
                        broken[i] = True
                    struck.add(value)
                    if not seen_position:
                        lead_pitches[i] |= 1 << (value - PITCH_BASE)
        self.first, self.first_pos, self.max_pos = first.to(device), first_pos.to(device), max_pos.to(device)
        self.meter, self.lead_pitches, self.broken = meter.to(device), lead_pitches.to(device), broken.to(device)
        self.accepts = torch.zeros(6, 6, dtype=torch.bool, device=device)  # [state, first kind]
        for state, kinds in _ACCEPTS.items():
            for kind in kinds:
                self.accepts[state, kind] = True
        self.vocab = vocab


@dataclass
class BarState:
    """Where one sequence stands in the grammar."""

    bars_wanted: int
    meter: tuple[int, int]
    state: int = START
    position: int = -1
    bars: int = 0  # Bar tokens emitted so far
    struck: int = 0  # pitch bitmask at the current position
    tokens_in_bar: int = 0
    done: bool = False
    ids: list[int] = field(default_factory=list)

    def advance(self, token: int, table: TokenTable) -> None:
        """Apply a sampled token; a Bar beyond the last wanted bar ends the sequence instead."""
        pieces = table.steps[token]
        if pieces[0][0] == BAR and self.bars == self.bars_wanted:
            self.done = True
            return
        self.ids.append(token)
        self.tokens_in_bar += 1
        for kind, value in pieces:
            if kind == BAR:
                self.bars, self.position, self.struck, self.tokens_in_bar = self.bars + 1, -1, 0, 0
            elif kind == POSITION:
                self.position, self.struck = value, 0
            elif kind == PITCH:
                self.struck |= 1 << (value - PITCH_BASE)
        self.state = _AFTER[pieces[-1][0]]


MAX_TOKENS_PER_BAR = 200  # a real bar needs < 100; past this the bar is closed by force


def allowed_mask(states: list[BarState], table: TokenTable) -> torch.Tensor:
    """(B, V) bool: the ids each sequence may take next."""
    device = table.first.device
    state = torch.tensor([s.state for s in states], device=device)
    position = torch.tensor([s.position for s in states], device=device)
    struck = torch.tensor([s.struck for s in states], device=device)
    limit = torch.tensor([positions_per_bar(s.meter) for s in states], device=device)
    meter = torch.tensor([table.vocab.meters.index(tuple(s.meter)) for s in states], device=device)
    force_bar = torch.tensor([s.tokens_in_bar >= MAX_TOKENS_PER_BAR for s in states], device=device)

    mask = table.accepts[state][:, table.first] & ~table.broken  # (B, V)
    mask &= (table.meter == -1) | (table.meter == meter[:, None])
    starts_bar = table.first == BAR
    # A token's positions continue the current bar unless it opens a new one.
    rising = (table.first_pos == -1) | starts_bar | (table.first_pos > position[:, None])
    mask &= rising & (table.max_pos < limit[:, None])
    mask &= (table.lead_pitches & struck[:, None]) == 0
    mask &= ~force_bar[:, None] | starts_bar
    return mask


def _parse(pieces: list[str]) -> list[tuple[int, object]]:
    parsed = []
    for piece in pieces:
        name, _, value = piece.partition("_")
        kind = _KIND.get(name, OTHER)
        if kind == TIMESIG:
            parsed.append((kind, tuple(int(x) for x in value.split("/"))))
        elif kind in (POSITION, PITCH, VELOCITY):
            parsed.append((kind, int(value)))
        else:
            parsed.append((kind, None))
    return parsed
