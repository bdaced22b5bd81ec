"""End to end: fake Live, the script, its real client and the real daemon over real sockets.

Each test ticks the script like Live does (update_display in a loop) and waits on what the
user would see, with a timeout; nothing is synchronised by sleeping.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from shipped import controls
from live_host import LiveHost

from remote_script import surface
from shared.notes import unpack_notes

GENERIC = controls("generic")
STOPPED = "MidiDrumiGen: the daemon stopped while working (its log says why) — start it again with `drumigen serve`"
GENERATION_TIMEOUT_S = 120  # two shared CPU cores, the bundled model


def press(host: LiveHost, action: str) -> None:
    assert host.press(GENERIC[action]), f"{action} is not forwarded by the MIDI map"


@pytest.fixture
def live(client_waits: list[float], daemon, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[LiveHost]:
    """Live at 96 BPM in 3/4 running the script against the test daemon (its client's waits
    recorded in `client_waits` from the start)."""
    if not daemon.alive:
        daemon.start()
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"endpoint": daemon.endpoint, "variations": 4, "timeout_s": 60}))
    monkeypatch.setattr(surface, "SETTINGS_FILE", settings)
    host = LiveHost(surface.DrumSurface, tempo=96.0, meter=(3, 4))
    yield host
    host.script.disconnect()


def client_of(host: LiveHost):
    return host.script._controller._client


def generate(host: LiveHost, slot_index: int = 0) -> object:
    """Press generate on a slot and tick until the groove is written; returns the clip."""
    slot = host.slot(slot_index)
    host.select(slot)
    press(host, "generate")
    host.run_until(lambda: "variation 1 of" in host.c_instance.status or "refused" in host.c_instance.status,
                   timeout=GENERATION_TIMEOUT_S)  # fmt: skip
    assert slot.has_clip, host.c_instance.status
    return slot.clip


def test_a_press_becomes_notes_with_tempo_and_meter_honoured_and_undo_restores_the_slot(
        live: LiveHost, client_waits: list[float]) -> None:
    press(live, "bars_down")  # 2 bars of 3/4
    clip = generate(live)
    notes = clip.get_all_notes_extended()
    assert clip.name == "funk 2 bars 3/4 96 BPM"
    assert clip.length == 6.0 and clip.looping
    assert notes and all(0.0 <= n.start_time < 6.0 and 0 <= n.pitch <= 127 and n.velocity >= 1 for n in notes)
    assert live.c_instance.status == "MidiDrumiGen: funk 2 bars 3/4 96 BPM — variation 1 of 4"
    assert live.c_instance.midi_out[-1] == (0xBF, 102, 127)  # the generate button is lit again
    assert client_waits and set(client_waits) == {0.0}  # Live's thread was never held while the daemon worked
    live.song.undo()
    assert not live.slot(0).has_clip


def test_the_daemon_killed_mid_request_leaves_live_responsive_and_the_user_informed(
        live: LiveHost, daemon, client_waits: list[float]) -> None:
    live.select(live.slot(1))
    press(live, "bars_up")
    press(live, "bars_up")  # 16 bars: long enough to be mid-request when the daemon dies
    press(live, "generate")
    live.run_until(lambda: client_of(live).connected and client_of(live).pending() >= 1, timeout=10)
    daemon.stop()  # SIGKILL
    client_waits.clear()
    try:
        live.run_until(lambda: live.c_instance.status == STOPPED, timeout=15)
        waits = list(client_waits)  # the script's, not those of the restart's own client below
    finally:
        daemon.start()  # the musician restarts it (and the session's other tests need it)
    assert not live.slot(1).has_clip
    assert live.c_instance.midi_out[-1] == (0xBF, 102, 127)  # not stuck "busy"
    assert any("generate request" in line and "unavailable" in line for line in live.c_instance.log)
    assert waits and set(waits) == {0.0}  # nor while it was gone
    press(live, "bars_down")
    press(live, "bars_down")
    clip = generate(live, 1)  # the next press works
    assert clip.get_all_notes_extended()


def test_a_press_that_supersedes_another_stops_the_daemons_work_on_it(live: LiveHost, daemon) -> None:
    mark = len(daemon.log_file.read_text())
    live.select(live.slot(2))
    press(live, "bars_up")
    press(live, "bars_up")  # 16 bars: seconds of sampling
    press(live, "generate")
    live.run_until(lambda: client_of(live).connected and client_of(live).pending() >= 1, timeout=10)
    press(live, "bars_down")
    press(live, "bars_down")
    clip = generate(live, 2)  # 4 bars: supersedes the 16
    assert clip.length == 4 * 3.0 and clip.get_all_notes_extended()
    assert client_of(live).stats.cancels_sent == 1
    assert "dropped: dropped unfinished: its sender cancelled it" in daemon.log_file.read_text()[mark:]


def test_two_hundred_notes_from_the_daemon_are_written_whole(live: LiveHost) -> None:
    """16 bars of 3/4 from the real daemon; then 200 of its hits written again and again, each
    time all of them (how long a write takes: benchmarks/bench_live_script.py)."""
    for _ in range(2):
        press(live, "bars_up")  # 16 bars
    press(live, "density_up")
    press(live, "density_up")  # busier: more hits a bar
    clip = generate(live, 2)
    result = live.script._controller._result
    assert all(set(p) == {"seed", "packed"} for p in result.patterns)  # the script asked for packed notes
    hits = sorted({(n.pitch, n.start) for p in result.patterns for n in unpack_notes(p["packed"])})
    assert len(hits) >= 200, f"the daemon gave only {len(hits)} distinct hits"
    wire = [{"pitch": p, "start": s, "duration": 0.1, "velocity": 90} for p, s in hits[:200]]
    two_hundred = {"seed": 1, "notes": wire}
    result.patterns[:] = [two_hundred, result.patterns[0]]
    result.index = 1
    written = 0
    for _ in range(10):  # next_variation alternates: 200 notes, the daemon's first pattern, ...
        press(live, "next_variation")  # parse, then write in one undo step
        if result.index == 0:
            assert len(clip.get_all_notes_extended()) == 200
            written += 1
    assert written == 5


@pytest.mark.parametrize("action", ["fill", "humanize", "drumify", "continue"])
def test_clip_actions_rewrite_the_clip_through_the_daemon(live: LiveHost, action: str) -> None:
    press(live, "bars_down")
    press(live, "bars_down")  # 1 bar: quick
    press(live, "strength")  # continue, fill and drumify send these too; the daemon must take them
    press(live, "complexity_up")
    clip = generate(live, 3)
    before = sorted((n.pitch, n.start_time) for n in clip.get_all_notes_extended())
    ids = {n.note_id for n in clip.get_all_notes_extended()}
    press(live, action)
    live.run_until(lambda: live.script._controller._job is None, timeout=GENERATION_TIMEOUT_S)
    after = sorted((n.pitch, n.start_time) for n in clip.get_all_notes_extended())
    done = {"fill": "fill written", "humanize": "humanized (50%)", "drumify": "drumified", "continue": "1 bar added"}
    assert live.c_instance.status.startswith(f"MidiDrumiGen: {done[action]}") and after != before
    if action == "humanize":  # the daemon answers note for note, so each note was moved in place
        assert ids == {n.note_id for n in clip.get_all_notes_extended()}
