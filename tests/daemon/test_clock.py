"""Timelines: fixed tempo deadlines, and following MIDI clock fed with known arrival times."""

from __future__ import annotations

import threading
import time

import mido
import pytest

from daemon.clock import PPQN, FixedTempo, MidiClock

CLOCK = mido.Message("clock")


def ticks(clock: MidiClock, start: float, period: float, count: int) -> float:
    """Feed `count` clocks `period` apart from `start`; returns the last one's time."""
    for i in range(count):
        clock.feed(CLOCK, start + i * period)
    return start + (count - 1) * period


def test_fixed_tempo_deadlines_are_absolute():
    timeline = FixedTempo(180.0, start=100.0)
    assert timeline.time_of(0.0) == 100.0
    assert timeline.time_of(1000.0) == pytest.approx(100.0 + 1000 / 3)  # no accumulated error
    assert timeline.position(101.0).beat == pytest.approx(3.0)
    assert timeline.position(101.0).running


def test_clock_waits_for_start_then_places_events_between_ticks():
    clock = MidiClock(120.0)
    period = 60 / (100 * PPQN)  # 100 BPM
    assert clock.time_of(0.0) is None and not clock.position(0.0).running
    clock.feed(mido.Message("start"), 9.0)
    assert clock.position(9.0).running and clock.time_of(0.0) is None  # due with the first clock
    last = ticks(clock, 10.0, period, 7)  # ticks 0..6
    assert clock.tempo() == pytest.approx(100.0)
    assert clock.time_of(0.25) == pytest.approx(last)  # tick 6: already due
    assert clock.time_of(6.5 / PPQN) == pytest.approx(last + period / 2)  # between ticks: interpolated
    assert clock.time_of(7.0 / PPQN) is None  # on the next tick: wait for it
    assert clock.position(last + period / 4).beat == pytest.approx(6.25 / PPQN)


def test_clock_follows_a_tempo_change_within_the_window():
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    slow, fast = 60 / (120 * PPQN), 60 / (150 * PPQN)
    last = ticks(clock, 0.0, slow, 48)
    last = ticks(clock, last + fast, fast, 24)
    assert clock.tempo() == pytest.approx(150.0)
    assert clock.position(last).beat == pytest.approx(71 / PPQN)
    assert clock.time_of(71.5 / PPQN) == pytest.approx(last + fast / 2)


def test_stop_song_position_continue():
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    ticks(clock, 0.0, 0.02, 30)
    clock.feed(mido.Message("stop"), 0.7)
    stopped = clock.position(0.7)
    assert not stopped.running and clock.time_of(2.0) is None
    ticks(clock, 0.8, 0.02, 5)  # a master may keep clocking while stopped: position holds
    clock.feed(mido.Message("songpos", pos=32), 1.0)  # 32 sixteenths = beat 8
    jumped = clock.position(1.0)
    assert jumped.epoch == stopped.epoch + 1 and jumped.beat == jumped.origin == 8.0
    clock.feed(mido.Message("continue"), 1.1)
    clock.feed(CLOCK, 1.2)
    assert clock.time_of(8.0) == pytest.approx(1.2)  # the first clock after Continue is at the pointer
    clock.feed(mido.Message("songpos", pos=0), 1.3)  # ignored while running
    assert clock.position(1.3).epoch == jumped.epoch


def test_silent_master_counts_as_stopped():
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    ticks(clock, 0.0, 0.02, 3)
    assert clock.position(0.5).running
    assert not clock.position(2.0).running


@pytest.mark.parametrize("pause", [0.5, 1.5])  # a stall, and a master gone quiet (CLOCK_TIMEOUT_S)
def test_ticks_resuming_after_a_pause_without_stop_keep_their_own_tempo(pause):
    """The pause is no tick period: counted in, 174 BPM read as 18 BPM for a window of ticks,
    and a note between two ticks fell 110 ms in the past and was dropped."""
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    period = 60 / (174 * PPQN)
    last = ticks(clock, 0.0, period, 8 * PPQN)
    assert clock.position(last + pause).running == (pause < 1.0)
    last = ticks(clock, last + pause, period, 3)
    assert clock.tempo() == pytest.approx(174.0)
    tick = 8 * PPQN + 2
    assert clock.time_of((tick + 0.5) / PPQN) == pytest.approx(last + period / 2)


def test_ticks_queued_behind_a_hiccup_and_arriving_at_once_keep_the_tempo_sane():
    """Networked MIDI delivers what a 100 ms hiccup held back in one burst: the window restarted
    on the burst read 125,000 BPM, and a player filling ahead by tempo queued minutes of phrases."""
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    period = 60 / (120 * PPQN)
    last = ticks(clock, 0.0, period, 2 * PPQN)
    last = ticks(clock, last + 0.1, 20e-6, 5)
    assert 20.0 <= clock.tempo() <= 400.0
    ticks(clock, last + period, period, 24)
    assert clock.tempo() == pytest.approx(120.0)


def test_wait_returns_early_on_a_message():
    clock = MidiClock()
    seen = clock.position(0.0).changes
    threading.Timer(0.05, clock.feed, (mido.Message("start"), 0.0)).start()
    begin = time.monotonic()
    clock.wait(5.0, seen)
    assert time.monotonic() - begin < 2.0
    clock.wait(0.0, clock.position(0.0).changes)  # nothing new: just the timeout
