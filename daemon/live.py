"""Live mode: phrases from the daemon, always one ahead of the playhead, steerable while playing.

A worker thread owns the DaemonClient and keeps one phrase ready beyond the one playing, so
playback never waits for the model. Each phrase after the first is the daemon's `continue` of
the phrase before it: asked for afresh, phrases jumped in loudness and density at most joins (a
review: the bars either side of 45 of 84 joins differed by more than 12 in mean velocity, 39 of
264 bar lines inside a phrase). A change of style, density or temperature (terminal keys or
MIDI CCs) discards what was prepared with the old settings and asks for a new groove in the
new ones (`generate`: continuing the phrase playing held a change to rock to the density of the
sparse jazz before it); the player splices it in at the first bar line after it arrives, and
the phrases after it continue it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import mido

from daemon.scheduler import Phrase
from shared.client import DaemonClient, Reply
from shared.notes import Note, bar_beats
from shared.protocol import (
    E_BUSY,
    E_CANCELLED,
    E_INTERNAL,
    E_MALFORMED,
    E_TIMEOUT,
    E_UNAVAILABLE,
    OP_CONTINUE,
    OP_GENERATE,
    OP_STYLES,
    SEED_RANGE,
    TEMPERATURE_RANGE,
    model_tempo,
    ProtocolError,
)

PREFETCH = 1  # phrases kept ready beyond the one playing
GENERATE_TIMEOUT_S = 20.0  # per attempt; a phrase takes well under a second on 2 CPU cores
GENERATE_RETRIES = 1
RETRY_AFTER_S = 1.0  # after a failed request while playing (the current phrase repeats)
PASSING = (E_UNAVAILABLE, E_TIMEOUT, E_BUSY, E_CANCELLED)  # errors worth a retry; others would only come again
DENSITY_STEP = 0.1
TEMPERATURE_STEP = 0.1
DEFAULT_DENSITY = 0.5  # where the density keys start when no density was asked for
# Undefined controllers (MIDI 1.0 leaves CC 20-31 free); any channel.
CC_STYLE, CC_DENSITY, CC_TEMPERATURE = 20, 21, 22
CC_TEMPERATURE_RANGE = (0.1, 2.0)  # the musically useful part of the daemon's range
KEYS_HELP = "keys: [ ] density, - = temperature, , . style, q quit"

log = logging.getLogger("drumigen.play")


class DaemonError(Exception):
    """The daemon refused or could not be reached; `code` is a shared.protocol error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Settings:
    """What live mode asks the daemon for; changed while playing."""

    style: str | dict[str, float] | None  # a name or a mix
    density: float | None
    temperature: float

    def describe(self) -> str:
        density = "any" if self.density is None else f"{self.density:.2f}"
        return f"style {self.style or 'any'}, density {density}, temperature {self.temperature:.2f}"


def request_fields(settings: Settings, bars: int, meter: tuple[int, int], tempo: float,
                   seed: int | None, loop: bool = True) -> dict:
    """`loop`: the phrase plays into its own one (False: into the next phrase's, which the
    player's Sequencer sees and the daemon does not)."""
    fields = {"bars": bars, "tempo": round(model_tempo(tempo), 2), "time_signature": list(meter),
              "temperature": settings.temperature}
    if not loop:
        fields["loop"] = False
    if settings.style is not None:
        fields["style"] = settings.style
    if settings.density is not None:
        fields["density"] = settings.density
    if seed is not None:
        fields["seed"] = seed
    return fields


def phrase_from_reply(reply: Reply, channel: int, label: str, after: Phrase | None = None) -> Phrase:
    """The first pattern of a `generate` reply, or of a `continue` of the phrase `after` (its
    notes start where that one ends, its bars and meter); raises DaemonError if the reply is not one."""
    if not reply.ok:
        raise DaemonError(reply.error_code or E_MALFORMED, reply.error_message or "generation failed")
    data = reply.data
    try:
        pattern = data["patterns"][0]
        notes = [Note.from_wire(wire) for wire in pattern["notes"]]
        if after is not None:
            notes = [replace(n, start=round(n.start - after.length, 6)) for n in notes]
            meter, length = after.meter, after.length
        else:
            meter = (int(data["time_signature"][0]), int(data["time_signature"][1]))
            length = int(data["bars"]) * bar_beats(meter)
    except (KeyError, IndexError, TypeError, ValueError) as err:
        raise DaemonError(E_MALFORMED, f"the daemon's reply is not a pattern ({err!r})") from None
    except ProtocolError as err:
        raise DaemonError(E_MALFORMED, f"the daemon sent a bad note: {err.message}") from None
    info = {"seed": pattern.get("seed"), "tempo": data.get("tempo")}
    return Phrase.build(notes, length, meter, f"{label}, seed {info['seed']}", channel, info, generated=True)


def generate_once(endpoint: str, settings: Settings, *, bars: int, meter: tuple[int, int], tempo: float,
                  seed: int | None, channel: int) -> Phrase:
    """One phrase, blocking (for `play --style` without --live)."""
    with DaemonClient(endpoint, timeout=GENERATE_TIMEOUT_S, retries=GENERATE_RETRIES) as client:
        reply = client.call(OP_GENERATE, **request_fields(settings, bars, meter, tempo, seed))
    return phrase_from_reply(reply, channel, settings.describe())


class LiveSource:
    """A PhraseSource fed by the daemon; see the module docstring."""

    def __init__(self, endpoint: str, settings: Settings, *, bars: int, meter: tuple[int, int], channel: int,
                 tempo: Callable[[], float], seed: int | None = None) -> None:
        self.styles: list[str] = []  # the daemon's, for the style keys and CC
        self._endpoint = endpoint
        self._bars, self._meter, self._channel, self._tempo = bars, meter, channel, tempo
        self._seed = seed  # the next request's: it moves on when a phrase arrives, not when a request fails
        self._working = settings  # the last settings the daemon made a phrase with
        self._cond = threading.Condition()
        self._settings = settings
        self._version = 0  # bumped by every change of settings
        self._playing = 0  # the version of the phrase playing now
        self._ready: deque[Phrase] = deque()  # made with the current settings, waiting their turn
        self._change: tuple[int, Phrase] | None = None  # the first phrase after a change
        self._current: Phrase | None = None
        self._failure: DaemonError | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="drumigen-live", daemon=True)

    @property
    def settings(self) -> Settings:
        return self._settings

    def start(self) -> None:
        """Fetch the styles and the first phrase; raise DaemonError if the daemon cannot."""
        self._thread.start()
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._failure is not None)
            if self._failure is not None:
                raise self._failure

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=1.0)  # a request in flight ends by its own timeout

    def change(self, **fields: object) -> bool:
        """New settings from the next phrase on; False if nothing changed."""
        with self._cond:
            settings = replace(self._settings, **fields)
            if settings == self._settings:
                return False
            self._settings = settings
            self._version += 1
            if self._current is None:  # nothing played yet: the first phrase plays at once, the change after it
                self._ready = deque(list(self._ready)[:1])
            else:
                self._ready.clear()
            self._change = None
            self._cond.notify_all()
        log.info("next bar: %s", settings.describe())
        return True

    def next_phrase(self) -> Phrase:
        """The next phrase, or this one again if the daemon is late; DaemonError once it refused
        in a way a retry will not mend (the player stops, silencing what sounds)."""
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if self._change is not None:
                return self._adopt_change()
            if self._ready:
                self._current = self._ready.popleft()
                self._cond.notify_all()
            elif self._current is None:
                raise DaemonError(E_UNAVAILABLE, "live mode stopped before its first phrase")
            else:
                log.warning("the daemon has not delivered the next phrase yet: repeating this one")
            return self._current

    def again(self) -> Phrase:
        """The phrase playing now; before any, the first: a clock master's Start or Song Position
        comes before the first phrase is played (it crashed the player)."""
        return self._current if self._current is not None else self.next_phrase()

    def take_change(self) -> Phrase | None:
        with self._cond:
            return self._adopt_change() if self._change is not None else None

    def _adopt_change(self) -> Phrase:
        assert self._change is not None
        self._playing, self._current = self._change
        self._change = None
        self._cond.notify_all()
        return self._current

    def _wanted(self) -> bool:
        return (self._version != self._playing and self._change is None) or len(self._ready) < PREFETCH

    def _work(self) -> None:
        try:
            self._serve()
        except Exception as err:  # a bug here must not leave start() waiting forever
            log.exception("live mode's request thread failed")
            self._fail(DaemonError(E_INTERNAL, f"live mode failed: {err!r}"))

    def _serve(self) -> None:
        with DaemonClient(self._endpoint, timeout=GENERATE_TIMEOUT_S, retries=GENERATE_RETRIES) as client:
            styles = client.call(OP_STYLES)
            if not styles.ok:
                self._fail(DaemonError(styles.error_code or E_MALFORMED, styles.error_message or ""))
                return
            self.styles = sorted(styles.data.get("styles") or [])
            while True:
                with self._cond:
                    self._cond.wait_for(lambda: self._closed or self._wanted())
                    if self._closed:
                        return
                    version, settings = self._version, self._settings
                    changing = version != self._playing and self._change is None
                    # the phrase it follows; none for new settings, which start a groove of their own
                    # (continued, the phrase playing held a change to rock to the sparse jazz's density)
                    after = (None if changing else self._ready[-1] if self._ready
                             else self._change[1] if self._change is not None else self._current)
                fields = request_fields(settings, self._bars, self._meter, self._tempo(), self._seed, loop=False)
                if after is not None:  # the phrase it follows, heard: the model plays on from it
                    fields.update(notes=[n.to_wire() for n in after.notes], length=after.length)
                try:
                    phrase = phrase_from_reply(client.call(OP_GENERATE if after is None else OP_CONTINUE, **fields),
                                               self._channel, settings.describe(), after)
                except DaemonError as err:
                    with self._cond:
                        first = self._current is None and not self._ready
                    if first:
                        self._fail(err)
                        return
                    if err.code not in PASSING:
                        if not self._back_to_working(version, err):
                            return
                        continue
                    log.warning("%s — repeating the current phrase, retrying in %g s", err, RETRY_AFTER_S)
                    with self._cond:
                        self._cond.wait_for(lambda: self._closed, RETRY_AFTER_S)
                    continue
                with self._cond:
                    self._working = settings
                    if version != self._version:
                        continue  # made with settings changed meanwhile: its seed plays the next one
                    if self._seed is not None:
                        self._seed = (self._seed + 1) % (SEED_RANGE[1] + 1)  # wrapping, as variation seeds do
                    if version != self._playing and self._change is None:
                        self._change = (version, phrase)
                    else:
                        self._ready.append(phrase)
                    self._cond.notify_all()

    def _back_to_working(self, version: int, err: DaemonError) -> bool:
        """A change the daemon refused (a style it no longer has, say) goes back to the settings
        that worked, rather than ending the show; False when those were refused: it ends, with
        the daemon's word (next_phrase raises it)."""
        with self._cond:
            if version != self._version:  # changed again meanwhile: those settings are tried next
                return True
            if self._settings == self._working:
                self._failure = err
                self._cond.notify_all()
                return False
            log.error("the daemon refused %s (%s) — back to %s", self._settings.describe(), err,
                      self._working.describe())
            self._settings = self._working
            self._version += 1  # what waits in _ready was made with these settings (a change clears it)
            self._change = None
            return True

    def _fail(self, err: DaemonError) -> None:
        with self._cond:
            self._failure = err
            self._cond.notify_all()


class Controls:
    """Turns terminal keys and MIDI CCs into settings changes (each lands at the next bar)."""

    def __init__(self, source: LiveSource, quit: Callable[[], None]) -> None:
        self._source = source
        self._quit = quit

    def key(self, char: str) -> None:
        settings = self._source.settings
        density = DEFAULT_DENSITY if settings.density is None else settings.density
        if char in "qQ":
            self._quit()
        elif char in "[]":
            step = DENSITY_STEP if char == "]" else -DENSITY_STEP
            self._source.change(density=_clamp(round(density + step, 2), 0.0, 1.0))
        elif char in "-=+":
            step = -TEMPERATURE_STEP if char == "-" else TEMPERATURE_STEP
            self._source.change(temperature=_clamp(round(settings.temperature + step, 2), *TEMPERATURE_RANGE))
        elif char in ",.<>" and self._source.styles:
            styles = self._source.styles
            step = 1 if char in ".>" else -1
            at = styles.index(settings.style) if settings.style in styles else (-1 if step > 0 else 0)
            self._source.change(style=styles[(at + step) % len(styles)])

    def cc(self, msg: mido.Message) -> None:
        if msg.type != "control_change":
            return
        if msg.control == CC_DENSITY:
            self._source.change(density=round(msg.value / 127, 2))
        elif msg.control == CC_TEMPERATURE:
            lo, hi = CC_TEMPERATURE_RANGE
            self._source.change(temperature=round(lo + (hi - lo) * msg.value / 127, 2))
        elif msg.control == CC_STYLE and self._source.styles:
            styles = self._source.styles
            self._source.change(style=styles[min(len(styles) - 1, msg.value * len(styles) // 128)])


def _clamp(value: float, lo: float, hi: float) -> float:
    return min(hi, max(lo, value))


@contextmanager
def keyboard(on_key: Callable[[str], None], fd: int | None = None) -> Iterator[bool]:
    """Single key presses from the terminal (no Enter needed) on a background thread.

    Yields whether keys are read: not when the input is not a terminal (pipes, CI).
    """
    if os.name == "nt":
        with _windows_keys(on_key) as reading:
            yield reading
        return
    import termios
    import tty

    fd = sys.stdin.fileno() if fd is None else fd
    if not os.isatty(fd):
        yield False
        return
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)  # keeps Ctrl-C working
    stop = threading.Event()
    thread = threading.Thread(target=_read_keys, args=(fd, on_key, stop), name="drumigen-keys", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join()
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_keys(fd: int, on_key: Callable[[str], None], stop: threading.Event) -> None:
    import select

    while not stop.is_set():
        if select.select([fd], [], [], 0.1)[0]:
            data = os.read(fd, 64)
            if not data:
                return
            for char in data.decode(errors="ignore"):
                on_key(char)


@contextmanager
def _windows_keys(on_key: Callable[[str], None]) -> Iterator[bool]:
    import msvcrt

    stop = threading.Event()

    def poll() -> None:
        while not stop.wait(0.05):
            while msvcrt.kbhit():
                on_key(msvcrt.getwch())

    thread = threading.Thread(target=poll, name="drumigen-keys", daemon=True)
    thread.start()
    try:
        yield True
    finally:
        stop.set()
        thread.join()
