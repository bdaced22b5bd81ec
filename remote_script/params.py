"""What the next request asks for: style (or style mix), bars, temperature, density, complexity,
focus, guidance, strength.

The step buttons change these locally; nothing is sent until a request action is pressed.
"""

from __future__ import annotations

from dataclasses import dataclass

from .wire import TEMPERATURE_RANGE

# The shipped model's styles (Groove MIDI Dataset genres), used until the daemon lists its own.
FALLBACK_STYLES = (
    "rock", "funk", "hiphop", "jazz", "latin", "afrocuban", "punk", "neworleans", "soul",
    "country", "pop", "reggae", "gospel", "afrobeat", "dance", "blues", "middleeastern", "highlife",
)  # fmt: skip
BAR_STEPS = (1, 2, 4, 8, 16)  # musical lengths within protocol.BARS_RANGE
TEMPERATURE_STEP = 0.1
# The tighter button stops here: cooler, grooves thin out towards the likeliest single piece (hats
# alone, in a meter the data barely has: docs/model.md, "Temperature"). The settings file may start lower.
LOWEST_BUTTON_TEMPERATURE = 0.5
LEVEL_STEP = 0.1  # density and complexity, each 0-1
LEVEL_START = 0.5  # where the first press starts from "the model chooses"
MIX_SHARE = 0.3  # the blended-in style's weight
FOCUS_STEPS = (1, 2, 4)  # takes per groove the focus button cycles through (each costs about a variation)
GUIDANCE_STEPS = (1.0, 1.5)  # off, and where the shipped model's grooves say their genre most clearly (docs/model.md)
# The strength button's steps and what each does to a genre; after them each style's own again.
STRENGTH_STEPS = {1.0: "the style as learned, softer than a genre's 1.5", 2.0: "leaning into the style",
                  3.0: "a caricature"}


@dataclass
class Params:
    styles: tuple[str, ...]
    style: str
    bars: int
    temperature: float
    density: float | None
    complexity: float | None = None
    focus: int = 1
    guidance: float = 1.0
    strength: float | None = None  # None: each style's own (1.5 for a genre, 1 for a learned style)
    mix_with: str | None = None

    def set_styles(self, styles: list[str]) -> None:
        """Adopt the daemon's style list, keeping the current style when it knows it."""
        if not styles:
            return
        self.styles = tuple(styles)
        if self.mix_with not in self.styles:
            self.mix_with = None

    def step_style(self, direction: int) -> str:
        self.style = _cycle(self.styles, self.style, direction)
        if self.mix_with == self.style:
            self.mix_with = None
        return self.style

    def step_mix(self) -> str | None:
        """Next style to blend in; after the last one, no mix."""
        others = [s for s in self.styles if s != self.style]
        if self.mix_with is None:
            self.mix_with = others[0] if others else None
        else:
            index = others.index(self.mix_with) + 1 if self.mix_with in others else len(others)
            self.mix_with = others[index] if index < len(others) else None
        return self.mix_with

    def step_bars(self, direction: int) -> int:
        if direction > 0:
            bigger = [b for b in BAR_STEPS if b > self.bars]
            self.bars = bigger[0] if bigger else self.bars
        else:
            smaller = [b for b in BAR_STEPS if b < self.bars]
            self.bars = smaller[-1] if smaller else self.bars
        return self.bars

    def step_temperature(self, direction: int) -> float:
        on_grid = round(self.temperature / TEMPERATURE_STEP) * TEMPERATURE_STEP  # a start off the grid comes onto it
        value = round(on_grid + direction * TEMPERATURE_STEP, 2)
        lowest = max(min(LOWEST_BUTTON_TEMPERATURE, self.temperature), TEMPERATURE_RANGE[0])  # never a jump up
        self.temperature = min(max(value, lowest), TEMPERATURE_RANGE[1])
        return self.temperature

    def step_density(self, direction: int) -> float | None:
        self.density = _step_level(self.density, direction)
        return self.density

    def step_complexity(self, direction: int) -> float | None:
        self.complexity = _step_level(self.complexity, direction)
        return self.complexity

    def step_focus(self) -> int:
        self.focus = _next_step(FOCUS_STEPS, self.focus)
        return self.focus

    def step_guidance(self) -> float:
        self.guidance = _next_step(GUIDANCE_STEPS, self.guidance)
        return self.guidance

    def step_strength(self) -> float | None:
        """The next of STRENGTH_STEPS; after the last, None again: no `strength` is sent, so the
        daemon plays each style at its own (genres 1.5, learned styles 1, as fitted)."""
        if self.strength is None:
            self.strength = next(iter(STRENGTH_STEPS))
        else:
            self.strength = next((step for step in STRENGTH_STEPS if step > self.strength), None)
        return self.strength

    def wire_style(self) -> str | dict[str, float]:
        """The `style` field: a name, or a mix such as {"funk": 0.7, "jazz": 0.3}."""
        if self.mix_with is None:
            return self.style
        return {self.style: round(1.0 - MIX_SHARE, 2), self.mix_with: MIX_SHARE}

    def style_label(self) -> str:
        return self.style if self.mix_with is None else f"{self.style}+{self.mix_with}"


def _step_level(level: float | None, direction: int) -> float | None:
    """A 0-1 control one LEVEL_STEP on; from None ("the model chooses") it starts at LEVEL_START,
    and one step past either end it is None again, so the model's choice is never out of reach."""
    if level is None:
        return min(max(round(LEVEL_START + direction * LEVEL_STEP, 2), 0.0), 1.0)
    stepped = round(level + direction * LEVEL_STEP, 2)
    return stepped if 0.0 <= stepped <= 1.0 else None


def _next_step(steps: tuple, current):
    """The first of `steps` above `current`, after the last the first again (a setting may start
    between steps)."""
    return next((step for step in steps if step > current), steps[0])


def _cycle(items: tuple[str, ...], current: str, direction: int) -> str:
    if current not in items:
        return items[0] if direction > 0 else items[-1]
    return items[(items.index(current) + direction) % len(items)]
