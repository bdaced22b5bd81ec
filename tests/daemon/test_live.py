"""Live mode's pieces: request fields, reply parsing, keys, CCs, the terminal; seeds and refusals against a daemon."""

from __future__ import annotations

import argparse
import os
import pty
import threading

import mido
import pytest

from daemon.live import (CC_DENSITY, CC_STYLE, CC_TEMPERATURE, Controls, DaemonError, LiveSource, Settings,
                         keyboard, phrase_from_reply, request_fields)
from shared.client import Reply


def source(settings: Settings = Settings("funk", None, 1.0)) -> LiveSource:
    """A LiveSource never started: changes only update its settings."""
    live = LiveSource("tcp://127.0.0.1:9", settings, bars=2, meter=(4, 4), channel=9, tempo=lambda: 120.0)
    live.styles = ["funk", "jazz", "rock"]
    return live


def test_request_fields_leave_out_what_is_unset_and_clamp_tempo():
    assert request_fields(Settings(None, None, 0.8), 4, (3, 4), 500.0, None) == {
        "bars": 4, "tempo": 400.0, "time_signature": [3, 4], "temperature": 0.8}
    assert request_fields(Settings("funk", 0.5, 1.0), 1, (4, 4), 96.123, 7)["seed"] == 7
    assert request_fields(Settings(None, None, 1.0), 1, (4, 4), 120.0, None, loop=False)["loop"] is False  # live mode


def test_phrase_from_reply():
    data = {"ok": True, "bars": 2, "time_signature": [6, 8], "tempo": 100.0,
            "patterns": [{"seed": 3, "notes": [{"pitch": 36, "start": 0.5, "duration": 0.25, "velocity": 90}]}]}
    phrase = phrase_from_reply(Reply(1, True, data), 9, "x")
    assert phrase.length == 6.0 and phrase.bar == 3.0 and phrase.info["seed"] == 3
    assert [(beat, msg.type) for beat, _, _, msg in phrase.events] == [(0.5, "note_on"), (0.75, "note_off")]
    with pytest.raises(DaemonError) as refused:
        phrase_from_reply(Reply(2, False, {}, "unknown_style", "no such style"), 9, "x")
    assert refused.value.code == "unknown_style"
    with pytest.raises(DaemonError):
        phrase_from_reply(Reply(3, True, {"patterns": []}), 9, "x")


def test_keys_step_settings_and_quit():
    live, quits = source(), []
    controls = Controls(live, quit=lambda: quits.append(True))
    for key in "]]-..,":
        controls.key(key)
    assert live.settings == Settings("jazz", 0.7, 0.9)  # density starts from 0.5 when unset
    controls.key("x")  # not a control
    controls.key("q")
    assert quits == [True]
    for _ in range(40):
        controls.key("[")
    assert live.settings.density == 0.0


def test_ccs_map_their_range():
    live = source()
    controls = Controls(live, quit=lambda: None)
    controls.cc(mido.Message("control_change", control=CC_DENSITY, value=127))
    controls.cc(mido.Message("control_change", control=CC_TEMPERATURE, value=0))
    controls.cc(mido.Message("control_change", control=CC_STYLE, value=64))
    controls.cc(mido.Message("note_on", note=CC_DENSITY))  # not a CC: ignored
    assert live.settings == Settings("jazz", 1.0, 0.1)
    assert not live.change(density=1.0)  # the same value is no change


def test_keyboard_reads_single_keys_from_a_terminal():
    main, terminal = pty.openpty()
    got: list[str] = []
    arrived = threading.Event()

    def on_key(char: str) -> None:
        got.append(char)
        if len(got) == 2:
            arrived.set()

    try:
        with keyboard(on_key, fd=terminal) as reading:
            assert reading
            os.write(main, b"]q")  # no Enter: cbreak mode hands keys over one by one
            assert arrived.wait(5)
    finally:
        os.close(main)
        os.close(terminal)
    assert got == ["]", "q"]


def test_keyboard_is_off_without_a_terminal():
    read_end, write_end = os.pipe()
    try:
        with keyboard(lambda char: None, fd=read_end) as reading:
            assert not reading
    finally:
        os.close(read_end)
        os.close(write_end)


def test_seeds_count_up_by_the_phrases_played_and_wrap(daemon):
    """From the top of the seed range on to 0 (the request after 2**31 - 1 was refused forever),
    and only a phrase taken moves the seed on, so `--seed S` replays the same phrases."""
    live = LiveSource(daemon.endpoint, Settings("funk", None, 1.0), bars=1, meter=(4, 4), channel=9,
                      tempo=lambda: 120.0, seed=2**31 - 1)
    live.start()
    try:
        seeds = [live.next_phrase().info["seed"]]
        for _ in range(400):  # ~20 s at most: a phrase takes well under a second
            phrase = live.next_phrase()
            if phrase.info["seed"] != seeds[-1]:
                seeds.append(phrase.info["seed"])
            if len(seeds) == 3:
                break
            threading.Event().wait(0.05)
    finally:
        live.close()
    assert seeds == [2**31 - 1, 0, 1]


def test_a_refused_change_goes_back_to_what_worked_and_the_show_goes_on(daemon):
    """A style a stale list offered is refused for good: retrying it each second would only
    repeat the refusal; the next phrases are made as before the change."""
    live = LiveSource(daemon.endpoint, Settings("funk", None, 1.0), bars=1, meter=(4, 4), channel=9,
                      tempo=lambda: 120.0, seed=1)
    live.start()
    try:
        first = live.next_phrase()
        live.change(style="no-such-style")
        for _ in range(200):  # ~10 s at most
            if live.settings.style == "funk":
                break
            threading.Event().wait(0.05)
        assert live.settings.style == "funk"
        for _ in range(200):
            if live.next_phrase() is not first:
                break
            threading.Event().wait(0.05)
        assert live.next_phrase() is not first  # new phrases come, in funk
    finally:
        live.close()


def test_with_a_clock_bpm_is_the_tempo_until_the_clock_is_heard():
    """The first phrases are made before the clock is heard: at --bpm, not always at 120."""
    from daemon.play import add_play_parser

    parser = argparse.ArgumentParser(prog="drumigen")
    add_play_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["play", "--style", "funk", "--live", "--clock", "--bpm", "84"])
    assert args.clock and args.bpm == 84.0
