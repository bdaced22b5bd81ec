"""Drum-kit pitch maps: what the model plays in, and what a user's instrument expects.

GMD was recorded on a Roland TD-11. Its pitches mostly coincide with General MIDI; the
exceptions are the hi-hat edge zones (22, 26) and the floor-tom rim (58), which GM and
Live's drum racks do not have. The model plays in the TD-11's layout without those zones
("gmd"); the other maps (BUILTIN_MAPS: "gm", the default, Live's 16-pad rack) and a user's
own send its pieces where an instrument expects them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from shared.notes import is_int
from shared.protocol import brief

# TD-11 pitch -> canonical GM pitch. Pitches not listed pass through unchanged.
GMD_TO_GM = {22: 42, 26: 46, 58: 43}
TD11_ZONES = {22: "closed hat edge", 26: "open hat edge", 58: "floor tom rim"}  # for `show`

# The pieces the canonical kit uses, with names a musician knows (for `show` and docs).
PIECE_NAMES = {
    36: "kick",
    37: "side stick",
    38: "snare",
    40: "snare rim",
    42: "closed hat",
    44: "pedal hat",
    46: "open hat",
    43: "floor tom",
    45: "low tom",
    47: "mid tom",
    48: "high-mid tom",
    50: "high tom",
    49: "crash",
    57: "crash 2",
    55: "splash",
    52: "china",
    51: "ride",
    53: "ride bell",
    59: "ride 2",
}



def to_canonical(pitch: int) -> int:
    return GMD_TO_GM.get(pitch, pitch)


# Hits of each canonical piece in GMD's train split (mido over its MIDI files, TD-11 zones folded
# in): which piece a pad shared by several is heard as. GM calls 52, 55 and 57 china, splash and
# crash 2 (PIECE_NAMES, as a GM rack plays them); on GMD's TD-11 they are more zones of its two
# crashes, as 53 and 59 are the ride's bell and edge (GrooVAE's reduction).
GMD_HITS = {38: 83743, 36: 69805, 42: 48349, 44: 43689, 51: 38692, 40: 17664, 46: 11251, 48: 11069, 43: 8920,
            37: 7713, 53: 4845, 45: 3333, 59: 1903, 55: 1837, 57: 1712, 50: 1248, 47: 1061, 52: 770, 49: 686}


def reverse_map(mapping: dict[int, int]) -> dict[int, int]:
    """A kit's pitch -> the canonical piece it plays, to read a clip written in that kit. Where
    several pieces share a pitch (its own piece, left in place, and pieces the map sends there),
    the one GMD's drummers play most is heard: a Drum Rack's pad 40 that the snare is sent to holds
    a snare, not the rim; rack16's pad 51 the ride, not its bell or edge."""
    sent: dict[int, list[int]] = {}
    for piece, pitch in mapping.items():
        sent.setdefault(pitch, []).append(piece)
    reverse = {}
    for pitch, pieces in sent.items():
        own = [pitch] if pitch in PIECE_NAMES and pitch not in mapping else []
        reverse[pitch] = max(own + pieces, key=lambda p: (GMD_HITS.get(p, 0), -p))
    return reverse


# The drum each zone belongs to (the TD-11's zones, GrooVAE's reduction): the hi-hat closed,
# pedalled or open, the ride's bow, bell and edge, each crash's bow and edge, the snare's head,
# rim and cross-stick, each tom's head and rim. Two hits of one drum a hair apart across a loop
# point are one drum struck twice (an open hat 1/24 beat before the loop's closed one).
ZONES = {44: 42, 46: 42, 53: 51, 59: 51, 55: 49, 52: 57, 40: 38, 37: 38, 50: 48, 47: 45}


# The pieces a drummer plays with the feet (the kicks and the hi-hat pedal); the rest take a hand.
FEET = frozenset({35, 36, 44})

# The pieces a drummer thinks in, by canonical pitch: descriptors (evaluate.py) and groove
# templates (styles.py) count and shift them group by group.
GROUPS = {
    "kick": (35, 36), "snare": (37, 38, 39, 40), "hats": (42, 44, 46), "ride": (51, 53, 59),
    "toms": (41, 43, 45, 47, 48, 50), "crash": (49, 52, 55, 57),
}

# GMD's drummers crash on the crashes' edges: 55 (crash 1) and 52 (crash 2) at median velocities
# of 93 and 101, against 10 on crash 1's bow (49). A GM kit, Live's Drum Racks among them, plays
# 55 as a splash and 52 as a china: "gm" plays them on GM's crash cymbals 1 and 2 (49, 57), and
# hears a GM clip's 49 as a crash, not as the TD-11's soft bow (reverse_map). "gmd" is the
# dataset's own (Roland) layout; "rack16" folds the pieces above Live's 16-pad Drum Rack
# (C1..D#2 = 36..51) onto their nearest pad. Other layouts (a user's Drum Rack) come as JSON
# maps of GM pitches (in_gm).
GM_CRASHES = {zone: drum for zone, drum in ZONES.items() if drum in GROUPS["crash"]}  # 55: 49, 52: 57
BUILTIN_MAPS = {
    "gm": GM_CRASHES,
    "gmd": {},
    "rack16": {52: 49, 53: 51, 55: 49, 57: 49, 59: 51},
}


def heard_as(mapping: dict[int, int]) -> Callable[[int], int]:
    """A kit's pitch -> the canonical piece it plays: the map read back (reverse_map), TD-11 zones
    folded into their pieces (to_canonical)."""
    pieces = reverse_map(mapping)
    return lambda pitch: to_canonical(pieces.get(pitch, pitch))


# GM percussion GMD's kit lacks, heard as the piece that plays its part: a second kick, a clap on
# the backbeat, a low floor tom; shakers, tambourine, cowbell, claves and triangles keep time as
# hats do; bongos, congas and timbales are hand drums tuned as toms.
PLAYED_AS = {35: 36, 39: 38, 41: 43, 54: 42, 56: 42, 69: 42, 70: 42, 75: 42, 76: 42, 77: 42, 80: 42, 81: 42,
             82: 42, 60: 50, 61: 48, 62: 48, 63: 47, 64: 45, 65: 50, 66: 47, 86: 43, 87: 43}


HAND_PERCUSSION_FROM = 60  # GM's bongos, congas, timbales, shakers...: where a melody's notes lie too


def played_as(mapping: dict[int, int], clip: Iterable[int] = ()) -> Callable[[int], int]:
    """A kit's pitch -> the piece the models hear it as: heard_as, then PLAYED_AS. Trained on
    GMD, they never met a clap or a kick on 35: a clip with claps on 2 and 4 was heard as nothing
    they know (a style learned from four such techno clips played reggae, a kick on every beat
    in 14 % of its bars against the clips' 100 %). Hand percussion (HAND_PERCUSSION_FROM up) is
    heard so only beside a kick or a snare part (two hits or more) among the `clip`'s pitches:
    alone, or beside one low note, a melody's notes there would pass for congas and shakers."""
    heard = heard_as(mapping)

    def piece(pitch: int) -> int:
        return PLAYED_AS.get(heard(pitch), heard(pitch))

    with_a_beat = sum(piece(p) in (36, 38) for p in clip) >= 2
    return lambda pitch: piece(pitch) if with_a_beat or heard(pitch) < HAND_PERCUSSION_FROM else heard(pitch)


def zones_of(drum: int) -> frozenset[int]:
    """The pitches that strike `drum`, its own included (ZONES)."""
    return frozenset({drum, *(pitch for pitch, of in ZONES.items() if of == drum)})


def drum_of(mapping: dict[int, int]) -> Callable[[int], int]:
    """A kit's pitch -> the drum it strikes (ZONES), whichever zone: what a loop point's one
    and a hit moved onto an onset are heard by."""
    heard = heard_as(mapping)
    return lambda pitch: ZONES.get(heard(pitch), heard(pitch))


def builtin(name: str) -> dict[int, int] | None:
    """The built-in map `name` names, read as style names are (" GMD" is gmd), or None."""
    return BUILTIN_MAPS.get(name.strip().lower())


def load_map(spec: str | dict) -> dict[int, int]:
    """A kit map by built-in name, JSON file path, or inline {gm_pitch: target_pitch} map."""
    if isinstance(spec, dict):
        raw = spec
    elif (named := builtin(spec)) is not None:
        return named
    else:
        path = Path(spec).expanduser()
        if not path.is_file():
            if path.suffix.lower() == ".json" or len(path.parts) > 1:  # meant as a file
                raise ValueError(f"no kit map file {brief(spec)}")
            raise ValueError(f"unknown kit map {brief(spec)}: use one of {', '.join(BUILTIN_MAPS)} or a JSON file path")
        try:
            raw = json.loads(path.read_text(), object_pairs_hook=_once_each)
        except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError; a nesting bomb
            raise ValueError(f"kit map {path} is not valid JSON: {exc}") from None
        raw = raw.get("map", raw) if isinstance(raw, dict) else raw
    if not isinstance(raw, dict):
        raise ValueError("a kit map must be a JSON object of {gm_pitch: target_pitch}")
    mapping = {}
    for key, value in raw.items():
        # Keys are JSON's strings of whole numbers; values whole numbers ("36": 36.9 or true is a typo).
        source = int(key) if isinstance(key, str) and re.fullmatch(r"[0-9]{1,3}", key) else key
        if not (is_int(source) and is_int(value)):
            raise ValueError(f"kit map entry {brief(key)}: {brief(value)} is not pitch: pitch")
        target = value
        if not (0 <= source <= 127 and 0 <= target <= 127):
            raise ValueError(f"kit map entry {key}: {value} is outside MIDI pitches 0..127")
        if source in mapping:  # "36" and "036": which one was meant?
            raise ValueError(f"kit map entry {brief(key)} maps pitch {source} a second time")
        mapping[source] = target
    return in_gm(mapping)


def _once_each(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys are all different: json keeps the last of a repeated key, so
    {"36": 60, "36": 61} put the kick on 61 without a word."""
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"{key!r} is given twice")
        seen[key] = value
    return seen


def in_gm(mapping: dict[int, int]) -> dict[int, int]:
    """A user's map of GM pitches, for the model's pieces: a crash's edge goes where the map sends
    GM's crash (GM_CRASHES), unless the map names the edge itself or gives that pad to another
    piece (a snare on pad 49 must not take every crash)."""
    crashes = {*GM_CRASHES, *GM_CRASHES.values()}  # two crashes on one pad still take their edges there
    folded = {}
    for edge, crash in GM_CRASHES.items():
        pad = mapping.get(crash, crash)
        if not any(target == pad for piece, target in mapping.items() if piece not in crashes):
            folded[edge] = pad
    return {**folded, **mapping}
