"""Status-bar words: what a musician reads when something happens or goes wrong.

Status lines are short and say what to do; the technical detail goes to Log.txt.
"""

from __future__ import annotations

from .wire import (E_BUSY, E_INTERNAL, E_TIMEOUT, E_UNAVAILABLE, E_UNKNOWN_OP, NOT_RUNNING, NOT_THE_DAEMON, STOPPED,
                   STOPPING)

PREFIX = "MidiDrumiGen: "


def say(text: str) -> str:
    return PREFIX + text


def bars_text(bars: int) -> str:
    return f"{bars} bar{'s' if bars != 1 else ''}"


def error_status(op: str, code: str | None, message: str | None) -> str:
    """The status line for a failed request; daemon messages are already written for people."""
    if code == E_UNAVAILABLE and message is not None and NOT_THE_DAEMON in message:  # the whole story in Log.txt
        return say("something else answers at the daemon's address (another program, or a daemon that "
                   "needs CurveZMQ) — details in Live's Log.txt")
    if code == E_UNAVAILABLE and message is not None and message.startswith(NOT_RUNNING) and STOPPED in message:
        return say("the daemon stopped while working (its log says why) — start it again with `drumigen serve`")
    if code == E_UNAVAILABLE and (message is None or message.startswith(NOT_RUNNING)):
        return say("daemon not running — start it with `drumigen serve`")
    if code == E_UNAVAILABLE:  # no answer at all: a name that does not resolve, a computer out of reach
        return say("cannot reach the daemon — is `drumigen serve` running at the address in settings.json? "
                   "Details in Live's Log.txt")
    if code == E_TIMEOUT:
        return say("the daemon did not answer in time — ask for fewer bars or variations, or raise timeout_s in "
                   "settings.json; if it keeps happening, restart `drumigen serve`")
    if code == E_UNKNOWN_OP:
        return say(f"this daemon does not support {op} yet — update MidiDrumiGen")
    if code == E_BUSY and message is not None and message.startswith(STOPPING):
        return say("the daemon is stopping — try again once it runs again (`drumigen serve`)")
    if code == E_BUSY:
        return say("the daemon is busy with other requests — try again in a moment")
    if code == E_INTERNAL:
        return say("the daemon hit a problem — see its log (details in Live's Log.txt)")
    return say(message or f"the daemon refused the request ({code})")
