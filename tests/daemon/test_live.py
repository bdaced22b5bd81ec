"""Live mode's pieces: request fields, reply parsing, keys, CCs, the terminal; seeds and refusals against a daemon."""

from __future__ import annotations

import argparse
import os
import pty
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import mido
import pytest

from daemon.live import (CC_DENSITY, CC_STYLE, CC_TEMPERATURE, Controls, DaemonError, LiveSource, Settings,
                         keyboard, phrase_from_reply, request_fields)
from daemon.scheduler import Sequencer
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


def test_a_continued_phrase_starts_at_0_in_the_meter_of_the_one_it_follows():
    before = phrase_from_reply(Reply(1, True, {"bars": 1, "time_signature": [7, 8], "patterns": [
        {"seed": 1, "notes": [{"pitch": 36, "start": 0.0, "duration": 0.25, "velocity": 90}]}]}), 9, "x")
    data = {"patterns": [{"seed": 2, "notes": [{"pitch": 38, "start": 3.5, "duration": 0.25, "velocity": 80}]}]}
    after = phrase_from_reply(Reply(2, True, data), 9, "x", after=before)  # a continue reply: the new bars alone
    assert after.length == before.length == 3.5 and after.meter == (7, 8)
    assert [(n.pitch, n.start) for n in after.notes] == [(38, 0.0)]


@contextmanager
def a_daemon_that_answers_anything() -> Iterator[tuple[str, list[dict]]]:
    """A ROUTER standing in for the daemon: every request recorded and answered with 4 kicks at
    velocity 10 + its number, after the clip a `continue` hears; yields (endpoint, requests)."""
    import msgpack
    import zmq

    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    asked: list[dict] = []
    stop = threading.Event()

    def answer() -> None:
        while not stop.is_set():
            if not router.poll(50):
                continue
            identity, _, payload = router.recv_multipart()
            request = msgpack.unpackb(payload)
            asked.append(request)
            start = request.get("length", 0.0)  # a continue's notes come after the clip it heard
            reply = {"id": request["id"], "ok": True, "styles": ["funk", "rock"], "bars": 1,
                     "time_signature": [4, 4], "patterns": [{"seed": len(asked), "notes": [
                         {"pitch": 36, "start": start + k, "duration": 0.25, "velocity": 10 + len(asked)}
                         for k in range(4)]}]}
            router.send_multipart([identity, b"", msgpack.packb(reply)])

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}", asked
    finally:
        stop.set()
        thread.join(5)
        router.close(0)
        ctx.term()


def until(condition: Callable[[], bool]) -> None:
    for _ in range(200):  # ~10 s at most
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError("never came")


def test_each_phrase_after_the_first_continues_the_one_before_it():
    """Asked for afresh, phrases jumped in loudness and density at most joins (45 of 84 joins
    more than 12 apart in mean velocity): the daemon now hears the phrase each one follows."""
    with a_daemon_that_answers_anything() as (endpoint, asked):
        live = LiveSource(endpoint, Settings("funk", None, 1.0), bars=1, meter=(4, 4), channel=9,
                          tempo=lambda: 120.0, seed=5)
        try:
            live.start()
            phrases = [live.next_phrase()]
            for _ in range(2):
                until(lambda: live.next_phrase() is not phrases[-1])  # the next phrase has come
                phrases.append(live.again())
        finally:
            live.close()
    ops = [r["op"] for r in asked]
    assert ops[:3] == ["styles", "generate", "continue"] and set(ops[3:]) <= {"continue"}, ops
    for before, request in zip((phrases[0], phrases[1]), asked[2:4]):
        assert request["notes"] == [n.to_wire() for n in before.notes] and request["length"] == before.length
        assert request["loop"] is False and request["bars"] == 1
    assert all([n.start for n in p.notes] == [0.0, 1.0, 2.0, 3.0] for p in phrases)


def test_the_phrase_after_a_change_continues_the_changed_one():
    """The phrase asked for right after a change arrived continued the phrase from before the
    change, still playing: the join after the change jumped back."""
    with a_daemon_that_answers_anything() as (endpoint, asked):
        live = LiveSource(endpoint, Settings("funk", None, 1.0), bars=1, meter=(4, 4), channel=9,
                          tempo=lambda: 120.0, seed=5)
        try:
            live.start()
            live.next_phrase()
            until(lambda: len(asked) >= 3)  # the phrase after it, asked for
            live.change(style="rock")
            until(lambda: [r.get("style") for r in asked].count("rock") >= 2)  # the change's, and one after it
            changed = live.take_change()
            until(lambda: live.next_phrase() is not changed)
            following = live.again()
        finally:
            live.close()
    heard = asked[following.notes[0].velocity - 11]  # the request that made it
    assert heard["notes"] == [n.to_wire() for n in changed.notes]
    first_rock = next(r for r in asked if r.get("style") == "rock")  # the change itself: a groove of its own,
    assert first_rock["op"] == "generate" and "notes" not in first_rock  # not held to the funk before it


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


def test_a_masters_start_or_song_position_before_the_first_phrase_plays_the_first(daemon):
    """Following a clock, the transport jumps (Start, or Live's Song Position on relocating)
    before any phrase was played: the player seeks into the first one."""
    live = LiveSource(daemon.endpoint, Settings("funk", None, 1.0), bars=1, meter=(4, 4), channel=9,
                      tempo=lambda: 120.0, seed=3)
    live.start()
    try:
        seq = Sequencer(live)
        seq.seek(2.0)
        first = live.again()
        assert first.info["seed"] == 3 and seq.peek() is not None and seq.peek()[0] >= 2.0
        assert live.again() is first
    finally:
        live.close()
    for style, later in (("rock", "rock"), ("no-such-style", "funk")):  # a key pressed while the master waits
        changed = LiveSource(daemon.endpoint, Settings("funk", None, 1.0), bars=1, meter=(4, 4), channel=9,
                             tempo=lambda: 120.0, seed=3)
        changed.start()
        try:
            changed.change(style=style)
            Sequencer(changed).seek(0.0)
            assert "style funk" in changed.again().label  # at once: the first phrase, the change after it
            for _ in range(400):  # ~20 s at most
                spliced = changed.take_change()
                if spliced is not None:
                    break
                threading.Event().wait(0.05)
            assert spliced is not None and f"style {later}" in spliced.label  # a refused one: back to funk
            assert changed.next_phrase() is not None  # and the show goes on
        finally:
            changed.close()


def test_with_a_clock_bpm_is_the_tempo_until_the_clock_is_heard():
    """The first phrases are made before the clock is heard: at --bpm, not always at 120."""
    from daemon.play import add_play_parser

    parser = argparse.ArgumentParser(prog="drumigen")
    add_play_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["play", "--style", "funk", "--live", "--clock", "--bpm", "84"])
    assert args.clock and args.bpm == 84.0
