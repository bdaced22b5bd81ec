"""The MidiDrumiGen wire protocol: constants both ends agree on.

Standard library only: this module also runs inside Live's embedded Python.
The full description, with examples, is docs/protocol.md. Bump PROTOCOL_VERSION
whenever a field changes meaning; adding an optional field does not need a bump.
"""

from __future__ import annotations

import reprlib

PROTOCOL_VERSION = 1

DEFAULT_ENDPOINT = "tcp://127.0.0.1:5555"

# A request larger than this is refused with E_TOO_LARGE before it is decoded.
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# The Live client drops the connection on a reply larger than this: keep replies below it.
MAX_REPLY_BYTES = MAX_MESSAGE_BYTES + 64 * 1024
# A request's id comes back on its reply: a string this long at most, or an integer.
MAX_ID_CHARS = 64

# Ops the daemon answers.
OP_PING = "ping"
OP_INFO = "info"
OP_STYLES = "styles"
OP_GENERATE = "generate"
OP_CONTINUE = "continue"  # play N more bars after a clip
OP_VARIATION = "variation"  # a new take on a clip
OP_FILL = "fill"  # a clip with fills in it
OP_HUMANIZE = "humanize"  # a quantised clip played like a drummer
OP_DRUMIFY = "drumify"  # a groove that plays on a clip's rhythm
OP_LEARN_STYLE = "learn_style"  # a new style from the user's clips
OP_CANCEL = "cancel"  # drop requests this connection sent that are still waiting or running
OPS = (OP_PING, OP_INFO, OP_STYLES, OP_GENERATE, OP_CONTINUE, OP_VARIATION, OP_FILL, OP_HUMANIZE, OP_DRUMIFY,
       OP_LEARN_STYLE, OP_CANCEL)

# Stable, machine-readable error codes. Messages beside them are for people.
E_MALFORMED = "malformed"  # bytes that are not one msgpack map
E_UNKNOWN_OP = "unknown_op"
E_BAD_REQUEST = "bad_request"  # a field is missing, of the wrong type or out of range
E_UNKNOWN_STYLE = "unknown_style"
E_TOO_LARGE = "too_large"
E_BUSY = "busy"  # the generation queue is full, or the daemon is stopping (STOPPING); retry later
STOPPING = "the daemon is stopping"  # how a `busy` of a daemon on its way out begins
E_INTERNAL = "internal"  # a bug in the daemon; the message says where to look
E_CANCELLED = "cancelled"  # dropped unfinished: its sender cancelled it, or its `timeout` passed
E_TIMEOUT = "timeout"  # client side: no reply in time
E_UNAVAILABLE = "unavailable"  # client side: the daemon cannot be reached

# Ranges the daemon accepts for `generate`; the Live side uses them to clamp its controls.
BARS_RANGE = (1, 16)
VARIATIONS_RANGE = (1, 16)
TEMPO_RANGE = (20.0, 400.0)

TEMPERATURE_RANGE = (0.05, 3.0)
TOP_P_RANGE = (0.01, 1.0)  # nucleus sampling's mass; at 0.01 nearly always the most likely token alone
FOCUS_RANGE = (1, 8)  # takes per variation; variations x focus is at most VARIATIONS_RANGE[1]
STRENGTH_RANGE = (0.0, 4.0)
# Past 2 classifier-free guidance thins grooves out (at 3, 12 % of bars under 5 hits, against 0.3 % at 1)
# and loses the one: docs/model.md, "Guidance".
GUIDANCE_RANGE = (0.0, 2.0)
TIMEOUT_RANGE = (0.001, 3600.0)  # seconds a request's sender waits; past it the daemon drops the work
SEED_RANGE = (0, 2**31 - 1)  # variation v of seed s plays seed (s + v) mod 2**31: any seed a reply carries is one to send
# The longest clip the clip ops take (and the most bars between `fill`'s fills), and the most
# notes it may hold (64 bars of a dense groove are ~2,000).
MAX_CLIP_BARS = 64
MAX_CLIP_NOTES = 4096
LEARN_STEPS_RANGE = (1, 100)  # learn_style's steps: learning holds the daemon's one model worker
# The genre slot plays any + strength x (style - any): 1 is the style as the model learned it, 0
# no style. Styles made of GMD genres play at 1.5 unless a request sets `strength`: grooves then
# say their genre more clearly, at no cost (docs/model.md measures it). Learned styles play at 1.
STYLE_STRENGTH = 1.5


def model_tempo(tempo: float) -> float:
    """The nearest tempo the daemon takes (TEMPO_RANGE): Live allows 20-999 BPM, a MIDI file
    anything; the clip or file keeps its own."""
    return min(max(tempo, TEMPO_RANGE[0]), TEMPO_RANGE[1])


class ProtocolError(Exception):
    """An error with a protocol code, raised on either side and sent as `error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_wire(self) -> dict:
        return {"code": self.code, "message": self.message}


def ok_reply(request_id, **fields) -> dict:
    reply = {"id": request_id, "ok": True}
    reply.update(fields)
    return reply


def error_reply(request_id, code: str, message: str) -> dict:
    return {"id": request_id, "ok": False, "error": {"code": code, "message": message}}


_BRIEF = reprlib.Repr()
_BRIEF.maxstring = _BRIEF.maxother = 60  # a style name (40 characters) whole; a megabyte, or 1,000 levels deep, not


def brief(value: object) -> str:
    """A client's value as an error message shows it: whole when short, abridged when long or deep."""
    return _BRIEF.repr(value)
