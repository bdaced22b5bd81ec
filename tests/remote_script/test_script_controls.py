"""The script as a control surface: MIDI map, buttons, LEDs, step actions, robustness, tick cost."""

from __future__ import annotations

import ast
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import Live
import pytest
from shipped import controls
from live_host import LiveHost
from stub_client import StubClient

import remote_script
from remote_script.actions import ACTIONS
from remote_script.params import FALLBACK_STYLES, Params
from tests.support import free_port

GENERIC = controls("generic")
PUSH = controls("push")
ONE_KICK = {"seed": 1, "notes": [{"pitch": 36, "start": 0.0, "duration": 0.25, "velocity": 90}]}
GENERIC_CCS = [102 + i for i in range(18)] + [85, 86, 87]  # in the mapping's order


def press(host: LiveHost, action: str, mapping: dict = GENERIC) -> None:
    assert host.press(mapping[action]), f"{action} is not forwarded by the MIDI map"


def test_every_action_has_a_handler_and_a_button_in_each_shipped_mapping(host: LiveHost) -> None:
    assert set(host.script._controller.handlers) == set(ACTIONS)
    assert set(GENERIC) == set(ACTIONS) == set(PUSH)


def test_the_midi_map_forwards_exactly_the_mapped_buttons(host: LiveHost) -> None:
    assert host.forwards == {("cc", 15, number) for number in GENERIC_CCS}
    assert not host.midi_in((0xBF, 1, 127))  # the mod wheel stays Live's
    assert not host.midi_in((0xB0, 102, 127))  # the right CC on another channel too


def test_a_map_mode_is_suggested_only_for_the_mapped_buttons(host: LiveHost) -> None:
    """Live asks when the user maps a CC of this port: a CC the script does not own may be a
    relative encoder, so it gets no suggestion (-1), as in Ableton's own framework."""
    number = next(iter(GENERIC_CCS))
    assert host.script.suggest_map_mode(number, 15) == Live.MidiMap.MapMode.absolute
    assert host.script.suggest_map_mode(number, 0) == -1  # the same CC on another channel
    assert host.script.suggest_map_mode(1, 15) == -1  # the mod wheel


def test_releases_and_other_messages_do_nothing(host: LiveHost, stub: StubClient) -> None:
    host.select(host.slot(0))
    sent = len(stub.sent)
    host.script.receive_midi((0xBF, 102, 0))  # a release
    host.script.receive_midi((0xDF, 40))  # channel pressure
    assert len(stub.sent) == sent


def test_leds_are_lit_at_start_busy_while_waiting_and_off_at_the_end(host: LiveHost, stub: StubClient) -> None:
    assert host.c_instance.midi_out[: len(GENERIC_CCS)] == [(0xBF, number, 127) for number in GENERIC_CCS]
    host.select(host.slot(0))
    press(host, "generate")
    assert host.c_instance.midi_out[-1] == (0xBF, 102, 0)  # generic "busy": dark
    stub.answer(stub.last("generate"), patterns=[ONE_KICK])
    host.tick()
    assert host.c_instance.midi_out[-1] == (0xBF, 102, 127)
    host.script.disconnect()
    assert host.c_instance.midi_out[-len(GENERIC_CCS) :] == [(0xBF, number, 0) for number in GENERIC_CCS]
    assert stub.closed


def test_push_pads_answer_on_any_channel_and_pulse_while_busy(configured) -> None:
    stub = StubClient()
    host = configured(stub, mapping="push")
    assert ("note", 9, 36) in host.forwards and ("cc", 0, 55) in host.forwards
    assert (0x90, 36, 126) in host.c_instance.midi_out  # generate pad lit green
    host.select(host.slot(0))
    assert host.midi_in((0x95, 36, 80))  # Push 3 MPE: a pad on its own channel
    assert stub.last("generate").fields["bars"] == 4
    assert host.c_instance.midi_out[-1] == (0x99, 36, 127)  # channel 9: Push pulses the pad
    press(host, "bars_up", PUSH)
    assert host.c_instance.status == "MidiDrumiGen: 8 bars — press generate"
    assert host.midi_in((0x93, 44, 80))  # the pad above generate
    assert host.c_instance.status == "MidiDrumiGen: complexity 40%"


def test_step_actions_change_the_next_request(host: LiveHost, stub: StubClient) -> None:
    said = []
    for action in ("next_style", "previous_style", "previous_style", "bars_up", "bars_up", "bars_up",
                   "temperature_up", "density_down", "density_down", "complexity_up", "style_mix"):  # fmt: skip
        press(host, action)
        said.append(host.c_instance.status.removeprefix("MidiDrumiGen: "))
    assert said == [
        "style hiphop (3 of 18)", "style funk (2 of 18)", "style rock (1 of 18)",
        "8 bars — press generate", "16 bars — press generate", "16 bars — press generate",
        "temperature 1.10 (wilder)", "density 40%", "density 30%", "complexity 60%", "mixing rock with 30% funk",
    ]  # fmt: skip
    host.select(host.slot(0))
    press(host, "generate")
    fields = stub.last("generate").fields
    assert fields["style"] == {"rock": 0.7, "funk": 0.3}
    assert (fields["bars"], fields["temperature"], fields["density"], fields["complexity"]) == (16, 1.1, 0.3, 0.6)
    for _ in range(17):  # through every other style, then off
        press(host, "style_mix")
    assert host.c_instance.status == "MidiDrumiGen: style mix off — pure rock"


def test_focus_steps_through_1_2_4_and_asks_for_fewer_variations_to_fit(host: LiveHost, stub: StubClient) -> None:
    host.select(host.slot(0))
    sent = []
    for _ in range(4):
        press(host, "focus")
        press(host, "generate")
        fields = stub.last("generate").fields
        sent.append((fields["focus"], fields["variations"]))
    assert sent == [(2, 8), (4, 4), (1, 8), (2, 8)]  # 16 takes at most, the daemon's limit
    assert host.c_instance.status.startswith("MidiDrumiGen: generating")
    press(host, "focus")
    assert host.c_instance.status == "MidiDrumiGen: focus 4: the most typical of 4 takes, 4 variations"


def test_guidance_toggles_between_off_and_1_5_and_reaches_every_request(host: LiveHost, stub: StubClient) -> None:
    host.select(host.slot(0))
    press(host, "guidance")
    assert host.c_instance.status.startswith("MidiDrumiGen: guidance 1.5: follows the style harder")
    press(host, "generate")
    assert stub.last("generate").fields["guidance"] == 1.5
    press(host, "guidance")
    assert host.c_instance.status == "MidiDrumiGen: guidance off"
    press(host, "generate")
    assert stub.last("generate").fields["guidance"] == 1.0


def test_strength_steps_through_1_2_3_then_each_styles_own_and_reaches_every_request(
    host: LiveHost, stub: StubClient
) -> None:
    host.select(host.slot(0))
    press(host, "generate")
    assert "strength" not in stub.last("generate").fields  # the daemon plays each style at its own
    said, sent = [], []
    for _ in range(4):
        press(host, "strength")
        said.append(host.c_instance.status.removeprefix("MidiDrumiGen: "))
        press(host, "generate")
        sent.append(stub.last("generate").fields.get("strength"))
    assert sent == [1.0, 2.0, 3.0, None]
    assert said == ["strength 1: the style as learned, softer than a genre's 1.5", "strength 2: leaning into the style",
                    "strength 3: a caricature", "strength: each style's own (1.5 for a genre)"]  # fmt: skip
    press(host, "strength")
    host.slot(1).create_clip(4.0)
    host.select(host.slot(1))
    press(host, "fill")  # clip ops carry it too
    assert stub.last("fill").fields["strength"] == 1.0


def test_bars_and_temperature_stay_in_the_protocol_ranges(host: LiveHost) -> None:
    for _ in range(6):
        press(host, "bars_down")
    assert host.c_instance.status == "MidiDrumiGen: 1 bar — press generate"
    for _ in range(40):  # the button stops where grooves still hold together (docs/model.md, "Temperature")
        press(host, "temperature_down")
    assert host.c_instance.status == "MidiDrumiGen: temperature 0.50 (tighter) — as far as the button goes"
    for _ in range(5):
        press(host, "temperature_up")
    assert host.c_instance.status == "MidiDrumiGen: temperature 1.00 (balanced)"


def test_a_settings_temperature_below_the_buttons_floor_steps_onto_the_grid_never_up() -> None:
    params = Params(FALLBACK_STYLES, "funk", 4, 0.05, None)
    assert params.step_temperature(-1) == 0.05  # down from the settings' start: no jump up to the floor
    assert [params.step_temperature(+1) for _ in range(3)] == [0.1, 0.2, 0.3]  # the floor, 0.05, is off the grid


def test_density_and_complexity_step_back_to_the_models_choice_past_either_end(host: LiveHost) -> None:
    said = []
    for _ in range(7):
        press(host, "density_up")
        said.append(host.c_instance.status.removeprefix("MidiDrumiGen: "))
    assert said == ["density 60%", "density 70%", "density 80%", "density 90%", "density 100%",
                    "density: the model chooses", "density 60%"]
    for _ in range(6):  # 40 % ... 0 %, then the model's choice
        press(host, "complexity_down")
    assert host.c_instance.status == "MidiDrumiGen: complexity: the model chooses"
    assert "density" in host.script._controller._shape() and "complexity" not in host.script._controller._shape()


def test_a_live_older_than_12_1_is_told_why_and_its_buttons_stay_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Live 12.0 embeds Python 3.7: the script said "ready", then "something went wrong" at every
    press (its code is 3.11's). The package's entry point parses as 3.7 and answers for itself."""
    ast.parse(Path(remote_script.__file__).read_text(), feature_version=(3, 7))  # a SyntaxError otherwise
    monkeypatch.setattr(remote_script, "sys", SimpleNamespace(version_info=(3, 7, 9, "final", 0)))
    host = LiveHost(remote_script.create_instance)
    assert host.forwards == frozenset()  # no button taken from Live
    host.tick()
    host.script.disconnect()
    said = "MidiDrumiGen needs Live 12.1 or later (Python 3.7 here, 3.11 needed)"
    assert host.c_instance.status == said and host.c_instance.log == [said]


def test_a_bug_in_a_handler_is_logged_and_shown_never_raised_into_live(
    host: LiveHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(action: str) -> None:
        raise KeyError("boom")

    monkeypatch.setattr(host.script._controller, "press", broken)
    press(host, "generate")  # would raise into Live without the guard
    assert host.c_instance.status == "MidiDrumiGen: something went wrong — details in Live's Log.txt"
    assert any("error in receive_midi" in line and "KeyError: 'boom'" in line for line in host.c_instance.log)
    tick = host.script._controller.tick
    monkeypatch.setattr(host.script._controller, "tick", lambda: broken("tick"))
    for _ in range(50):  # a bug on Live's tick: 5 seconds of ticks
        host.tick()
    assert sum("error in update_display" in line for line in host.c_instance.log) == 1  # logged once, not per tick
    monkeypatch.setattr(host.script._controller, "tick", tick)
    host.tick()  # a clean tick: the next time it happens, it is logged again
    monkeypatch.setattr(host.script._controller, "tick", lambda: broken("tick"))
    host.tick()
    assert sum("error in update_display" in line for line in host.c_instance.log) == 2


def test_lom_changes_from_another_thread_are_refused_by_the_fake_and_survived(host: LiveHost, stub: StubClient) -> None:
    """Live's rule holds in the fake even for the script: a tick on a foreign thread writes nothing."""
    host.select(host.slot(0))
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[ONE_KICK])
    thread = threading.Thread(target=host.script.update_display)
    thread.start()
    thread.join()
    assert not host.slot(0).has_clip
    assert any("main thread" in line for line in host.c_instance.log)


def test_bad_settings_and_mappings_fall_back_and_say_why(configured) -> None:
    host = configured(StubClient(), bars=99, mapping="launchpad")
    messages = " | ".join(host.c_instance.messages)
    assert "bars must be between 1 and 16; using 4" in messages
    assert "mapping 'launchpad' not found (available mappings: generic, push); no buttons are mapped" in messages
    assert host.forwards == frozenset()


def test_no_tick_waits_while_a_request_hangs(configured, client_waits: list[float]) -> None:
    """Real client, real socket: a listener that accepts but never answers (a hung daemon)."""
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen()
        endpoint = f"tcp://127.0.0.1:{hung.getsockname()[1]}"
        host = configured(None, endpoint=endpoint)
        host.select(host.slot(0))
        press(host, "generate")
        for _ in range(300):
            host.tick()
        assert host.script._controller._client.pending()  # still waiting, as a hung daemon makes it
        host.script.disconnect()
    assert len(client_waits) >= 300 and set(client_waits) == {0.0}  # watched on every tick, never waited on


def test_no_daemon_is_reported_at_start_and_on_a_press(configured, client_waits: list[float]) -> None:
    host = configured(None, endpoint=f"tcp://127.0.0.1:{free_port()}")
    not_running = "MidiDrumiGen: daemon not running — start it with `drumigen serve`"
    host.run_until(lambda: host.c_instance.status == not_running, timeout=10)
    host.select(host.slot(0))
    press(host, "generate")
    host.run_until(lambda: host.c_instance.status == not_running, timeout=10)
    host.script.disconnect()
    assert not host.slot(0).has_clip
    assert client_waits and set(client_waits) == {0.0}  # a daemon that is not there is never waited for
