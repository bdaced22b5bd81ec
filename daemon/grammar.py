"""Grammar-constrained decoding: only token sequences that are valid drum bars can be sampled.

The grammar over base REMI tokens is

    Bar TimeSig_<requested> ( Position_p ( PitchDrum_k Velocity_v )+ )+   ... repeated per bar

with positions strictly rising and below the bar's length, no piece struck twice at one
position, and exactly the requested number of bars. Sampled tokens also keep to what one drummer
can play: no piece but the snare's struck again within 1/24 of a quarter note of itself (one
position in x/4 and x/2 meters, two in x/8: `reach`), and one hi-hat state (closed, pedal or
open) at a time. A sampled bar holds at least one hit (the
data has empty bars, at the ends of takes; a groove that asks for four bars wants four bars of
drums); known tokens a row starts from (`BarState.follow`, a clip) may have empty bars.

A row may also carry `onsets`, positions per bar that must each get a hit (drumify: a groove
that follows a rhythm). Then a token may not move past the next such position, nor close the
bar before all of them are played; the rest of the grammar is unchanged. A row may carry `anchors`
too, (position, pitch) pairs every sampled bar plays (a style's four on the floor): an anchor is
kept by its piece struck at its position or up to `anchor_window` positions before it (a hit
played a hair early), so a token may not pass an anchor still to keep, and one that reaches it
strikes its pieces first or with them. A model id may stand for several base
tokens (a BPE merge), so every id is summarised once into arrays (what it starts with, the
positions and pitches it holds, what it ends with). What a sequence may take next depends only
on a small key (`BarState.key`); the ids allowed for a key are computed with a few vectorised
filters and then kept in an LRU cache, so a sampling step usually costs a lookup, not a pass
over the vocabulary.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field

import numpy as np

from daemon.kit import FEET, zones_of
from daemon.vocab import POSITIONS_PER_BEAT, DrumHit, Vocabulary

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
    AFTER_TIMESIG: {POSITION},
    AFTER_POSITION: {PITCH},
    AFTER_PITCH: {VELOCITY},
    AFTER_VELOCITY: {PITCH, POSITION, BAR},
}

PITCH_BASE = 32  # pitch bit i stands for MIDI pitch PITCH_BASE + i; the kit spans 35..60
MAX_TOKENS_PER_BAR = 200  # a real bar needs < 100; past this the bar is closed by force
# Pieces struck at one position: GMD's 1,150 takes strike 5 at most (8 of 367k positions, 4 in
# 362). Without a cap, a model kept from moving on (a drumify onset due just ahead, in a meter it
# barely knows) piled 20+ pieces onto one instant.
MAX_HITS_AT_ONCE = 5
# Of those, two struck with sticks (kit.FEET play the rest). GMD's test beats strike three hand
# pieces at one position in 15 of 35,055 positions (0.04 %); drumify's sampling, with an onset due
# just ahead, in 1.5 % of its positions (crash, ride, tom and snare at once, by one drummer).
MAX_HANDS_AT_ONCE = 2
# A piece struck again one position (1/24 of a quarter in x/4, 21 ms at 120 BPM) later is one limb restriking
# faster than it can, or an early hit played twice. GMD's train split does it on the snare
# (drags, ruffs, buzz rolls: 52 of 1,000 snare hits; snare rim 7.5, side stick 7.6) and hardly
# anywhere else (kick 5.7, closed hat 1.1, ride 1.9, floor tom 1.7 of 1,000); the model did it
# 5-25x as often (kick 28, closed hat 24, floor tom 42), a flammed kick or a stuttered hat.
RESTRIKES = zones_of(38)  # the snare's head, rim and cross-stick: two hands, grace notes
HATS = zones_of(42)  # closed, pedal, open: one hi-hat, in one state at a time
HAT_BITS = sum(1 << (pitch - PITCH_BASE) for pitch in HATS)
SINGLE_BITS = sum(1 << i for i in range(32) if PITCH_BASE + i not in RESTRIKES)  # pieces struck once at a time
HAND_BITS = sum(1 << i for i in range(32) if PITCH_BASE + i not in FEET)
MAX_CACHED_KEYS = 10_000  # allowed-id arrays kept (~2 KB each; ~1,000 keys cover 4/4 grooves)


def reach(meter: tuple[int, int]) -> int:
    """How many positions after a hit its piece may not be struck again (RESTRIKES aside): 1/24
    of a quarter note, and at least one position (x/8: 2, where one is 1/48 of a quarter: with a
    reach of one, 24 grooves of 7/8 at 140 BPM held 23 kick, hat and ride doubles under 30 ms)."""
    return max(1, meter[1] // 4)


REACH = 2  # the longest reach of a supported meter (x/8)


def anchor_window(meter: tuple[int, int]) -> int:
    """How many positions early an anchor's hit may come and keep it: twice `reach` (1/12 of a
    quarter note), so a hit that keeps a piece from being struck on its anchor keeps the anchor."""
    return 2 * reach(meter)


def positions_per_bar(meter: tuple[int, int]) -> int:
    return meter[0] * POSITIONS_PER_BEAT  # MidiTok counts positions per beat of the denominator


class TokenTable:
    """Per-id summaries of the vocabulary, built once per model, and the allowed-id lookup."""

    def __init__(self, vocab: Vocabulary) -> None:
        # Only music ids can ever be sampled; the conditioning ids after them never can.
        V = self.size = len(vocab.pieces)
        first = np.full(V, OTHER)
        first_pos = np.full(V, -1)  # first Position in the token, -1 if none
        max_pos = np.full(V, -1)
        meter = np.full(V, -1)  # index into vocab.meters, -1 if no TimeSig
        lead_pitches = np.zeros(V, dtype=np.int64)  # pitches before the token's first Position
        first_pitches = np.zeros(V, dtype=np.int64)  # pitches at the token's first Position
        second_pitches = np.zeros(V, dtype=np.int64)  # and at its second
        second_gap = np.full(V, 10**6)  # positions from its first Position to its second
        all_pitches = np.zeros(V, dtype=np.int64)  # every pitch the token strikes
        last_pitches = np.zeros(V, dtype=np.int64)  # pitches at its last Position
        broken = np.zeros(V, dtype=bool)  # can never be valid (Bar mid-token, a double hit, ...)
        unplayable = np.zeros((REACH + 1, V), dtype=bool)  # [reach]: breaks a drummer's rule inside itself
        self.steps: list[list[tuple[int, object]]] = []  # (kind, value) pieces, for state updates
        for i in range(V):
            pieces = _parse(vocab.pieces[i])
            self.steps.append(pieces)
            if not pieces or any(k == OTHER for k, _ in pieces):
                continue
            first[i] = pieces[0][0]
            seen_position = pieces[0][0] == BAR
            struck: set[int] = set()
            played: dict[int, set[int]] = {}  # pitches by position, in this token
            lead = struck  # pitches at the position the token starts at, before its first Position
            for j, (kind, value) in enumerate(pieces):
                if kind == BAR and j > 0:
                    broken[i] = True
                elif kind == TIMESIG:
                    meter[i] = vocab.meters.index(value)
                elif kind == POSITION:
                    broken[i] |= value <= max_pos[i]  # positions inside a token must rise too
                    if first_pos[i] >= 0 and second_gap[i] == 10**6:
                        second_gap[i] = value - first_pos[i]
                    first_pos[i] = value if first_pos[i] < 0 else first_pos[i]
                    max_pos[i] = max(max_pos[i], value)
                    seen_position, struck = True, played.setdefault(value, set())
                    last_pitches[i] = 0
                elif kind == PITCH:
                    broken[i] |= value in struck
                    unplayable[:, i] |= value in HATS and bool(struck & HATS)
                    if seen_position and value not in RESTRIKES:
                        for r in range(1, REACH + 1):
                            unplayable[r, i] |= any(value in played.get(max_pos[i] - k, ()) for k in range(1, r + 1))
                    struck.add(value)
                    bit = 1 << (value - PITCH_BASE)
                    all_pitches[i] |= bit
                    if seen_position:
                        last_pitches[i] |= bit
                    if not seen_position:
                        lead_pitches[i] |= bit
                    elif first_pos[i] == max_pos[i]:
                        first_pitches[i] |= bit
                    elif first_pos[i] + second_gap[i] == max_pos[i]:
                        second_pitches[i] |= bit
            unplayable[:, i] |= any(sum(pitch not in FEET for pitch in at) > MAX_HANDS_AT_ONCE
                                    for at in (lead, *played.values()))
        accepts = np.zeros((6, 6), dtype=bool)  # [state, first kind]
        for state, kinds in _ACCEPTS.items():
            accepts[state, list(kinds)] = True
        self.first, self.first_pos, self.max_pos = first, first_pos, max_pos
        self.meter, self.lead_pitches, self.broken = meter, lead_pitches, broken
        self.first_pitches, self.second_pitches, self.second_gap = first_pitches, second_pitches, second_gap
        self.unplayable = unplayable
        self.all_pitches = all_pitches  # of the shipped vocabulary's tokens: lead | first | second pitches
        self.last_pitches = last_pitches
        self.lead_hats = (lead_pitches & HAT_BITS) != 0
        self.lead_hits = np.array([int(m).bit_count() for m in lead_pitches])  # hits before the first Position
        self.lead_hands = np.array([(int(m) & HAND_BITS).bit_count() for m in lead_pitches])
        self.starts_bar = first == BAR
        self.state_ok = accepts[:, first] & ~broken  # (6, V): what each state accepts at all
        # A token continues the current bar's positions from its first Position on, unless it
        # has none or opens a new bar: it fits after `position` if continues_from > position.
        self.continues_from = np.where((first_pos == -1) | self.starts_bar, np.iinfo(np.int64).max, first_pos)
        self._bases: dict[tuple, np.ndarray] = {}
        self._allowed = functools.lru_cache(maxsize=MAX_CACHED_KEYS)(self._allowed_ids)
        self.vocab = vocab
        self._choices: dict[int, np.ndarray] = {}
        # For turning tokens back into hits (MidiTok's own arithmetic, see `hits`).
        self.ticks_per_quarter = vocab.ticks_per_quarter

    def choices(self, denominator: int) -> np.ndarray:
        """Per id, which musical choice it makes in a meter over `denominator`: ids that play the
        same pieces at the same 16ths, only louder or softer or off the grid by a hair, make one
        (numbered densely from 0) for temperature (generate.sample_top_p). Positions count the
        denominator's beats, so a 16th is 3 of them in x/2, 6 in x/4 and 12 in x/8."""
        if denominator not in self._choices:
            sixteenth = POSITIONS_PER_BEAT * denominator / 16
            seen: dict[tuple, int] = {}
            self._choices[denominator] = np.array([seen.setdefault(_what_and_where(s, sixteenth), len(seen))
                                                   for s in self.steps])
        return self._choices[denominator]

    def allowed(self, s: "BarState") -> np.ndarray:
        """Ascending ids that `s` may take next (never empty; a shared, read-only array)."""
        return self._allowed(*s.key())

    def _allowed_ids(self, state: int, meter: tuple[int, int], position: int, struck: int, room: int,
                     hands: int, force_bar: bool, due: int, due_next: int, rest_ok: bool,
                     played: tuple[tuple[int, ...], bool] | None, pieces: int,
                     anchor: tuple[int, int] = (-1, 0), anchor_next: tuple[int, int] = (-1, 0)) -> np.ndarray:
        """`room`: how many more pieces may be struck at this position, `hands` how many more of
        them with sticks; `due`: the next position
        of this bar that must get a hit (-1: none left); `due_next`: the next bar's first such
        position, for tokens that open that bar; `rest_ok`: a bar opened by known tokens may stay
        empty (a Bar may follow its TimeSig); `played`: for sampled tokens, the pieces struck at
        the positions just before this one (BarState.behind) and whether the next bar is fresh,
        else None; `pieces`: the pitches sampled tokens may strike, as bits (0: any); `anchor`:
        this bar's next anchor still to keep and the pieces it still wants, as bits ((-1, 0): none),
        `anchor_next` the next bar's first, for tokens that open that bar."""
        ids = self._base(state, meter, force_bar and due < 0 and anchor[0] < 0)
        if rest_ok and state == AFTER_TIMESIG:
            bars = self._base(AFTER_VELOCITY, meter, False)
            ids = np.union1d(ids, bars[self.starts_bar[bars]]).astype(np.int32)
        ids = ids[self.continues_from[ids] > position]  # positions rise within a bar
        if struck:  # no piece struck twice at a position, and no more than `room` more (`hands` by hand)
            ids = ids[((self.lead_pitches[ids] & struck) == 0) & (self.lead_hits[ids] <= room)
                      & (self.lead_hands[ids] <= hands)]
        if played is not None:
            ids = ids[self._playable(ids, meter, position, struck, *played)]
            if pieces:
                ids = ids[(self.all_pitches[ids] & ~pieces) == 0]
        if due >= 0:  # stay in the bar, at or before the due position
            ids = ids[~self.starts_bar[ids] & (self.max_pos[ids] <= due)]
        elif due_next >= 0:  # a token opening the next bar must not pass its first due position
            ids = ids[~self.starts_bar[ids] | (self.max_pos[ids] <= due_next)]
        at, wanted = anchor
        if at >= 0:  # stay in the bar, not past the anchor; on it, its pieces first or with them
            ids = ids[~self.starts_bar[ids] & (self.max_pos[ids] <= at)]
            if position == at:
                ids = ids[_first_or_with(self.lead_pitches[ids], wanted)]
            else:
                ids = ids[(self.max_pos[ids] < at) | _first_or_with(self.last_pitches[ids], wanted)]
        elif anchor_next[0] >= 0:  # so must a token opening the next bar
            at, wanted = anchor_next
            opens = self.starts_bar[ids]
            ids = ids[~opens | (self.max_pos[ids] < at)
                      | ((self.max_pos[ids] == at) & _first_or_with(self.last_pitches[ids], wanted))]
        ids.flags.writeable = False
        return ids

    def _playable(self, ids: np.ndarray, meter: tuple[int, int], position: int, struck: int,
                  behind: tuple[int, ...], fresh_next: bool) -> np.ndarray:
        """Which ids keep to one drummer's hands and feet (RESTRIKES, HATS, `reach`): none strikes
        a piece within reach after the same piece (`struck` here, `behind` at the positions before:
        relative to the bar's first position while none is written yet), in itself, at its first
        or second position, or across a bar line unless the next bar is fresh; and none adds a
        hi-hat state to one already struck here."""
        r, per_bar, here = reach(meter), positions_per_bar(meter), max(position, 0)
        lead, first, second = self.lead_pitches[ids], self.first_pitches[ids], self.second_pitches[ids]
        near = (struck & SINGLE_BITS, *behind)  # struck at here, here - 1, here - 2
        ok = ~self.unplayable[r][ids] & ((lead & (behind[0] | (behind[1] if r > 1 else 0))) == 0)
        if struck & HAT_BITS:
            ok &= ~self.lead_hats[ids]
        opens = self.starts_bar[ids]
        distance = np.where(opens, per_bar - position + self.first_pos[ids] if position >= 0 and not fresh_next
                            else 10**6, self.first_pos[ids] - here)
        distance = np.where(self.first_pos[ids] >= 0, distance, 10**6)
        for pitches, offset in ((first, 0), (second, self.second_gap[ids])):
            away = distance + offset  # positions from here to the token's first (second) position
            for d in range(0, r + 1):
                at = away == d
                if not at.any():
                    continue
                earlier = 0  # what was struck within reach before a hit d positions on from here
                for k in range(max(0, 1 - d), r - d + 1):
                    earlier |= near[k]
                clash = pitches[at] & (earlier | (lead[at] & SINGLE_BITS if d >= 1 else 0))
                ok[at] &= clash == 0
        return ok

    def _base(self, state: int, meter: tuple[int, int], force_bar: bool) -> np.ndarray:
        """Ids a state accepts in a meter whatever the position: right kind first, the right
        TimeSig, positions inside the bar (and only a Bar when one is forced)."""
        key = state, meter, force_bar
        if key not in self._bases:
            mask = self.state_ok[state] & ((self.meter == -1) | (self.meter == self.vocab.meters.index(meter)))
            mask &= self.max_pos < positions_per_bar(meter)
            if force_bar:
                mask &= self.starts_bar
            self._bases[key] = np.flatnonzero(mask).astype(np.int32)
        return self._bases[key]

    def hits(self, ids: list[int]) -> list[DrumHit]:
        """The drum hits of a grammar-valid id sequence, in beats from its first Bar.

        MidiTok's REMI decoder does the same (tests check that they agree); doing it from the
        parsed pieces takes microseconds instead of a round trip through its BPE decoder.
        """
        tpq, hits = self.ticks_per_quarter, []
        bar_tick, tick, bars, pitch = 0, 0, 0, None
        ticks_per_bar, ticks_per_pos = 4 * tpq, tpq // POSITIONS_PER_BEAT  # 4/4 until a TimeSig says
        for token in ids:
            for kind, value in self.steps[token]:
                if kind == BAR:
                    bar_tick = tick = bar_tick + ticks_per_bar if bars else 0
                    bars += 1
                elif kind == TIMESIG:
                    num, den = value
                    ticks_per_bar, ticks_per_pos = num * tpq * 4 // den, tpq * 4 // den // POSITIONS_PER_BEAT
                elif kind == POSITION:
                    tick = bar_tick + value * ticks_per_pos
                elif kind == PITCH:
                    pitch = value
                elif kind == VELOCITY and pitch is not None:
                    hits.append(DrumHit(pitch, tick / tpq, value))
                    pitch = None
        return hits


@dataclass
class BarState:
    """Where one sequence stands in the grammar."""

    bars_wanted: int
    meter: tuple[int, int]
    state: int = START
    position: int = -1
    bars: int = 0  # Bar tokens emitted so far
    struck: int = 0  # pitch bitmask at the current position
    # Pieces outside RESTRIKES struck 1 and 2 positions before the current one (before the bar's
    # first position while no Position is written: after a Bar, a hit at the old bar's end is
    # behind the new bar's 0); a reach of 1 keeps only the first.
    behind: tuple[int, int] = (0, 0)
    tokens_in_bar: int = 0
    done: bool = False
    ids: list[int] = field(default_factory=list)
    onsets: tuple[tuple[int, ...], ...] = ()  # per bar, ascending positions that must each get a hit
    fresh_bar: int = 0  # a bar (from 1) that does not follow the one before it in time: nothing restrikes across
    pieces: tuple[int, ...] = ()  # the only pitches sampled tokens may strike (a cymbal line's own); empty: any
    anchors: tuple[tuple[int, int], ...] = ()  # (position, pitch) pairs every sampled bar plays
    known: bool = False  # the tokens so far were given (follow), not sampled: their bar may be a rest
    following: bool = False  # inside follow(): a clip may be denser than the sampler's caps allow

    def __post_init__(self) -> None:
        self.pieces_bits = sum(1 << (pitch - PITCH_BASE) for pitch in self.pieces)  # `pieces` as key() needs them
        self.per_bar = {}  # the anchors as {position: pitch bits}
        for position, pitch in self.anchors:
            if not 0 <= position < positions_per_bar(self.meter):
                raise ValueError(f"anchor position {position} is outside a bar of {self.meter[0]}/{self.meter[1]}")
            if not PITCH_BASE <= pitch < PITCH_BASE + 32:
                raise ValueError(f"anchor pitch {pitch} is not a drum the grammar knows")
            self.per_bar[position] = self.per_bar.get(position, 0) | 1 << (pitch - PITCH_BASE)
        self.anchored = functools.reduce(int.__or__, self.per_bar.values(), 0)
        # Both are replaced, never changed in place: a copied state keeps its own.
        self.unmet: dict[int, int] = {}  # this bar's anchors still to keep
        self.last_at: dict[int, int] = {}  # anchored pitch bit -> the position this bar last struck it

    def key(self) -> tuple:
        """Everything the allowed set depends on (TokenTable.allowed caches by it)."""
        # Close an overlong bar by force, but only where a Bar may come: a half-written hit
        # (after a Position or a pitch) must be finished first, or nothing would be allowed.
        # A clip being followed may be as dense as it is; the caps hold from the first sampled token,
        # which may find more pieces at its position than it may add to (room 0: move on).
        force_bar = not self.following and self.tokens_in_bar >= MAX_TOKENS_PER_BAR and self.state == AFTER_VELOCITY
        room = 128 if self.following else max(0, MAX_HITS_AT_ONCE - self.struck.bit_count())  # 128 pitches: no cap
        hands = 128 if self.following else max(0, MAX_HANDS_AT_ONCE - (self.struck & HAND_BITS).bit_count())
        rest_ok = self.known and self.state == AFTER_TIMESIG
        played = None if self.following else (self.behind, self.bars + 1 == self.fresh_bar)
        due = due_next = -1
        if self.onsets:
            bar = self.bars - 1  # the bar being written; -1 before the first Bar
            here = self.onsets[bar] if 0 <= bar < len(self.onsets) else ()
            due = next((p for p in here if p > self.position), -1)
            following = self.onsets[bar + 1] if bar + 1 < len(self.onsets) else ()
            due_next = following[0] if following else -1
        anchor = anchor_next = (-1, 0)
        if self.per_bar and not self.following:
            ahead = [p for p in self.unmet if p >= self.position]
            if ahead:
                anchor = min(ahead), self.unmet[min(ahead)]
            elif self.bars < self.bars_wanted:
                unmet = self._new_bar()
                if unmet:
                    anchor_next = min(unmet), unmet[min(unmet)]
        return (self.state, self.meter, self.position, self.struck, room, hands, force_bar, due, due_next,
                rest_ok, played, self.pieces_bits, anchor, anchor_next)

    def _new_bar(self) -> dict[int, int]:
        """The next bar's anchors still to keep once it opens: all, but for those whose piece this
        bar struck on its last positions, within `anchor_window` of one on the next bar's first."""
        unmet = dict(self.per_bar)
        if self.bars + 1 == self.fresh_bar or not self.last_at:
            return unmet
        window, end = anchor_window(self.meter), positions_per_bar(self.meter)
        for position, bits in self.per_bar.items():
            for bit, at in self.last_at.items():
                if bits & bit and at >= end - (window - position):
                    bits &= ~bit
            if bits:
                unmet[position] = bits
            else:
                del unmet[position]
        return unmet

    def advance(self, token: int, table: TokenTable) -> None:
        """Apply a sampled token; a Bar beyond the last wanted bar ends the sequence instead."""
        self.known = False
        pieces = table.steps[token]
        if pieces[0][0] == BAR and self.bars == self.bars_wanted:
            self.done = True
            return
        self.ids.append(token)
        self.tokens_in_bar += 1
        for kind, value in pieces:
            if kind == BAR:
                fresh = self.bars + 1 == self.fresh_bar  # nothing before it is next to it
                ended = positions_per_bar(self.meter) - self.position if self.position >= 0 else 10**6
                self.behind = (0, 0) if fresh else self._moved_on(ended)
                if self.per_bar:
                    self.unmet, self.last_at = self._new_bar(), {}
                self.bars, self.position, self.struck, self.tokens_in_bar = self.bars + 1, -1, 0, 0
            elif kind == POSITION:
                self.behind = self._moved_on(value - max(self.position, 0))
                self.position, self.struck = value, 0
            elif kind == PITCH:
                bit = 1 << (value - PITCH_BASE)
                self.struck |= bit
                if bit & self.anchored:
                    self._kept(bit)
        self.state = _AFTER[pieces[-1][0]]

    def _kept(self, bit: int) -> None:
        """A piece struck here keeps the anchors of it from here to `anchor_window` positions on."""
        self.last_at = {**self.last_at, bit: self.position}
        window = anchor_window(self.meter)
        self.unmet = {position: bits & ~bit if position - window <= self.position <= position else bits
                      for position, bits in self.unmet.items()
                      if bits & ~bit or not position - window <= self.position <= position}

    def _moved_on(self, steps: int) -> tuple[int, int]:
        """`behind` once `steps` positions on from here (what is struck here among it)."""
        near = (self.struck & SINGLE_BITS if self.position >= 0 else 0, *self.behind)
        moved = [near[k + 1 - steps] if 0 <= k + 1 - steps < len(near) else 0 for k in range(REACH)]
        return moved[0], moved[1] if reach(self.meter) > 1 else 0

    def allows(self, token: int, table: TokenTable) -> bool:
        ids = table.allowed(self)
        i = int(np.searchsorted(ids, token))
        return i < len(ids) and ids[i] == token

    def follow(self, tokens: list[int], table: TokenTable) -> None:
        """Advance through known tokens (e.g. a clip to continue), checking each one.

        Unlike sampled ones, known bars may be empty (a clip with a bar of rest), and so may
        the bar the known tokens end in: sampling may close it. Raises ValueError at the first
        token the grammar does not allow here, or if the tokens run past the last wanted bar.
        """
        self.following = True
        try:
            for i, token in enumerate(tokens):
                self.known = True
                if self.done or not self.allows(token, table):
                    raise ValueError(f"token {i} ({token}) does not continue a valid sequence here")
                self.advance(token, table)
                self.known = True
                if self.done:
                    raise ValueError(f"token {i} ({token}) opens bar {self.bars + 1} of {self.bars_wanted}")
        finally:
            self.following = False
            self.unmet = {}  # the bar they end in was given, not sampled: its anchors are not ours to keep


def _first_or_with(struck: np.ndarray, wanted: int) -> np.ndarray:
    """Pieces struck on an anchor that keep it keepable: only its own (the rest come after), or
    all of them at once. Anything else might take the room, the hands or the hi-hat state its
    pieces need (MAX_HITS_AT_ONCE, MAX_HANDS_AT_ONCE, HATS)."""
    return ((struck & ~wanted) == 0) | ((struck & wanted) == wanted)


def _what_and_where(steps: list[tuple[int, object]], sixteenth: float) -> tuple:
    """A token's pieces with velocities left out and positions taken to the nearest 16th (halves up)."""
    return tuple((kind,) if kind == VELOCITY else (kind, math.floor(value / sixteenth + 0.5)) if kind == POSITION
                 else (kind, value) for kind, value in steps)


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
