"""Working on a clip the producer already has: continue it, vary it, fill it, drumify it, humanize it.

Continue and variation turn the clip into model tokens (the *primer*), let the generator play
on from there under the same grammar, and cut out the part the op asked for. The clip's own
notes are never re-quantised: what is kept is returned exactly as it came in; the new notes of
a programmed clip (its notes on a grid) come on its grid too (clip_grids), and where each of its
drums plays at one velocity, new hits of that drum come at it (clip_velocities). Fill plays its bars
afresh as fills (fill_clip says why), and drumify hears no primer either: the clip's onsets
become positions the grammar makes the groove play on.
Humanize is the humanizer's (daemon/humanize.py), in the request's kit. The ops that sample
take `abandoned`, asked before every decode step: once it says nobody waits for the answer
(the daemon's client cancelled it, or its timeout passed), they stop and raise Abandoned.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import random
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable

from daemon import kit
from daemon.data import levels_of
from daemon.generate import Generator, GrooveRequest, Pattern, variation_seed
from daemon.grammar import MAX_HANDS_AT_ONCE
from daemon.humanize import Humanizer, on_a_grid
from daemon.styles import DRUM_PITCHES
from daemon.vocab import LEVELS, POSITIONS_PER_BEAT
from shared.notes import Note, across_the_line, bar_beats, without_doubled_ones
from shared.protocol import E_BAD_REQUEST, SEED_RANGE, ProtocolError


Gone = Callable[[], bool]  # the daemon's "nobody waits for this answer any more"
PERCUSSION = range(27, 88)  # GM2's percussion keys (High Q to Open Surdo): what humanize can play a feel into
PROGRAMMED = 0.9  # share of a clip's notes exactly on a grid that makes it programmed, not played
SNAP_GRIDS = (4, 3, 8, 6)  # per beat, coarse to fine: 16ths, 8th triplets, 32nds, 16th triplets
FILL_GAP = 0.25  # beats: a fill bar keeps the groove up to a 16th before the fill's first hit
# A fill as loud as the groove it ends, times this (as far as its loudest hit may go, to 127):
# GMD's fill takes are 1.22x as loud as the beats of the same drummer, session and genre (median
# of 29 such groups of the train split, quartiles 1.13-1.28). Played afresh, a fill's loudness had
# nothing to do with the clip's (correlation -0.03 over 144 fills; a reggae clip at velocity 50
# got fills at 73-117).
FILL_LIFT = 1.2
FILL_CEILING = 99  # and no louder on average than 9 in 10 of GMD's 519 fill takes (median 77.6)


class Abandoned(Exception):
    """A clip op stopped part-way because nobody waits for its answer any more."""


def _sample(generator: Generator, requests: list[GrooveRequest], abandoned: Gone | None) -> list[list[Pattern]]:
    found = generator.generate(requests, None if abandoned is None else lambda _: abandoned())
    if any(patterns is None for patterns in found):
        raise Abandoned
    return found


def primer(generator: Generator, notes: list[Note], bars: int, req: GrooveRequest,
           take: bool = False) -> tuple[int, ...]:
    """Model ids for exactly `bars` bars of `notes` (user kit -> canonical kit, one hit per piece and slot).
    A hit in the last half position is heard on the last position, where it is played: rounded
    into the next bar, the next bar's one played early came back from the model as a new note,
    beside the clip's own (a flam where 14 of 48 continuations of GMD clips begin). For a `take`
    that replaces the clip (a variation) it is the take's one, on the next bar's first position."""
    meter = tuple(req.meter)
    bar = bar_beats(meter)
    piece = kit.played_as(req.kit, (n.pitch for n in notes))
    grid = POSITIONS_PER_BEAT * meter[1] / 4  # positions per quarter note
    last = round(bars * bar * grid) - (0 if take else 1)
    seen, canonical = set(), []
    for n in notes:
        if not 0 <= n.start < bars * bar:
            continue
        pitch = piece(n.pitch)  # a TD-11 edge zone is its piece too
        at = min(math.floor(n.start * grid + 0.5), last)  # its position, exactly: two hits a half position apart made
        if (pitch, at) not in seen:              # two keys here and one position in MidiTok, which the grammar refused
            seen.add((pitch, at))
            canonical.append(dataclasses.replace(n, pitch=pitch, start=at / grid))
    vocab = generator.vocab
    base = vocab.encode_notes(canonical, meter)
    opened = sum(vocab.base_names[t] == "Bar_None" for t in base)
    base_ids = vocab.base_vocab  # unmerged REMI token -> id
    empty_bar = [base_ids["Bar_None"], base_ids[f"TimeSig_{meter[0]}/{meter[1]}"]]
    return tuple(vocab.merge(base + empty_bar * (bars - opened)))


def _as_busy(generator: Generator, req: GrooveRequest, heard: tuple[int, ...]) -> GrooveRequest:
    """`req` with the clip's own density and complexity where it leaves them open (data.levels_of
    of its `heard` ids; a clip with no hits leaves them to the style). Left open, each take drew
    a level from the genre's priors, whatever the clip played: pressed six times, variations of
    12 clips ended with 0.56-1.66x their hits."""
    vocab = generator.vocab
    measured = levels_of([vocab.base_vocab[piece] for t in heard for piece in vocab.pieces[t]], vocab)
    if measured is None:
        return req
    as_asked = [level / (LEVELS - 1) for level in measured]  # as a request says it, 0..1
    return dataclasses.replace(req, density=as_asked[0] if req.density is None else req.density,
                               complexity=as_asked[1] if req.complexity is None else req.complexity)


def unheard(notes: list[Note], kit_map: dict[int, int]) -> list[Note]:
    """The notes the model cannot hear: in the request's kit, not on a drum it plays (a melody's
    notes, or a Drum Rack's pads that need a `kit` map)."""
    drum = _hears(kit_map, notes)
    return [n for n in notes if not drum(n)]


def _hears(kit_map: dict[int, int], clip: list[Note]) -> Callable[[Note], bool]:
    """Whether the model hears a note of this kit, in this clip, as a drum it plays."""
    piece = kit.played_as(kit_map, (n.pitch for n in clip))
    return lambda n: piece(n.pitch) in DRUM_PITCHES


def played_as_hard(velocities: list[float]) -> float:
    """How hard a groove is played: the mean velocity of its loudest half. A plain mean heard a
    take with fewer ghost notes than its clip as louder, and turned its accents down (a clip of
    12 ghost notes at 28 and a backbeat at 110: the take's backbeat came out at 52-58); a
    ghost-note threshold moved with the scaling, so pressed again and again the level walked.
    Louder or softer (_as_loud), the loudest half stays the loudest half."""
    loud = sorted(velocities, reverse=True)[: max(1, len(velocities) // 2)]
    return sum(loud) / len(loud)


def clip_velocities(notes: list[Note], length: float, kit_map: dict[int, int]) -> dict[int, int]:
    """Each drum's velocity (by the piece it is heard as) in a clip programmed at one velocity a
    drum, as a piano roll or step sequencer leaves it (all at 100, or kicks at 110 under hats at
    80); empty for a clip played with dynamics, and for one too short to say (fewer than two hits
    a drum on average). Continued, a clip all at 100 came back with kicks at 60-114 and hats at
    48-123 (24 continuations of a rock clip): its new bars sounded played, its own programmed.
    By the clip's own pieces (a clap layered on the snare at its own velocity is a drum of its own),
    which in_clip_pitches keeps new notes on."""
    piece = kit.heard_as(kit_map)
    played: dict[int, set[int]] = defaultdict(set)
    hits = 0
    for n in notes:
        if 0 <= n.start < length and piece(n.pitch) in DRUM_PITCHES:
            played[piece(n.pitch)].add(n.velocity)
            hits += 1
    if not played or hits < 2 * len(played) or any(len(v) > 1 for v in played.values()):
        return {}
    return {drum: v for drum, (v,) in played.items()}


def _as_programmed(notes: list[Note], velocities: dict[int, int], kit_map: dict[int, int]) -> list[Note]:
    """New hits of a drum the clip programmed (clip_velocities) at its velocity; a hit softer than
    half of it stays as soft, a ghost note, not an accent on an off-16th; a drum the clip does not
    play keeps its own."""
    if not velocities:
        return notes
    piece = kit.heard_as(kit_map)
    out = []
    for n in notes:
        v = velocities.get(piece(n.pitch))
        out.append(n if v is None or 2 * n.velocity < v else dataclasses.replace(n, velocity=v))
    return out


def in_clip_pitches(notes: list[Note], kit_map: dict[int, int]) -> Callable[[Note], Note]:
    """A new note on the pitch the clip plays its piece on, where the models hear that pitch as
    the piece (kit.PLAYED_AS: a clap as the snare, a kick on 35 as the kick, a shaker as the
    hats) and the clip plays its piece's family (kit.GROUPS) on no pitch of the kit's own: a
    clip's claps were continued, varied and filled with GM's snare. A clip with toms and a conga
    keeps new toms on the toms."""
    own, hears = kit.heard_as(kit_map), kit.played_as(kit_map, (n.pitch for n in notes))
    pitches: dict[int, set[int]] = defaultdict(set)
    for n in notes:
        pitches[hears(n.pitch)].add(n.pitch)
    kits = {own(n.pitch) for n in notes if own(n.pitch) not in kit.PLAYED_AS}  # pieces played as themselves
    family = {piece: set(group) for group in kit.GROUPS.values() for piece in group}
    moved = {kit_map.get(piece, piece): pitch for piece, (pitch, *more) in pitches.items()
             if not more and own(pitch) in kit.PLAYED_AS and not family.get(piece, {piece}) & kits}
    return lambda n: dataclasses.replace(n, pitch=moved[n.pitch]) if n.pitch in moved else n


def own_pieces(notes: list[Note], kit_map: dict[int, int]) -> tuple[int, ...]:
    """The pitches a line with neither kick nor snare (hats, a ride, a shaker heard as hats) keeps
    to when it is continued or varied: its own instruments (kit.GROUPS), so a hat intro stays one;
    continued or varied, 57 and 61 of 80 such lines got a backbeat. Empty for a beat (it may
    bring in a crash or a tom) and for a clip with no drums."""
    piece = kit.played_as(kit_map, (n.pitch for n in notes))
    heard = {piece(n.pitch) for n in notes} & set(DRUM_PITCHES)
    groups = [pitches for pitches in kit.GROUPS.values() if heard & set(pitches)]
    if not heard or heard & {*kit.GROUPS["kick"], *kit.GROUPS["snare"]}:
        return ()
    return tuple(sorted(heard.union(*groups)))


def _check_heard(notes: list[Note], req: GrooveRequest) -> None:
    """Refuse a clip with no drum the model plays (a melody, a rack without its `kit`): continue
    and variation would play on from silence, and a fill would land among notes that are not drums."""
    if notes and len(unheard(notes, req.kit)) == len(notes):
        raise ProtocolError(E_BAD_REQUEST, f"none of the clip's {len(notes)} notes is on a drum the model plays "
                                           f"(GM pitches {DRUM_PITCHES[0]}-{DRUM_PITCHES[-1]}); a Drum Rack with "
                                           "pads of its own needs `kit`")


def _played_on(generator: Generator, req: GrooveRequest, notes: list[Note], length: float,
               bars: int, abandoned: Gone | None, take: bool = False) -> list[Pattern]:
    """`bars` bars the model plays after hearing the clip, from `length` on, as it played them:
    right after the clip, or as a `take` of their own that replaces it (its first bar fresh)."""
    _check_heard(notes, req)
    clip_bars = _whole_bars(length, req.meter)
    heard = primer(generator, notes, clip_bars, req, take)
    # A producer's clip keeps its instruments; live mode's phrase chain (loops False) must not:
    # one hat-only phrase would hold every phrase after it, whatever style came next.
    pieces = own_pieces(notes, req.kit) if req.loops else ()
    request = dataclasses.replace(_as_busy(generator, req, heard), bars=clip_bars + bars, primer=heard,
                                  fresh_bar=clip_bars + 1 if take else 0, pieces=pieces,
                                  loops=False)  # what follows the new bars is the caller's to say
    end = clip_bars * bar_beats(req.meter)
    ours = in_clip_pitches(notes, req.kit)
    return [Pattern([_shift(ours(n), length - end) for n in p.notes if n.start >= end], p.seed)
            for p in _sample(generator, [request], abandoned)[0]]


def continue_clip(generator: Generator, req: GrooveRequest, notes: list[Note], length: float,
                  bars: int, abandoned: Gone | None = None) -> list[Pattern]:
    """`bars` new bars after the clip; notes start at `length` and later (the clip grows), and
    the new end leads into the clip's one (without_doubled_ones), or, asked with `loops` False,
    into what the caller plays next (live mode's next phrase: its player sees the join). A
    clip's new bars are played as hard as the clip (played_as_hard), as a variation is: the
    model heard the clip's velocities and still came in 10-34 louder or softer in 34 of 160
    continuations of GMD clips; a clip programmed at one velocity a drum, at those velocities
    (clip_velocities). Live mode's phrases (`loops` False) are played as hard as the phrase
    before too: left to the model, a chain of ten 4-bar phrases in unchanged settings drifted a
    median 11-22 velocity steps from its first (funk: 70 to 106 in one chain); a change of
    settings starts a groove of its own there (`generate`), at its own loudness."""
    end = length + bars * bar_beats(req.meter)
    grids = clip_grids(notes)
    drum = kit.drum_of(req.kit)  # an open hat before the clip's closed one is the hi-hat struck twice
    loudness = _loudness(notes, length, req.kit)
    velocities = clip_velocities(notes, length, req.kit) if req.loops else {}
    return [Pattern(_as_programmed(_as_loud(_on_grids(without_doubled_ones(p.notes, end, notes, meter=req.meter,
                                                                           piece=drum)
                                                      if req.loops else p.notes, grids, end, length),
                                            loudness, played_as_hard), velocities, req.kit),
                    p.seed)
            for p in _played_on(generator, req, notes, length, bars, abandoned)]


def _loudness(notes: list[Note], length: float, kit_map: dict[int, int]) -> float | None:
    """How hard the clip's drums are played (played_as_hard), None for a clip with none."""
    hears = _hears(kit_map, notes)
    drums = [n.velocity for n in notes if 0 <= n.start < length and hears(n)]
    return played_as_hard(drums) if drums else None


def vary_clip(generator: Generator, req: GrooveRequest, notes: list[Note], length: float,
              abandoned: Gone | None = None) -> list[Pattern]:
    """A new take as long as the clip: the model hears the clip, then plays it again its own way,
    a loop of its own (without_doubled_ones; its first bar does not follow the clip's last), as
    busy (_as_busy) and played as hard (played_as_hard) as the clip: a take averaged 2.5
    velocity steps louder than its clip, and pressed six times, 5 of 12 clips came back more
    than 15 louder or softer. A clip programmed at one velocity a drum gets a take at those
    velocities (clip_velocities).
    A clip with a hit on its one, or its one played a hair early at its end, gets a take with one
    too (3 of 16 takes had none): a loop that starts late sounds broken."""
    clip_bars = _whole_bars(length, req.meter)
    line = across_the_line(req.meter)  # a played clip's one is a hair late or early, rarely on 0.0
    if any(n.start < line or n.start > length - line for n in notes):
        req = dataclasses.replace(req, onsets=((),) * clip_bars + ((0,),))  # the take's first bar, after the clip's
    grids, drum, patterns = clip_grids(notes), kit.drum_of(req.kit), []
    loudness, velocities = _loudness(notes, length, req.kit), clip_velocities(notes, length, req.kit)
    for p in _played_on(generator, req, notes, length, clip_bars, abandoned, take=True):
        take = [_shift(n, -length) for n in p.notes]
        take = without_doubled_ones(take, length, take, meter=req.meter, piece=drum)
        take = _inside(_on_grids(take, grids, clip_bars * bar_beats(req.meter)), length)
        patterns.append(Pattern(_as_programmed(_as_loud(take, loudness, played_as_hard), velocities, req.kit), p.seed))
    return patterns


def fill_clip(generator: Generator, req: GrooveRequest, notes: list[Note], length: float,
              every: int | None, abandoned: Gone | None = None) -> list[Pattern]:
    """The clip with its last bar (or every `every`-th bar) replaced by a fill: a bar played as
    the model plays a fill (`kind` fill) in the request's style, tempo and meter.

    The model does not hear the bars before it, so its fill is brought to the loudness of the
    clip's other bars (FILL_LIFT), its own dynamics kept; in a clip of fills alone, to the clip's
    own (its one played early at its end, alone, once set a fill in every bar at velocity 14). With two bars of the groove in its
    context it went on playing the groove, whatever `kind` said (and classifier-free guidance
    from `kind` beat to `kind` fill at 2-5 did not change that): over 24 rock fill bars, toms in
    0 of them against 24 of 24 heard afresh (docs/model.md). A fill that comes in late (a third of rock's
    start a beat or more into the bar) has the groove before it, up to FILL_GAP before its first
    hit, as a drummer keeps time into a fill: the bar before's notes, one bar on (the fill bar's
    own could be an earlier fill, pressed again). Where the bar before is a fill bar too (a
    one-bar clip, fills in every bar) there is no groove to keep: the fill has the bar alone."""
    _check_heard(notes, req)
    clip_bars = _whole_bars(length, req.meter)
    bar = bar_beats(req.meter)
    if every and every > clip_bars:
        raise ProtocolError(E_BAD_REQUEST, f"a fill every {every} bars leaves this clip of {clip_bars} "
                                           f"bar{'s' * (clip_bars > 1)} without one")
    fill_bars = list(range(every - 1, clip_bars, every)) if every else [clip_bars - 1]
    seed = req.seed if req.seed is not None else random.randrange(SEED_RANGE[1] + 1)  # one seed replays every fill
    requests = [dataclasses.replace(req, kind="fill", seed=seed + 7919 * i, bars=1, primer=(), loops=False)
                for i in range(len(fill_bars))]
    found = _sample(generator, requests, abandoned)
    grids, ours = clip_grids(notes), in_clip_pitches(notes, req.kit)

    def bar_of(n: Note) -> int:  # by its nearest 16th: a downbeat played a hair early is its bar's
        return math.floor((n.start + 1 / 8) / bar)

    played = [n for n in notes if 0 <= bar_of(n) < clip_bars]  # a one played early at the end is the loop's
    groove = [n.velocity for n in played if bar_of(n) not in fill_bars]
    if groove:  # the groove it breaks from, and a little more
        loudness = min(FILL_LIFT * statistics.fmean(groove), FILL_CEILING)
    else:  # a clip of fills alone: as loud as it was (in whole steps, as velocities are), so pressing
        # again does not creep louder, nor move a hit by the rounding of the last press
        loudness = min(round(statistics.fmean(n.velocity for n in played)), FILL_CEILING) if played else None
    drum, patterns = kit.drum_of(req.kit), []
    for v in range(req.variations):
        out = _inside([n for n in notes if bar_of(n) not in fill_bars], length)
        fills = {}
        for k, variations in zip(fill_bars, found):
            at = min(k * bar, length - bar)  # a partial last bar gets the fill's end, where the clip ends
            fills[k] = [_shift(ours(n), at) for n in variations[v].notes if at + n.start >= k * bar]
        for k, fill in fills.items():
            end = min((k + 1) * bar, length)
            if end < length:  # into the next bar's one: the clip's, or the next fill's
                following, start = out + [n for j, other in fills.items() if j != k for n in other], end
            else:  # into the loop's: the first bar's (this fill's, in a one-bar clip), or the one the clip
                   # played a hair early at its end
                early = [_shift(n, -length) for n in out if n.start > length - across_the_line(req.meter)]
                following, start = out + fills.get(0, []) + early, 0.0
            fill = _on_grids(without_doubled_ones(fill, end, following, start, req.meter, drum), grids,
                             end, k * bar)  # never onto the next bar's one, which stays as sent
            fill = _as_loud(fill, loudness)  # what is left of it: two soft snares left came out softer than asked
            first = min((n.start for n in fill), default=end)
            if k - 1 >= 0 and k - 1 not in fill_bars:  # the groove to keep time with: the bar before the fill's
                out += _inside([_shift(n, bar) for n in notes if bar_of(n) == k - 1 and n.start + bar < first - FILL_GAP],
                               length)
            out += _inside(fill, length)
        patterns.append(Pattern(sorted(out, key=lambda n: (n.start, n.pitch)), found[0][v].seed))
    return patterns


def _as_loud(notes: list[Note], loudness: float | None,
             measure: Callable[[list[float]], float] = statistics.fmean) -> list[Note]:
    """The notes at velocities whose `measure` (their mean, unless asked) is `loudness`: scaled,
    where that keeps the loudest at 127 or under (ghost notes, accents and a crescendo keep their
    shape); else raised as a drummer plays harder, on a curve 127 (v / 127)^g that keeps 127 the
    top and lifts soft hits most. Scaled and clipped at 127, a loud clip's fill had turned to
    nearly all 127s."""
    if not notes or loudness is None:
        return notes
    velocities = [n.velocity for n in notes]
    now = measure(velocities)
    if loudness * max(velocities) <= 127 * now:
        louder = [v * loudness / now for v in velocities]
    else:
        low, high = 0.0, 1.0  # the curve's power: 1 leaves the notes as they are, 0 takes every hit to 127
        for _ in range(40):
            power = (low + high) / 2
            too_loud = measure([127 * (v / 127) ** power for v in velocities]) > loudness
            low, high = (power, high) if too_loud else (low, power)
        louder = [127 * (v / 127) ** low for v in velocities]
    return [dataclasses.replace(n, velocity=min(max(round(v), 1), 127)) for n, v in zip(notes, louder)]


def humanize_clip(humanizer: Humanizer, req: GrooveRequest, notes: list[Note], length: float, amount: float,
                  ghost_notes: bool, chance: bool) -> list[Pattern]:
    """The clip played with a GMD drummer's feel, once per variation. The humanizer hears each
    note as the piece the request's kit says it is; the notes keep their own pitches, and ghost
    notes come in the kit, only where the clip has a drum the model plays (a shaker line gets no
    snare). A clip with no percussion at all (a melody) is refused: it would be moved as drums."""
    piece = kit.played_as(req.kit, (n.pitch for n in notes))
    if notes and not any(piece(n.pitch) in PERCUSSION for n in notes):
        raise ProtocolError(E_BAD_REQUEST, f"none of the clip's {len(notes)} notes is a drum or percussion sound "
                                           f"(GM pitches {PERCUSSION[0]}-{PERCUSSION[-1]}); a Drum Rack with pads "
                                           "of its own needs `kit`")
    ghost_notes = ghost_notes and any(piece(n.pitch) in DRUM_PITCHES for n in notes)
    style = req.voice.feel  # the humanizer knows genres (Voice.feel)
    heard = [dataclasses.replace(n, pitch=piece(n.pitch)) for n in notes]
    order = sorted(range(len(notes)), key=lambda i: (heard[i].start, heard[i].pitch))  # as the pieces sort, in any kit
    seed = req.seed if req.seed is not None else random.randrange(SEED_RANGE[1] + 1)
    patterns = []
    for v in range(req.variations):
        played = humanizer.humanize([heard[i] for i in order], style, req.tempo, req.meter, length, amount=amount,
                                    seed=variation_seed(seed, v), ghost_notes=ghost_notes, chance=chance)
        placed = dict(zip(order, played))  # the humanizer's k-th note is the k-th it was given
        own = [dataclasses.replace(placed[i], pitch=n.pitch) for i, n in enumerate(notes)]
        ghosts = [dataclasses.replace(p, pitch=req.kit.get(p.pitch, p.pitch)) for p in played[len(notes):]]
        patterns.append(Pattern(own + ghosts, variation_seed(seed, v)))
    return patterns


DRUMIFY_GRIDS = (4, 3)  # onsets snap to 16ths or 8th triplets (per quarter note): a tapped line is never
                        # exactly on a beat, and a shuffle's bass is not on 16ths
ON_A_PLACE = 1 / 48  # beats: a note this close to a place only the other grid has was played there
FLAM_BEATS = 1 / 12  # a hit this close to an onset is played on it (_onto_onsets); of its piece, a flam: left out


def drumify_clip(generator: Generator, req: GrooveRequest, notes: list[Note], length: float,
                 abandoned: Gone | None = None) -> list[Pattern]:
    """A full groove as long as the clip that plays a hit on each of its onsets (any pitch: a
    tapped line, a bass line, a melody's rhythm; drumify_onsets); the model
    chooses the pieces, their loudness and everything between; a hit it plays a hair off an
    onset is played on it (_onto_onsets), and the loop's one is played once at the clip's end,
    mid-bar too, the onsets' hits kept. A ProtocolError for a clip without notes."""
    bar, per_quarter = bar_beats(req.meter), POSITIONS_PER_BEAT * req.meter[1] // 4  # grid positions a quarter
    onsets = drumify_onsets(notes, length, req.meter)
    if not any(onsets):
        raise ProtocolError(E_BAD_REQUEST, "drumify needs a clip with notes: their onsets are the rhythm to play")
    clip_bars = len(onsets)
    voice = req.voice or generator.voice(req.style, req.strength)
    voice = dataclasses.replace(voice, template=None)  # hits stay on the onsets
    request = dataclasses.replace(req, bars=clip_bars, onsets=tuple(tuple(sorted(o)) for o in onsets), voice=voice,
                                  loops=False)  # its loop point is the clip's length, with its onsets kept (below)
    times = {round(k * bar + pos / per_quarter, 6) for k, bar_onsets in enumerate(onsets) for pos in bar_onsets}
    patterns, drum = [], kit.drum_of(req.kit)
    for p in _sample(generator, [request], abandoned)[0]:
        played = _inside(_onto_onsets(p.notes, times, length, req.kit), length)
        on_onsets = [n for n in played if round(n.start, 6) in times]
        loose = [n for n in played if round(n.start, 6) not in times]
        loose = without_doubled_ones(loose, length, played, meter=req.meter, piece=drum)
        patterns.append(Pattern(sorted(on_onsets + loose, key=lambda n: (n.start, n.pitch)), p.seed))
    return patterns


def drumify_onsets(notes: list[Note], length: float, meter: tuple[int, int]) -> list[set[int]]:
    """Per whole bar of the clip, the grid positions of its notes' onsets: snapped to 16ths or
    8th triplets (onset_grids), where a programmed clip's own 32nds and 16th triplets stay (a 32nd
    line came back as 16ths) if the meter's positions hold them (in x/2 a 32nd is 1.5 positions:
    it snaps to a 16th, not onto a triplet's place); one snapped to the end is the loop's one."""
    clip_bars, bar = _whole_bars(length, meter), bar_beats(meter)
    per_quarter = POSITIONS_PER_BEAT * meter[1] // 4
    end = min(length, clip_bars * bar)  # a clip a hair past its bars (1e-6 beat) ends with them
    exact = DRUMIFY_GRIDS + tuple(g for g in clip_grids(notes) if per_quarter % g == 0)
    grids, onsets = onset_grids(notes), [set() for _ in range(clip_bars)]
    for n in notes:
        snapped = n.start if on_a_grid(n.start, exact) else nearest_point(n.start, grids[math.floor(n.start)])
        k, offset = divmod(snapped if snapped < end else 0.0, bar)
        onsets[int(k)].add(round(offset * per_quarter))
    return onsets


def onset_grids(notes: list[Note]) -> dict[int, tuple[int, ...]]:
    """Per beat, the grid its loose onsets snap to (one on a grid, programmed, stays there). The
    clip's: 8th triplets if most of its notes off the beat are nearer a triplet place than a
    16th, else 16ths; one note at a time, a straight line tapped 20 ms loose at 120 BPM put 9 %
    of its 16ths on triplets. A beat with two notes within ON_A_PLACE of the other grid's own
    places was played on it (a triplet fill)."""
    off_beat = [n.start for n in notes if nearest_point(n.start, DRUMIFY_GRIDS) % 1 > 1e-6]  # a beat is on both
    nearer_triplets = sum(nearest_point(t, DRUMIFY_GRIDS) * 4 % 1 > 1e-6 for t in off_beat)
    clip, other = (3, 4) if 2 * nearer_triplets > len(off_beat) else (4, 3)  # points a beat

    def beats_off(t: float, per_beat: int) -> float:
        return abs(t * per_beat - round(t * per_beat)) / per_beat

    played_on_other = Counter(math.floor(t) for t in off_beat
                              if beats_off(t, other) < ON_A_PLACE and beats_off(t, clip) > 2 * ON_A_PLACE)
    return defaultdict(lambda: (clip,), {beat: (other,) for beat, count in played_on_other.items() if count >= 2})


def _onto_onsets(notes: list[Note], onsets: set[float], length: float, kit_map: dict[int, int]) -> list[Note]:
    """The notes (in `kit_map`'s pitches), each hit a hair off an onset (closer than FLAM_BEATS)
    moved onto it, or left out where its drum (the hi-hat in any state, the ride on any zone)
    already plays there (a flam) or both hands already strike there (MAX_HANDS_AT_ONCE; louder
    hits move first); a hit a hair before the clip's end is off the loop's first onset. The
    grammar puts a hit on each onset, and the model often played its kick or snare 1/24 beat
    before it and a cymbal on it: of the kicks and snares near a bass line's onsets, 35 % sat
    beside them, flamming with the bass."""
    drum, piece = kit.drum_of(kit_map), kit.heard_as(kit_map)

    def by_hand(note: Note) -> bool:
        return piece(note.pitch) not in kit.FEET

    wrapped = {round(length + t, 6): t for t in onsets if t < FLAM_BEATS}  # the loop's, seen from its end
    times = sorted(onsets | set(wrapped))
    out = [n for n in notes if round(n.start, 6) in onsets]
    on = {(drum(n.pitch), round(n.start, 6)) for n in out}
    hands = Counter(round(n.start, 6) for n in out if by_hand(n))
    for n in sorted(notes, key=lambda n: -n.velocity):
        if round(n.start, 6) in onsets or n.start >= length:  # past the clip: not the clip's
            continue
        i = bisect.bisect(times, n.start)
        near = min(times[max(i - 1, 0):i + 1], key=lambda t: abs(t - n.start), default=None)
        if near is None or abs(near - n.start) >= FLAM_BEATS - 1e-6:
            out.append(n)
            continue
        onset = wrapped.get(near, near)
        if (drum(n.pitch), onset) not in on and not (by_hand(n) and hands[onset] >= MAX_HANDS_AT_ONCE):
            on.add((drum(n.pitch), onset))
            hands[onset] += by_hand(n)
            out.append(dataclasses.replace(n, start=onset))
    return sorted(out, key=lambda n: (n.start, n.pitch))


def clip_grids(notes: list[Note]) -> tuple[int, ...]:
    """The grids (per beat, SNAP_GRIDS) a programmed clip's notes need, coarse to fine: a straight
    clip 16ths, a shuffle 8th triplets (a note on the beat is on every grid and says nothing);
    () for a played clip, whose new notes keep the model's feel. Continuing a quantised clip,
    45-49 % of the model's new hits sat more than a 48th of a beat off the grid: the feel
    changed at the join."""
    if not notes or sum(on_a_grid(n.start) for n in notes) < PROGRAMMED * len(notes):
        return ()
    off_the_beat = [n for n in notes if not on_a_grid(n.start, (1,))]  # a beat is on every grid
    used: list[int] = []
    for g in SNAP_GRIDS:
        if any(on_a_grid(n.start, (g,)) and not on_a_grid(n.start, tuple(used)) for n in off_the_beat):
            used.append(g)
    return tuple(used) or SNAP_GRIDS[:1]


def _on_grids(notes: list[Note], grids: tuple[int, ...], end: float, begin: float = 0.0) -> list[Note]:
    """New notes (times from the clip's start) moved to the nearest point of `grids` (none: as they
    are), one hit a piece at a point (the loudest), none before `begin`. A hit pushed so far that
    it would snap onto `end` (the next bar's one) lands on the last point before it: a fill of two
    hits at 3.75 and 3.96 keeps both."""
    if not grids:
        return notes
    last = max(math.ceil(end * g - 1 - 1e-6) / g for g in grids)  # the latest point before `end`
    placed: dict[tuple[int, float], Note] = {}
    for n in notes:
        at = round(min(nearest_point(n.start, grids), last), 6)
        if begin <= at and ((n.pitch, at) not in placed or n.velocity > placed[n.pitch, at].velocity):
            placed[n.pitch, at] = dataclasses.replace(n, start=at, duration=min(n.duration, end - at))
    return sorted(placed.values(), key=lambda n: (n.start, n.pitch))


def nearest_point(t: float, grids: tuple[int, ...]) -> float:
    """The point of `grids` (per beat) nearest `t` beats, the earlier grid's on a tie."""
    return min((math.floor(t * g + 0.5) / g for g in grids), key=lambda point: abs(point - t))


def _whole_bars(length: float, meter: tuple[int, int]) -> int:
    """The bars that hold a clip: a clip of 1.5 bars is played as 2, and cut back (_inside)."""
    return max(1, math.ceil(length / bar_beats(meter) - 1e-6))


def _inside(notes: list[Note], length: float) -> list[Note]:
    """The notes that start inside the clip, each ending by its end."""
    return [dataclasses.replace(n, duration=min(n.duration, length - n.start))
            for n in notes if n.start < length]


def _shift(n: Note, by: float) -> Note:
    """`n` moved by `by` beats, to 1e-6 beat; every op's shifts land at 0 or later (max: never -0.0)."""
    return dataclasses.replace(n, start=max(0.0, round(n.start + by, 6)))
