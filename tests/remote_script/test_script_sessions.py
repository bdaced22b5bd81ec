"""Random sessions: whatever a user presses, edits, deletes and undoes, and whenever the answers
come, the script raises nothing, writes only where a button was pressed, and lights a button
busy only while it waits for that button's request."""

from __future__ import annotations

import Live
from hypothesis import example, given, settings, strategies as st
from live_host import LiveHost
from shipped import controls
from stub_client import StubClient

from remote_script import surface
from remote_script.clip_slot import NEW, alive
from shared.notes import Note, pack_notes

GENERIC = controls("generic")
REQUESTS = ("generate", "fill", "humanize", "continue", "drumify", "next_variation")

STEPS = st.one_of(
    st.tuples(st.just("select"), st.integers(0, 2), st.integers(0, 3)),
    st.tuples(st.just("press"), st.sampled_from(REQUESTS)),
    st.tuples(st.just("make_clip"), st.sampled_from((2.0, 4.0, 6.0))),
    st.tuples(st.just("delete_clip")),
    st.tuples(st.just("delete_track"), st.integers(0, 2)),
    st.tuples(st.just("delete_scene"), st.integers(0, 3)),
    st.tuples(st.just("undo")),
    st.tuples(st.just("answer"), st.integers(0, 3), st.integers(1, 3)),  # which request waiting, how many patterns
    st.tuples(st.just("tick")),
)


def pattern(k: int) -> dict:
    return {"seed": k, "packed": pack_notes([Note(36, 0.0, 0.25, 100), Note(38 + k, 1.0, 0.25, 90)])}


@settings(max_examples=400, deadline=None)
@given(st.lists(STEPS, max_size=30))
@example([("make_clip", 2.0), ("press", "generate"), ("delete_clip",), ("tick",)])  # generate, its clip deleted
def test_any_session_raises_nothing_writes_only_where_pressed_and_lights_only_what_waits(steps: list[tuple]) -> None:
    stub = StubClient()
    live = LiveHost(lambda c_instance: surface.DrumSurface(c_instance, client=stub))
    live.song._add_track("Percussion", midi=True)
    song, controller = live.song, live.script._controller
    live.select(live.slot(0))
    touched: list[object] = []  # slots a request was pressed on or a clip made in by hand
    answered: set[int] = set()
    try:
        for step in steps:
            slot = song.view.highlighted_clip_slot
            if step[0] == "select" and song.tracks:
                track = song.tracks[step[1] % len(song.tracks)]
                live.select(track.clip_slots[step[2] % len(track.clip_slots)])
            elif step[0] == "press":
                touched.append(slot)
                assert live.press(GENERIC[step[1]])
            elif step[0] == "make_clip" and slot is not None and not slot.has_clip and slot.canonical_parent.has_midi_input:
                touched.append(slot)
                slot.create_clip(step[1]).add_new_notes([Live.Clip.MidiNoteSpecification(42, 0.5, 0.25, 80.0)])
            elif step[0] == "delete_clip" and slot is not None and slot.has_clip:
                slot.delete_clip()
            elif step[0] == "delete_track" and len(song.tracks) > 1:
                song.delete_track(step[1] % len(song.tracks))
            elif step[0] == "delete_scene" and len(song.tracks[0].clip_slots) > 1:
                song.delete_scene(step[1] % len(song.tracks[0].clip_slots))
            elif step[0] == "undo":
                song.undo()
            elif step[0] == "answer":
                waiting = [s for s in stub.sent if s.op in REQUESTS + ("variation",) and s.id not in answered]
                if waiting:
                    request = waiting[step[1] % len(waiting)]
                    answered.add(request.id)
                    stub.answer(request, patterns=[pattern(k) for k in range(step[2])])
            elif step[0] == "tick":
                live.tick()

            assert not any("Traceback" in line for line in live.c_instance.log), live.c_instance.log
            job = controller._job
            if step[0] == "tick" and job is not None:  # never left waiting for an answer it cannot write
                # (generate's plan names the clip it found, but writes into the slot if that clip went)
                assert alive(job.slot) and (job.plan.mode == NEW or job.plan.clip is None or alive(job.plan.clip))
            for track in song.tracks:
                for s in track.clip_slots:
                    assert not s.has_clip or any(s is t for t in touched), "a clip where nobody pressed"
            for action in REQUESTS:
                control = live.script._mapping.control_for(action)
                sent = [m for m in live.c_instance.midi_out if m[:2] == control.led_message(False)[:2]]
                assert not sent or sent[-1] == control.led_message(controller.busy_action == action)
    finally:
        live.script.disconnect()
