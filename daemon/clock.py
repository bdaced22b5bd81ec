"""Where beats fall in time: a fixed tempo, or the transport and tempo of incoming MIDI clock.

The player asks a timeline for the `time.perf_counter()` instant of each event's beat and waits
for that absolute deadline, so errors never accumulate: a late send does not delay the next one,
as a chain of relative sleeps would.

With MIDI clock (24 ticks a beat) the follower never runs ahead of the master by more than one
tick: an event between two ticks is placed by the tempo of the last few ticks, and an event on or
past the next tick waits for that tick. So tempo changes, Stop and jumps take effect within a tick.

The threads on the timing path (the player, the clock input) ask for SCHED_FIFO where the OS
allows it (Linux: root, CAP_SYS_NICE, or an rtprio limit as JACK users have): on a fully loaded
2-core machine that took the p99 send error from about 2 ms to under 0.1 ms
(benchmarks/bench_play_jitter.py).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import mido

from shared.protocol import TEMPO_RANGE

PPQN = 24  # MIDI clock ticks per quarter note
TICKS_PER_SPP_UNIT = 6  # Song Position Pointer counts 16th notes
TEMPO_WINDOW = 12  # ticks averaged for the tempo: half a beat smooths a JACK period's jitter
STALL_PERIODS = 4  # a gap between ticks this many tick periods long is a stall, not a slower tempo,
STALL_MIN_S = 0.25  # and at least this long: shorter hiccups (Wi-Fi MIDI, a busy poll) are averaged out
FASTEST_PERIOD_S, SLOWEST_PERIOD_S = (60.0 / (bpm * PPQN) for bpm in reversed(TEMPO_RANGE))
CLOCK_TIMEOUT_S = 1.0  # running, but no tick this long (20 BPM ticks every 125 ms): master gone
START_DELAY_S = 0.1  # a fixed-tempo start leaves time to open ports before the first note
RT_PRIORITY = 5  # SCHED_FIFO: above every normal task, below audio servers (JACK 10, PipeWire 88)

log = logging.getLogger("drumigen.play")


@dataclass(frozen=True)
class Position:
    """A snapshot of the transport for one round of the player's loop."""

    beat: float  # where the playhead is, in beats from the song start
    running: bool
    epoch: int  # bumped when the position jumps (Start, Song Position Pointer): re-seek
    origin: float  # the beat the jump went to, where to resume even if the player looks late
    changes: int  # bumped by every message: `wait` returns early once it moves


class Timeline(ABC):
    """A condition the player sleeps on, woken early when the transport changes or play stops."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._changes = 0

    def wait(self, timeout: float, seen: int) -> None:
        """Sleep up to `timeout` s unless something changed since the Position that saw `seen`."""
        with self._cond:
            self._cond.wait_for(lambda: self._changes != seen, timeout)

    def wake(self) -> None:
        with self._cond:
            self._changes += 1
            self._cond.notify_all()

    @abstractmethod
    def position(self, now: float) -> Position: ...

    @abstractmethod
    def time_of(self, beat: float) -> float | None:
        """The perf_counter() instant `beat` is due, or None while that is not known yet."""

    @abstractmethod
    def tempo(self) -> float: ...


class FixedTempo(Timeline):
    """Beat b is due at start + b * 60 / bpm: absolute deadlines from one fixed origin."""

    def __init__(self, bpm: float, start: float | None = None) -> None:
        super().__init__()
        self._bpm = bpm
        self._spb = 60.0 / bpm
        self._t0 = time.perf_counter() + START_DELAY_S if start is None else start

    def position(self, now: float) -> Position:
        return Position((now - self._t0) / self._spb, True, 0, 0.0, self._changes)

    def time_of(self, beat: float) -> float:
        return self._t0 + beat * self._spb

    def tempo(self) -> float:
        return self._bpm


class MidiClock(Timeline):
    """Follows MIDI clock, Start, Stop, Continue and Song Position Pointer from a master.

    `feed` runs on the MIDI input's thread; everything else on the player's.
    """

    def __init__(self, fallback_bpm: float = 120.0) -> None:
        super().__init__()
        self._period = 60.0 / (fallback_bpm * PPQN)  # seconds a tick, until ticks tell
        self._times: deque[float] = deque(maxlen=TEMPO_WINDOW + 1)
        self._running = False
        self._next_tick = 0  # the position the next clock will carry
        self._tick: int | None = None  # position of the last clock while running
        self._epoch = 0
        self._origin = 0

    def feed(self, msg: mido.Message, now: float) -> bool:
        """Take one message received at `now`; False if it is not a transport message."""
        kind = msg.type
        with self._cond:
            if kind == "clock":
                if len(self._times) > 1 and now - self._times[-1] > max(STALL_PERIODS * self._period, STALL_MIN_S):
                    self._times.clear()  # ticks that paused without a Stop: the pause is no tick period
                self._times.append(now)
                if len(self._times) > 1:  # within the tempos a groove is made at: queued ticks may arrive at once
                    period = (self._times[-1] - self._times[0]) / (len(self._times) - 1)
                    self._period = min(max(period, FASTEST_PERIOD_S), SLOWEST_PERIOD_S)
                if self._running:
                    self._tick = self._next_tick
                    self._next_tick += 1
            elif kind == "start":
                self._running, self._next_tick, self._tick = True, 0, None
                self._epoch, self._origin = self._epoch + 1, 0
                self._times.clear()  # a master that paused its clock would skew the tempo
            elif kind == "continue":
                self._running, self._tick = True, None
                self._times.clear()
            elif kind == "stop":
                self._running, self._tick = False, None
            elif kind == "songpos":
                if self._running:  # the spec allows it only while stopped
                    return True
                self._next_tick = msg.pos * TICKS_PER_SPP_UNIT
                self._epoch, self._origin = self._epoch + 1, self._next_tick
            else:
                return False
            self._changes += 1
            self._cond.notify_all()
        return True

    def position(self, now: float) -> Position:
        with self._cond:
            tick, running = self._tick, self._running
            if tick is None:
                beat = self._next_tick / PPQN
            else:
                since = now - self._times[-1]
                running = running and since < CLOCK_TIMEOUT_S
                beat = (tick + min(1.0, since / self._period)) / PPQN
            return Position(beat, running, self._epoch, self._origin / PPQN, self._changes)

    def time_of(self, beat: float) -> float | None:
        with self._cond:
            if not self._running or self._tick is None:
                return None
            ahead = beat * PPQN - self._tick
            if ahead >= 1.0:
                return None  # due at or after the next tick: wait for it
            return self._times[-1] + ahead * self._period

    def tempo(self) -> float:
        with self._cond:
            return 60.0 / (self._period * PPQN)


@contextmanager
def realtime_priority(wanted: bool = True) -> Iterator[bool]:
    """Run the calling thread under SCHED_FIFO meanwhile, where allowed; yields whether it does."""
    if not (wanted and hasattr(os, "sched_setscheduler")):
        yield False
        return
    policy, param = os.sched_getscheduler(0), os.sched_getparam(0)
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(RT_PRIORITY))  # 0: this thread
    except OSError as err:
        log.debug("no real-time priority: %s", err.strerror)
        yield False
        return
    try:
        yield True
    finally:
        os.sched_setscheduler(0, policy, param)
