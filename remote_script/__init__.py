"""MidiDrumiGen for Ableton Live 12: controller buttons that write AI drum grooves into clips.

Live imports this package and calls `create_instance`. The installer copies the wire-protocol
client (`shared/`) into `_vendor/` beside this file, imported from there under this package's
name (wire.py); in the repository it sits at the top level. Importing the surface only inside
`create_instance` keeps this package importable without Live.
"""


def create_instance(c_instance: object) -> object:
    """Live's entry point: the control surface for this script slot."""
    from .surface import DrumSurface

    return DrumSurface(c_instance)
