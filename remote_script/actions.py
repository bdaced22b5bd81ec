"""The actions a button can trigger: the names mapping files use, and what each one does.

Mapping files are checked against these names, so a typo in a user's mapping is reported
instead of leaving a button silently dead.
"""

from __future__ import annotations

ACTIONS = {
    "generate": "new groove in the highlighted slot (a new clip, or the clip's notes replaced)",
    "next_variation": "next variation of the last groove; for another clip, asks for variations of it",
    "previous_variation": "previous variation of the last groove (on another clip: as next_variation)",
    "continue": "extend the highlighted clip by `bars` new bars",
    "fill": "turn the clip's last bar (or every N bars, see fill_every) into a fill",
    "humanize": "loosen the clip's timing and velocities like a drummer would",
    "drumify": "turn the clip's rhythm (e.g. a tapped or melodic clip) into a drum groove",
    "next_style": "next style",
    "previous_style": "previous style",
    "bars_up": "longer grooves (1, 2, 4, 8, 16 bars)",
    "bars_down": "shorter grooves",
    "temperature_up": "wilder, more surprising grooves",
    "temperature_down": "tighter, more predictable grooves",
    "density_up": "more hits",
    "density_down": "fewer hits",
    "complexity_up": "busier rhythms, more off the beat",
    "complexity_down": "plainer rhythms, more on the beat",
    "style_mix": "blend a second style into the current one (press again for the next; off at the end)",
    "focus": "takes per groove, the one most typical of the style kept: 1, 2, 4, then 1 again",
    "guidance": "classifier-free guidance on (1.5: grooves follow the style harder, at ~1.3x the time) or off",
    "strength": "how hard the style is played: 1 (as learned), 2, 3, then each style's own again (1.5 for a genre)",
}
