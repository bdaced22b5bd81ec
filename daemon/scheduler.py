"""The real-time part: phrases become timed MIDI events, sent at absolute deadlines.

Timing: the player sleeps until `spin` seconds before an event's deadline, then busy-waits to it.
Sleeping alone wakes late; spinning alone burns a core. It runs under SCHED_FIFO where allowed
(daemon.clock.realtime_priority). Numbers: benchmarks/bench_play_jitter.py.

Note pairs: every note-on gets its note-off, and a note-off is sent only for a note that sounds,
whatever splicing, seeking or overlapping same-pitch notes do to the queue; a pitch struck again
while it sounds is released first. Stopping for any reason releases what sounds and sends
All Notes Off (CC 123).
"""

from __future__ import annotations

import gc
import heapq
import itertools
import logging
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import mido

from daemon import kit
from daemon.clock import Position, Timeline, realtime_priority
from daemon.ports import PortLost, PortWatch
from shared.notes import Note, across_the_line, bar_beats, cut_short

GM_DRUM = kit.drum_of({})  # the drum a GM pitch strikes, in whichever zone
SPIN_S = 0.001  # busy-wait this long before each deadline (see the module docstring)
MAX_WAIT_S = 0.05  # longest sleep between looks at stop requests, changes and ports
HOUSEKEEPING_S = 0.005  # slack needed before queueing phrases, splicing or checking ports
FILL_AHEAD_S = 0.25  # queue the next phrase this long before it plays: live mode's worker
                     # gets the rest of the time to make the one after
SPLICE_MARGIN_S = 0.02  # a change lands on the first bar line at least this far ahead
MAX_LATE_S = 0.05  # a note-on due longer ago than this is dropped: after a stall (suspend, SIGSTOP,
                   # a VM paused) the missed notes are not fired all at once; its note-off goes too
PORT_CHECK_S = 0.5  # how often named ports are checked for disappearance
SWITCH_INTERVAL_S = 0.0002  # GIL hand-over while playing: other threads must not delay a send
ALL_NOTES_OFF = 123
OFF, ON = 0, 1  # at one instant note-offs go first, so a re-struck pitch is not cut short

log = logging.getLogger("drumigen.play")


@dataclass(frozen=True)
class Phrase:
    """Notes to play as one unit, with their events (beat, OFF/ON, note index, message)."""

    notes: tuple[Note, ...]
    length: float  # beats
    meter: tuple[int, int]
    label: str  # for people: where it came from
    events: tuple[tuple[float, int, int, mido.Message], ...]
    info: dict = field(default_factory=dict)  # seed and tempo of a generated phrase
    generated: bool = False  # the model's: what plays before it loses its early one (Sequencer._place)

    @classmethod
    def build(cls, notes: list[Note], length: float, meter: tuple[int, int], label: str,
              channel: int, info: dict | None = None, generated: bool = False) -> Phrase:
        return cls(tuple(notes), length, meter, label, note_events(notes, channel), info or {}, generated)

    @property
    def bar(self) -> float:
        return bar_beats(self.meter)


def note_events(notes: list[Note], channel: int) -> tuple[tuple[float, int, int, mido.Message], ...]:
    """On and off events; a note ends no later than the next hit of its pitch, and one of two
    hits on the same pitch and start (the louder) is kept."""
    louder: dict[tuple[int, float], Note] = {}
    for note in sorted(notes, key=lambda n: (n.start, -n.velocity)):
        louder.setdefault((note.pitch, note.start), note)
    events = []
    for note in cut_short(sorted(louder.values(), key=lambda n: (n.start, n.pitch))):
        index = len(events) // 2
        events.append((note.start, ON, index,
                       mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)))
        events.append((note.start + note.duration, OFF, index,
                       mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1], e[2]))
    return tuple(events)


class PhraseSource(Protocol):
    """Where phrases come from: a file, one generated phrase, or the daemon in live mode."""

    def next_phrase(self) -> Phrase | None:
        """The phrase that follows; None when playback ends."""

    def again(self) -> Phrase:
        """The phrase playing now, to resume inside after the transport jumped."""

    def take_change(self) -> Phrase | None:
        """A phrase made with changed settings, to splice in at the next bar."""


class FixedSource:
    """One phrase, played once or looped."""

    def __init__(self, phrase: Phrase, loop: bool) -> None:
        self._phrase, self._loop, self._played = phrase, loop, False

    def next_phrase(self) -> Phrase | None:
        if self._played and not self._loop:
            return None
        self._played = True
        return self._phrase

    def again(self) -> Phrase:
        self._played = True
        return self._phrase

    def take_change(self) -> None:
        return None


# A queued event: (beat, OFF/ON, tie-breaker, note key, message); the key pairs on with off.
Entry = tuple[float, int, int, tuple[int, int], mido.Message]


class Sequencer:
    """The events still to play, on the song's beat axis, fed phrase by phrase."""

    def __init__(self, source: PhraseSource, on_place: Callable[[float, Phrase], None] | None = None) -> None:
        self.source = source
        self.until = 0.0  # beat where the next phrase goes
        self.ended = False  # the source has no more phrases
        self._on_place = on_place  # told (start beat, phrase) for each phrase queued
        self._heap: list[Entry] = []
        self._ties = itertools.count()
        self._serials = itertools.count()

    def fill(self, upto: float) -> bool:
        """Queue phrases until they reach past `upto`; True if any was queued."""
        added = False
        while not self.ended and self.until <= upto:
            phrase = self.source.next_phrase()
            if phrase is None:
                self.ended = True
            else:
                self._place(phrase, self.until)
                added = True
        return added

    def seek(self, beat: float) -> None:
        """Start over at `beat`, inside the phrase playing now, aligned to its length."""
        self._heap.clear()
        phrase = self.source.again()
        self.ended = False
        start = math.floor(beat / phrase.length + 1e-9) * phrase.length
        self._place(phrase, start, skip_before=beat)

    def splice(self, phrase: Phrase, at: float) -> None:
        """Replace what would play from `at` on (notes already struck still end) with `phrase`."""
        dropped = {e[3] for e in self._heap if e[1] == ON and e[0] >= at}
        self._heap = [e for e in self._heap if e[3] not in dropped]
        heapq.heapify(self._heap)
        self._place(phrase, at)

    def _without_early_ones(self, phrase: Phrase, start: float) -> None:
        """A generated phrase's one is played once. The model ends a phrase with the next one's
        kick or hats played early (GMD writes them so), and the phrase after it, a request of its
        own, has its one on time: what is queued in the last ACROSS_THE_LINE beat before `start`
        of a drum `phrase` plays as close after it goes, in any zone (shared.notes.without_doubled_ones,
        across phrases: 1-2 of 15 phrase changes in live mode flammed). Live mode plays GM pitches."""
        across, drum = across_the_line(phrase.meter), GM_DRUM
        ones = {drum(msg.note) for beat, kind, _, msg in phrase.events if kind == ON and beat < across}
        early = {e[3] for e in self._heap if e[1] == ON and start - across < e[0] < start and drum(e[4].note) in ones}
        if early:
            self._heap = [e for e in self._heap if e[3] not in early]
            heapq.heapify(self._heap)

    def peek(self) -> Entry | None:
        return self._heap[0] if self._heap else None

    def pop(self) -> Entry:
        return heapq.heappop(self._heap)

    def _place(self, phrase: Phrase, start: float, skip_before: float = -math.inf) -> None:
        if phrase.generated:
            self._without_early_ones(phrase, start)
        serial = next(self._serials)
        skipped = {i for beat, kind, i, _ in phrase.events if kind == ON and start + beat < skip_before}
        for beat, kind, i, msg in phrase.events:
            if i not in skipped:
                heapq.heappush(self._heap, (start + beat, kind, next(self._ties), (serial, i), msg))
        self.until = start + phrase.length
        if self._on_place is not None:
            self._on_place(start, phrase)


class Player:
    """Sends a source's phrases to an output port in time with a timeline, until stopped."""

    def __init__(self, output: mido.ports.BaseOutput, source: PhraseSource, timeline: Timeline, *,
                 channel: int, watch: PortWatch | None = None, spin: float = SPIN_S,
                 realtime: bool = True, record: bool = False,
                 on_phrase: Callable[[float, Phrase], None] | None = None) -> None:
        self.seq = Sequencer(source, on_phrase)
        self.timing: list[tuple[float, float]] | None = [] if record else None  # (deadline, sent)
        self._out = output
        self._timeline = timeline
        self._watch = watch
        self._spin = spin
        self._realtime = realtime
        self.realtime_granted = False  # whether the last run got SCHED_FIFO
        self._stop = threading.Event()
        self._held: dict[int, tuple[int, int]] = {}  # sounding pitch -> its note key
        self._offs = [mido.Message("note_off", channel=channel, note=p, velocity=0) for p in range(128)]
        self._all_off = mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF, value=0)
        self._epoch = 0
        self._rolling = False  # sent something since the last silence
        self._next_port_check = 0.0

    def stop(self) -> None:
        """Ask `run` to return (from any thread); it silences the port on the way out."""
        self._stop.set()
        self._timeline.wake()

    def run(self) -> None:
        """Play until the source ends or `stop`; raises PortLost. Always leaves no note sounding."""
        switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        gc.freeze()  # what exists now is never garbage: later collections stay short
        try:
            with realtime_priority(self._realtime) as self.realtime_granted:
                if self._realtime and not self.realtime_granted:
                    log.info("no real-time priority: timing may slip under CPU load; allow it with an "
                             "rtprio limit (e.g. the audio group JACK uses)")
                self._loop()
        except OSError as err:  # rtmidi's errors: the port or the MIDI system went away
            raise PortLost(f"sending MIDI failed: {err}") from err
        finally:
            gc.unfreeze()
            sys.setswitchinterval(switch)
            self._silence_safely()

    def _loop(self) -> None:
        timeline, seq = self._timeline, self.seq
        while not self._stop.is_set():
            pos = timeline.position(time.perf_counter())
            if pos.epoch != self._epoch:
                self._epoch = pos.epoch
                self.silence()
                seq.seek(pos.origin)
            if not pos.running:
                if self._rolling:
                    self.silence()
                self._housekeeping(pos, fill=False)
                timeline.wait(MAX_WAIT_S, pos.changes)
                continue
            entry = seq.peek()
            if entry is None and seq.ended:
                return
            deadline = timeline.time_of(entry[0]) if entry is not None else None
            slack = math.inf if deadline is None else deadline - time.perf_counter()
            if slack > self._spin + HOUSEKEEPING_S and self._housekeeping(pos, fill=True):
                continue  # the queue changed: look again
            if slack > self._spin:
                timeline.wait(min(slack - self._spin, MAX_WAIT_S), pos.changes)
                continue
            while time.perf_counter() < deadline:
                pass
            self._send(seq.pop(), deadline)

    def _housekeeping(self, pos: Position, fill: bool) -> bool:
        """Work done only when there is slack; True if the event queue changed."""
        now = time.perf_counter()
        if self._watch is not None and now >= self._next_port_check:
            self._next_port_check = now + PORT_CHECK_S
            gone = self._watch.lost()
            if gone is not None:
                raise PortLost(f"{gone} disappeared")
        if not fill:
            return False
        changed = False
        change = self.seq.source.take_change()
        if change is not None:
            margin = SPLICE_MARGIN_S * self._timeline.tempo() / 60.0
            next_bar = math.floor((pos.beat + margin) / change.bar + 1) * change.bar
            self.seq.splice(change, min(next_bar, self.seq.until))  # until: a bar line too
            changed = True
        return self.seq.fill(pos.beat + FILL_AHEAD_S * self._timeline.tempo() / 60.0) or changed

    def _send(self, entry: Entry, deadline: float) -> None:
        _, kind, _, key, msg = entry
        pitch = msg.note
        if kind == ON and time.perf_counter() - deadline > MAX_LATE_S:
            return  # missed, not held: its note-off finds nothing sounding and is skipped too
        # A note counts as held from before its note-on until after its note-off is sent: a Ctrl-C
        # between the two then costs a spare note-off, never a note left sounding.
        if kind == ON:
            if pitch in self._held:
                self._out.send(self._offs[pitch])
            self._held[pitch] = key
            self._out.send(msg)
        elif self._held.get(pitch) == key:
            self._out.send(msg)
            del self._held[pitch]
        else:
            return  # its note was re-struck or silenced already
        self._rolling = True
        if self.timing is not None:
            self.timing.append((deadline, time.perf_counter()))

    def silence(self) -> None:
        """Release every sounding note, then All Notes Off for receivers that missed one."""
        for pitch in list(self._held):
            self._out.send(self._offs[pitch])
        self._held.clear()
        if self._rolling:
            self._out.send(self._all_off)
        self._rolling = False

    def _silence_safely(self) -> None:
        try:
            self.silence()
        except OSError as err:  # the port may be what failed
            log.warning("could not send All Notes Off: %s", err)

