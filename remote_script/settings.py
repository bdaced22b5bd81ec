"""The user's settings file: endpoint, starting style and length, kit map, controller mapping.

Users edit settings.json by hand, so a bad value never stops the script: it falls back to the
default and the problem is reported in words (status bar and Log.txt).
"""

from __future__ import annotations

import ipaddress
import json
import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

from .wire import (BARS_RANGE, DEFAULT_ENDPOINT, FOCUS_RANGE, GUIDANCE_RANGE, STRENGTH_RANGE, TEMPERATURE_RANGE, TOP_P_RANGE,
                   VARIATIONS_RANGE, parse_endpoint)


@dataclass(frozen=True)
class Settings:
    endpoint: str = DEFAULT_ENDPOINT
    mapping: str = "generic"  # a file in mappings/ (without .json) or a path to one
    style: str = "funk"
    bars: int = 4
    variations: int = 8  # asked for on each generate, cycled locally by next/previous variation
    focus: int = 1  # starting takes per variation, the most typical of the style kept (the focus button steps it)
    guidance: float = 1.0  # starting classifier-free guidance (the guidance button toggles 1 and 1.5)
    strength: float | None = None  # starting style strength; None: each style's own (the strength button steps it)
    temperature: float = 1.0
    top_p: float = 0.95  # nucleus sampling: the most likely hits that make up this much of the chance
    density: float | None = None  # None: let the model choose
    complexity: float | None = None  # None: let the model choose
    humanize_amount: float = 0.5
    humanize_ghost_notes: bool = False  # humanize adds soft snare ghost notes
    humanize_chance: bool = False  # ghost notes and velocity scatter left to Live's dice, new on every pass
    fill_every: int | None = None  # bars between fills; None: only the last bar
    kit: str | dict = "gm"  # a daemon's built-in map name ("gm", "gmd", ...) or {"gm pitch": your pitch}
    timeout_s: float = 20.0  # waited (1 + retries) times while the daemon works; generation on a CPU can take seconds
    retries: int = 1  # one more timeout waited through, or one resend after a lost connection


def read_json(path: Path) -> tuple[object, list[str]]:
    """The JSON in `path` and the keys an object in it names more than once. JSON keeps the
    last of them without a word; a hand-edited file that names "style" twice was meant to say
    one thing, and the user should hear which one counts."""
    repeated: list[str] = []

    def once_each(pairs: list[tuple[str, object]]) -> dict:
        seen: dict = {}
        for key, value in pairs:
            if key in seen and key not in repeated:
                repeated.append(key)
            seen[key] = value
        return seen

    return json.loads(path.read_text(encoding="utf-8-sig"), object_pairs_hook=once_each), repeated  # BOM: Notepad


def load_settings(path: Path) -> tuple[Settings, list[str]]:
    """Settings from `path` (defaults where absent or invalid) and the problems found."""
    if not path.exists():
        return Settings(), []
    try:
        raw, repeated = read_json(path)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        return Settings(), [f"{path.name} could not be read ({error}); using the defaults"]
    if not isinstance(raw, dict):
        return Settings(), [f"{path.name} must hold a JSON object; using the defaults"]
    settings = Settings()
    problems = [f"{path.name}: the key {key!r} is given twice in one object; the last one counts" for key in repeated]
    known = {f.name for f in fields(Settings)}
    for name, value in raw.items():
        if name not in known:
            problems.append(f"{path.name}: unknown setting {name!r} ignored (known: {', '.join(sorted(known))})")
            continue
        if name == "style" and isinstance(value, str):
            value = value.strip().lower()  # as the daemon names styles: "Funk" is funk
        problem = _check(name, value)
        if problem:
            problems.append(f"{path.name}: {name} {problem}; using {getattr(settings, name)!r}")
        else:
            as_float = isinstance(getattr(Settings, name), float)  # JSON's 1 for a 1.0 default
            settings = replace(settings, **{name: float(value) if as_float else value})
    return settings, problems


def _check(name: str, value: object) -> str | None:
    """Why `value` is not acceptable for setting `name`, or None."""
    if name == "endpoint":
        try:
            host, _ = parse_endpoint(value)  # type: ignore[arg-type]
        except ValueError:
            return f"must look like {DEFAULT_ENDPOINT} (IPv6: tcp://[::1]:5555), got {value!r}"
        if host.lower() != "localhost" and not _is_ip(host):
            # A name would be looked up on Live's own thread, which must never wait for DNS.
            return f"must name the daemon's computer by its IP address (or localhost), got {value!r}"
        return None
    if name in ("mapping", "style"):
        return None if isinstance(value, str) and value else "must be a non-empty string"
    if name == "kit":
        if isinstance(value, str) and value:
            return None  # the daemon knows its built-in maps and names them if this is not one
        if isinstance(value, dict) and all(_names_pitch(k) and _is_pitch(v) for k, v in value.items()):
            return None
        return 'must be a kit name such as "gm" or a map {"36": 36, ...} of MIDI pitches'
    if name in ("density", "complexity", "strength", "fill_every") and value is None:
        return None
    if isinstance(getattr(Settings, name), bool):
        return None if isinstance(value, bool) else "must be true or false"
    bounds = {
        "bars": BARS_RANGE,
        "variations": VARIATIONS_RANGE,
        "focus": FOCUS_RANGE,
        "fill_every": BARS_RANGE,
        "retries": (0, 10),
        "temperature": TEMPERATURE_RANGE,
        "top_p": TOP_P_RANGE,
        "guidance": GUIDANCE_RANGE,
        "strength": STRENGTH_RANGE,
        "density": (0.0, 1.0),
        "complexity": (0.0, 1.0),
        "humanize_amount": (0.0, 1.0),
        "timeout_s": (0.5, 600.0),
    }[name]
    whole = isinstance(bounds[0], int)
    if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
        return "must be a whole number" if whole else "must be a number"
    if not (math.isfinite(value) and bounds[0] <= value <= bounds[1]):
        return f"must be between {bounds[0]:g} and {bounds[1]:g}"
    return None


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _names_pitch(key: str) -> bool:
    """A JSON key naming a MIDI pitch: "36"."""
    return key.isascii() and key.isdigit() and 0 <= int(key) <= 127


def _is_pitch(value: object) -> bool:
    """A MIDI pitch as the daemon takes it: a number, not "40" (every request failed on one)."""
    return type(value) is int and 0 <= value <= 127
