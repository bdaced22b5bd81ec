"""Controller mappings: which button (CC or note, channel, number) triggers which action.

A mapping is a JSON file users can edit:

    {"name": "...", "leds": {"idle": 127, "busy": 0},
     "controls": {"generate": {"type": "cc", "channel": 15, "number": 102}, ...}}

`channel` is 0-15, or "any" for notes (Push 3 in MPE mode sends each pad on its own channel).
`leds` (optional, per mapping and per control) says which value lights a button's LED while it
waits for nothing ("idle") and while its request runs ("busy"); `busy_channel` sends the busy
value on another channel (Push 2/3 animate LEDs that way). Without `leds` no MIDI is sent back.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .actions import ACTIONS
from .settings import read_json

ANY_CHANNEL = None  # a note control that listens on all 16 channels
_STATUS = {"cc": 0xB0, "note": 0x90}


class MappingError(ValueError):
    """A mapping file that cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class Leds:
    idle: int
    busy: int
    busy_channel: int | None = None  # None: the control's own channel


@dataclass(frozen=True)
class Control:
    action: str
    kind: str  # "cc" or "note"
    channel: int | None  # None: any channel (notes only)
    number: int
    leds: Leds | None = None

    def led_message(self, busy: bool) -> tuple[int, int, int] | None:
        """The MIDI message that shows this control's state, if its controller has LEDs."""
        if self.leds is None:
            return None
        value = self.leds.busy if busy else self.leds.idle
        channel = self.channel or 0
        if busy and self.leds.busy_channel is not None:
            channel = self.leds.busy_channel
        return (_STATUS[self.kind] | channel, self.number, value)

    def off_message(self) -> tuple[int, int, int] | None:
        if self.leds is None:
            return None
        return (_STATUS[self.kind] | (self.channel or 0), self.number, 0)


@dataclass(frozen=True)
class Mapping:
    name: str
    controls: tuple[Control, ...]

    def action_for(self, kind: str, channel: int, number: int) -> str | None:
        for control in self.controls:
            if control.kind == kind and control.number == number and control.channel in (channel, ANY_CHANNEL):
                return control.action
        return None

    def control_for(self, action: str) -> Control | None:
        for control in self.controls:
            if control.action == action:
                return control
        return None


def load_mapping(spec: str, folder: Path) -> Mapping:
    """The mapping named `spec`: a file in `folder` ("push", "push.json"), or the path `spec`."""
    try:
        path = Path(spec).expanduser()
    except RuntimeError as error:  # "~someone/push.json" for a user this computer does not have
        raise MappingError(f"mapping {spec!r} could not be found: {error}") from None
    if path.suffix.lower() != ".json":
        path = folder / f"{spec}.json"
    elif path.parent == Path("."):  # a bare file name: one in the mappings folder
        path = folder / f"{path.stem}.json"
    try:
        data, repeated = read_json(path)
    except FileNotFoundError:
        available = ", ".join(sorted(p.stem for p in folder.glob("*.json")))
        raise MappingError(f"mapping {spec!r} not found (available mappings: {available})") from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as error:
        raise MappingError(f"mapping {path.name} could not be read: {error}") from None
    if repeated:  # two controls for one action, one of them silently unmapped
        raise MappingError(f"mapping {path.name} gives the key{'s' * (len(repeated) > 1)} "
                                   f"{', '.join(map(repr, repeated))} twice in one object")
    return parse_mapping(data, path.name)


def parse_mapping(data: object, source: str) -> Mapping:
    if not isinstance(data, dict) or not isinstance(data.get("controls"), dict):
        raise MappingError(f"{source}: expected {{\"name\": ..., \"controls\": {{action: control}}}}")
    default_leds = _leds(data.get("leds"), f"{source}: leds")
    controls, seen = [], {}
    for action, entry in data["controls"].items():
        where = f"{source}: {action}"
        if action not in ACTIONS:
            raise MappingError(f"{where}: unknown action; known actions: {', '.join(ACTIONS)}")
        control = _control(action, entry, default_leds, where)
        for channel in range(16) if control.channel is ANY_CHANNEL else (control.channel,):
            key = (control.kind, channel, control.number)
            if key in seen:
                taken = f"{control.kind} {control.number} on channel {channel}"
                raise MappingError(f"{where}: {taken} is already {seen[key]}")
            seen[key] = action
        controls.append(control)
    return Mapping(str(data.get("name", source)), tuple(controls))


def _control(action: str, entry: object, default_leds: Leds | None, where: str) -> Control:
    if not isinstance(entry, dict):
        raise MappingError(f"{where}: expected {{\"type\": \"cc\"|\"note\", \"channel\": 0-15, \"number\": 0-127}}")
    kind, channel, number = entry.get("type"), entry.get("channel"), entry.get("number")
    if kind not in _STATUS:
        raise MappingError(f"{where}: type must be \"cc\" or \"note\", got {kind!r}")
    if channel == "any" and kind == "note":
        channel = ANY_CHANNEL
    elif not _in(channel, 0, 15):
        allowed = '0-15 or "any"' if kind == "note" else "0-15"
        raise MappingError(f"{where}: channel must be {allowed}, got {channel!r}")
    if not _in(number, 0, 127):
        raise MappingError(f"{where}: number must be 0-127, got {number!r}")
    leds = _leds(entry["leds"], f"{where}: leds") if "leds" in entry else default_leds
    return Control(action, kind, channel, number, leds)


def _leds(data: object, where: str) -> Leds | None:
    if data is None:
        return None
    if not isinstance(data, dict) or not _in(data.get("idle"), 0, 127) or not _in(data.get("busy"), 0, 127):
        raise MappingError(f"{where}: expected {{\"idle\": 0-127, \"busy\": 0-127}} or null")
    busy_channel = data.get("busy_channel")
    if busy_channel is not None and not _in(busy_channel, 0, 15):
        raise MappingError(f"{where}: busy_channel must be 0-15, got {busy_channel!r}")
    return Leds(data["idle"], data["busy"], busy_channel)


def _in(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high
