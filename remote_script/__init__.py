"""MidiDrumiGen for Ableton Live 12: controller buttons that write AI drum grooves into clips.

Live imports this package and calls `create_instance`. The installer copies the wire-protocol
client (`shared/`) into `_vendor/` beside this file; in the repository it sits at the top level.
Importing the surface only inside `create_instance` keeps this package importable without Live.
"""

import os
import sys

_VENDOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vendor")


def create_instance(c_instance: object) -> object:
    """Live's entry point: the control surface for this script slot."""
    if os.path.isdir(_VENDOR) and _VENDOR not in sys.path:
        sys.path.insert(0, _VENDOR)  # only `shared` lives there, so nothing else is shadowed
    from .surface import DrumSurface

    return DrumSurface(c_instance)
