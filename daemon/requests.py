"""Wire maps to GrooveRequests, and patterns back to wire maps: every field checked, every
refusal a ProtocolError a musician can read.

The daemon and the CLI both build requests and answers here, so a value the CLI accepts is
exactly a value the daemon accepts, and its local answers are the daemon's.
"""

from __future__ import annotations

import dataclasses
import difflib
import math

from daemon import kit
from daemon.generate import Generator, GrooveRequest, Pattern
from daemon.styles import StyleError, UnknownStyle, all_names, spelled
from daemon.vocab import DRUMMERS, KINDS
from shared.notes import Note, bar_beats, cut_short, pack_notes
from shared.protocol import (
    BARS_RANGE,
    E_BAD_REQUEST,
    E_UNKNOWN_STYLE,
    FOCUS_RANGE,
    GUIDANCE_RANGE,
    MAX_CLIP_BARS,
    MAX_CLIP_NOTES,
    OP_CANCEL,
    OP_CONTINUE,
    OP_DRUMIFY,
    OP_FILL,
    OP_GENERATE,
    OP_HUMANIZE,
    OP_INFO,
    OP_LEARN_STYLE,
    OP_PING,
    OP_STYLES,
    OP_VARIATION,
    SEED_RANGE,
    STRENGTH_RANGE,
    TEMPERATURE_RANGE,
    TEMPO_RANGE,
    TOP_P_RANGE,
    VARIATIONS_RANGE,
    ProtocolError,
    brief,
)

MAX_STYLES_IN_MIX = 8

# The fields each op reads, besides those every request may carry. Any other is refused rather
# than ignored: {"temprature": 3} played at 1.0 without a word. A clip op reads the generate
# fields it uses: not `bars` where the clip's length sets them, nor `loop` where the op decides
# it, nor `kind` for a fill; humanize samples nothing.
COMMON_FIELDS = ("op", "id", "timeout", "packed")
GENERATE_FIELDS = ("style", "drummer", "bars", "tempo", "time_signature", "variations", "temperature", "top_p",
                   "seed", "kind", "density", "complexity", "strength", "guidance", "focus", "kit", "loop")
CLIP_FIELDS = ("notes", "length")
_REPLAYED = tuple(f for f in GENERATE_FIELDS if f not in ("bars", "loop"))  # a clip as long as it is
OP_FIELDS = {
    OP_PING: (), OP_INFO: (), OP_STYLES: (), OP_CANCEL: ("ids",),
    OP_GENERATE: GENERATE_FIELDS,
    OP_CONTINUE: (*GENERATE_FIELDS, *CLIP_FIELDS),
    OP_VARIATION: (*_REPLAYED, *CLIP_FIELDS),
    OP_DRUMIFY: (*_REPLAYED, *CLIP_FIELDS),
    OP_FILL: (*(f for f in _REPLAYED if f != "kind"), *CLIP_FIELDS, "every"),
    OP_HUMANIZE: ("style", "tempo", "time_signature", "seed", "variations", "kit", *CLIP_FIELDS,
                  "amount", "ghost_notes", "chance"),
    OP_LEARN_STYLE: ("name", "clips", "steps", "replace", "kit"),
}
LEARNED_CLIP_FIELDS = (*CLIP_FIELDS, "tempo", "time_signature")  # each of learn_style's clips


def check_fields(msg: dict, op: str, known: tuple[str, ...] | None = None) -> None:
    """Refuse a field `op` does not read (a typo, a field of another op), naming those it reads;
    `known`: the fields of a map inside the request (learn_style's clips), instead of the op's."""
    takes = OP_FIELDS[op] if known is None else known
    unknown = [key for key in msg if key not in takes and (known is not None or key not in COMMON_FIELDS)]
    if unknown:
        names = ", ".join(brief(key) for key in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        what = op if known is None else f"a {op} clip"
        raise ProtocolError(E_BAD_REQUEST, f"{what} does not take {names}; it takes: {', '.join(takes) or 'no fields'}")


def request_for(msg: dict, generator: Generator) -> GrooveRequest:
    """groove_request for what this generator plays: its meters and every style it knows (the
    user's learned ones included), each named style checked to load (not damaged, learned on
    this model)."""
    request = groove_request(msg, generator.vocab.meters)
    try:
        voice = generator.voice(request.style, request.strength)
    except UnknownStyle as err:
        names = all_names(generator.style_folder, generator.model, generator.vocab)
        close = difflib.get_close_matches(str(err.name).strip().lower(), names, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(close)}?" if close else ""
        raise ProtocolError(E_UNKNOWN_STYLE, f"unknown style {brief(err.name)}{hint} Choose one of: {', '.join(names)}"
                            if close else f"unknown style {brief(err.name)}; choose one of: {', '.join(names)}") from None
    except StyleError as err:
        raise ProtocolError(E_UNKNOWN_STYLE, str(err)) from None
    return dataclasses.replace(request, voice=voice)  # resolved once: a style deleted meanwhile cannot fail the batch


def groove_request(msg: dict, meters: tuple[tuple[int, int], ...]) -> GrooveRequest:
    """The `generate` fields of `msg` as a GrooveRequest (a clip op's own fields are left to it;
    check_fields refuses those no op reads).
    `meters` are the time signatures the model's vocabulary can write. A style is checked for
    its shape here; whether its names exist is the generator's to say (request_for)."""
    num, den = meter(msg, meters)
    given = GrooveRequest()  # a field the message leaves out has its default
    request = GrooveRequest(
        style=checked_style(msg.get("style")),
        drummer=_choice(msg, "drummer", DRUMMERS, E_UNKNOWN_STYLE),
        bars=whole_number(msg, "bars", given.bars, BARS_RANGE),
        tempo=number(msg, "tempo", given.tempo, TEMPO_RANGE),
        meter=(num, den),
        variations=whole_number(msg, "variations", given.variations, VARIATIONS_RANGE),
        temperature=number(msg, "temperature", given.temperature, TEMPERATURE_RANGE),
        top_p=number(msg, "top_p", given.top_p, TOP_P_RANGE),
        seed=whole_number(msg, "seed", given.seed, SEED_RANGE),
        kind=_choice(msg, "kind", KINDS, E_BAD_REQUEST),
        density=number(msg, "density", given.density, (0.0, 1.0)),
        complexity=number(msg, "complexity", given.complexity, (0.0, 1.0)),
        strength=number(msg, "strength", given.strength, STRENGTH_RANGE),
        guidance=number(msg, "guidance", given.guidance, GUIDANCE_RANGE),
        focus=whole_number(msg, "focus", given.focus, FOCUS_RANGE),
        kit=kit_map(msg.get("kit")),
        loops=flag(msg, "loop", given.loops),
    )
    if request.rows > VARIATIONS_RANGE[1]:  # each take is a row of the batch, as a variation is
        raise ProtocolError(E_BAD_REQUEST, f"variations x focus must be at most {VARIATIONS_RANGE[1]}, "
                                           f"got {request.variations} x {request.focus}")
    return request


def whole_number(msg: dict, name: str, default, bounds: tuple[int, int]):
    value = msg.get(name)
    return default if value is None else _whole(value, name, bounds)


def _whole(value: object, name: str, bounds: tuple[int, int]) -> int:
    """An int, or a float with a whole value (2.0), within `bounds`."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be a whole number, got {brief(value)}")
    if not bounds[0] <= value <= bounds[1]:
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be {bounds[0]}..{bounds[1]}, got {brief(value)}")
    return value


def flag(msg: dict, name: str, default: bool = False) -> bool:
    """An optional true/false field, `default` when absent (or null, as for every field)."""
    value = msg.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be true or false, got {brief(value)}")
    return value


def number(msg: dict, name: str, default, bounds: tuple[float, float]):
    value = msg.get(name)
    if value is None:
        return default
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be a number, got {brief(value)}")
    if not math.isfinite(value) or not bounds[0] <= value <= bounds[1]:
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be between {bounds[0]:g} and {bounds[1]:g}, got {brief(value)}")
    return float(value)


def _choice(msg: dict, name: str, allowed: tuple[str, ...], code: str) -> str | None:
    value = msg.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProtocolError(E_BAD_REQUEST, f"{name} must be a string, got {brief(value)}")
    key = value.strip().lower()  # as style names are read: " Drummer3" is drummer3
    if key not in allowed:
        raise ProtocolError(code, f"unknown {name} {brief(value)}; choose one of: {', '.join(allowed)}")
    return key


def checked_style(value: object) -> str | dict[str, float] | None:
    """A style name (lower case; `any` is None) or a mix {name: weight}."""
    if value is None:
        return None
    if isinstance(value, str):
        key = spelled(value)
        return None if key == "any" else key
    if isinstance(value, dict):
        if not 1 <= len(value) <= MAX_STYLES_IN_MIX:
            raise ProtocolError(E_BAD_REQUEST, f"a style mix names 1..{MAX_STYLES_IN_MIX} styles")
        for name, weight in value.items():
            if not isinstance(name, str) or name.strip().lower() == "any":
                raise ProtocolError(E_UNKNOWN_STYLE, f"unknown style {brief(name)} in the mix")
            if not isinstance(weight, (int, float)) or isinstance(weight, bool) or not (
                math.isfinite(weight) and weight >= 0
            ):
                raise ProtocolError(E_BAD_REQUEST, f"style weight for {brief(name)} must be a number >= 0")
        top = max(value.values())
        if top <= 0:
            raise ProtocolError(E_BAD_REQUEST, "style weights must not all be zero")
        mix: dict[str, float] = {}
        for name, weight in value.items():  # over the largest: only their ratios count
            key = spelled(name)
            if key in mix:
                raise ProtocolError(E_BAD_REQUEST, f"style {brief(name)} is named twice in the mix")
            mix[key] = weight / top
        return mix
    raise ProtocolError(E_BAD_REQUEST, "style must be a name or a map of name to weight")


def meter(msg: dict, meters: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    """`time_signature` of `msg` (default 4/4), one the model can write."""
    value = msg.get("time_signature")
    return _time_signature([4, 4] if value is None else value, meters)


def _time_signature(value: object, meters: tuple[tuple[int, int], ...]) -> tuple[int, int]:
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ProtocolError(E_BAD_REQUEST, f"time_signature must be [numerator, denominator], got {brief(value)}")
    try:  # whole numbers as every int field takes them: 4 or 4.0
        num, den = (_whole(x, "x", (-(2**63), 2**63)) for x in value)  # the meters bound them
    except ProtocolError:
        raise ProtocolError(E_BAD_REQUEST, f"time_signature must be [numerator, denominator], got {brief(value)}") from None
    if (num, den) not in meters:
        known = ", ".join(f"{n}/{d}" for n, d in sorted(meters, key=lambda m: (m[1], m[0])))
        raise ProtocolError(E_BAD_REQUEST, f"time signature {num}/{den} is not supported; choose one of: {known}")
    return num, den


def kit_map(value: object) -> dict[int, int]:
    """A request's `kit`: a built-in map's name, or a map of its own; gm when absent."""
    if value is None:
        return kit.BUILTIN_MAPS["gm"]
    if isinstance(value, str) and (named := kit.builtin(value)) is not None:
        return named
    if isinstance(value, dict):
        try:
            return kit.load_map(value)
        except ValueError as err:
            raise ProtocolError(E_BAD_REQUEST, str(err)) from None
    raise ProtocolError(E_BAD_REQUEST, f"kit must be one of {', '.join(kit.BUILTIN_MAPS)} or a pitch map")


def clip(msg: dict, meter: tuple[int, int]) -> tuple[list[Note], float]:
    """A clip sent for `continue`, `variation`, `fill`, `humanize` or `drumify`: notes and length in beats.

    Notes outside [0, length) are not in the clip's loop, so they are left out.
    """
    notes = msg.get("notes")
    if not isinstance(notes, list):
        raise ProtocolError(E_BAD_REQUEST, "notes must be a list of note maps")
    if len(notes) > MAX_CLIP_NOTES:
        raise ProtocolError(E_BAD_REQUEST, f"a clip may hold at most {MAX_CLIP_NOTES} notes, got {len(notes)}")
    bar = bar_beats(meter)
    length = msg.get("length")
    if length is None:
        raise ProtocolError(E_BAD_REQUEST, "length (the clip's length in beats) is missing")
    if not isinstance(length, (int, float)) or isinstance(length, bool) or not (
        math.isfinite(length) and bar / 4 <= round(length, 6) <= MAX_CLIP_BARS * bar
    ):
        raise ProtocolError(E_BAD_REQUEST, f"length must be {bar / 4:g} to {MAX_CLIP_BARS * bar:g} beats (a quarter "
                                           f"bar to {MAX_CLIP_BARS} bars of {meter[0]}/{meter[1]}), got {brief(length)}")
    length = round(float(length), 6)  # clip times are kept to 1e-6 beat (clip_ops._shift): 4.0000001 is 4
    parsed = [n for n in map(Note.from_wire, notes) if n.start < length]
    return sorted(parsed, key=lambda n: (n.start, n.pitch)), length


def wire_patterns(found: list[Pattern], packed: bool) -> list[dict]:
    """Patterns as the wire has them: notes as maps, or as one bin each when asked `packed`; each
    ends by the next hit of its pitch (cut_short), as a clip or a synth holds them."""
    if packed:
        return [{"seed": p.seed, "packed": pack_notes(cut_short(p.notes))} for p in found]
    return [{"seed": p.seed, "notes": [n.to_wire() for n in cut_short(p.notes)]} for p in found]
