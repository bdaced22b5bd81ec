"""The wire protocol and its client (`shared/`), as this script imports them.

Live runs every control surface script in one Python, where a top-level `shared` could be another
script's, and ours would shadow theirs. So the installed script imports its own copy, which the
installer puts in `_vendor/shared`, under this package's name; in the repository, where there is
no such copy, the top-level `shared` is the one.
"""

from __future__ import annotations

import importlib
import os

_VENDORED = os.path.isdir(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_vendor", "shared"))
_PACKAGE = f"{__package__}._vendor.shared" if _VENDORED else "shared"
_client, _notes, _protocol = (importlib.import_module(f"{_PACKAGE}.{name}") for name in ("client", "notes", "protocol"))

DaemonClient, Reply, parse_endpoint = _client.DaemonClient, _client.Reply, _client.parse_endpoint
NOT_RUNNING, NOT_THE_DAEMON, STOPPED = _client.NOT_RUNNING, _client.NOT_THE_DAEMON, _client.STOPPED
Note, bar_beats, cut_short, unpack_notes = _notes.Note, _notes.bar_beats, _notes.cut_short, _notes.unpack_notes
ProtocolError, PROTOCOL_VERSION, DEFAULT_ENDPOINT = _protocol.ProtocolError, _protocol.PROTOCOL_VERSION, _protocol.DEFAULT_ENDPOINT
model_tempo = _protocol.model_tempo
OP_CONTINUE, OP_DRUMIFY, OP_FILL, OP_GENERATE, OP_HUMANIZE, OP_INFO, OP_STYLES, OP_VARIATION = (
    _protocol.OP_CONTINUE, _protocol.OP_DRUMIFY, _protocol.OP_FILL, _protocol.OP_GENERATE, _protocol.OP_HUMANIZE,
    _protocol.OP_INFO, _protocol.OP_STYLES, _protocol.OP_VARIATION,
)  # fmt: skip
E_BUSY, E_INTERNAL, E_MALFORMED, E_TIMEOUT, E_UNAVAILABLE, E_UNKNOWN_OP = (
    _protocol.E_BUSY, _protocol.E_INTERNAL, _protocol.E_MALFORMED, _protocol.E_TIMEOUT, _protocol.E_UNAVAILABLE,
    _protocol.E_UNKNOWN_OP,
)  # fmt: skip
MAX_CLIP_NOTES, STOPPING = _protocol.MAX_CLIP_NOTES, _protocol.STOPPING
BARS_RANGE, FOCUS_RANGE, GUIDANCE_RANGE, STRENGTH_RANGE, TEMPERATURE_RANGE, TOP_P_RANGE, VARIATIONS_RANGE = (
    _protocol.BARS_RANGE, _protocol.FOCUS_RANGE, _protocol.GUIDANCE_RANGE, _protocol.STRENGTH_RANGE,
    _protocol.TEMPERATURE_RANGE, _protocol.TOP_P_RANGE, _protocol.VARIATIONS_RANGE,
)  # fmt: skip
