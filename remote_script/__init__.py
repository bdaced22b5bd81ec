"""MidiDrumiGen for Ableton Live 12: controller buttons that write AI drum grooves into clips.

Live imports this package and calls `create_instance`. The installer copies the wire-protocol
client (`shared/`) into `_vendor/` beside this file, imported from there under this package's
name (wire.py); in the repository it sits at the top level. Importing the surface only inside
`create_instance` keeps this package importable without Live.

This file alone must run on Live 12.0's Python 3.7, so that such a Live says why the script
does nothing instead of failing at every press.
"""

import sys

NEEDS_PYTHON = (3, 11)  # what Live 12.1 and later embed (12.0: 3.7)


def create_instance(c_instance):
    """Live's entry point: the control surface for this script slot."""
    if tuple(sys.version_info[:2]) < NEEDS_PYTHON:
        return TooOldLive(c_instance)
    from .surface import DrumSurface

    return DrumSurface(c_instance)


class TooOldLive:
    """The control surface a Live older than 12.1 gets: it takes no buttons and says why."""

    def __init__(self, c_instance):
        self._c_instance = c_instance
        self.message = "MidiDrumiGen needs Live 12.1 or later (Python %d.%d here, %d.%d needed)" % (
            tuple(sys.version_info[:2]) + NEEDS_PYTHON)
        c_instance.log_message(self.message)
        self.refresh_state()

    def refresh_state(self):
        self._c_instance.show_message(self.message)

    def port_settings_changed(self):
        self.refresh_state()

    def build_midi_map(self, midi_map_handle):
        """Forwards nothing: the controller's buttons stay Live's."""

    def receive_midi(self, midi_bytes):
        """Nothing is forwarded, so nothing arrives."""

    def update_display(self):
        """Nothing to do on Live's tick."""

    def disconnect(self):
        """Nothing opened, nothing to close."""

    def connect_script_instances(self, instanciated_scripts):
        """Works alone, as the script does."""

    def can_lock_to_devices(self):
        return False

    def suggest_input_port(self):
        return ""

    def suggest_output_port(self):
        return ""

    def suggest_map_mode(self, cc_no, channel):
        import Live

        return Live.MidiMap.MapMode.absolute
