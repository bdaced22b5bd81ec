"""Request actions against fake Live and a stub client: what is sent, what lands in the clip, what is said."""

from __future__ import annotations

import time
from types import SimpleNamespace

import Live
import pytest
from shipped import controls
from live_host import LiveHost
from stub_client import StubClient

from remote_script import controller as controller_module
from remote_script import surface
from shared.notes import Note, pack_notes

GENERIC = controls("generic")


def press(host: LiveHost, action: str) -> None:
    assert host.press(GENERIC[action]), f"{action} is not forwarded by the MIDI map"


def hits(*notes: tuple) -> dict:
    """A pattern from (pitch, start[, velocity]) tuples, packed as the script asks the daemon to."""
    return {"seed": 7, "packed": pack_notes([Note(n[0], n[1], 0.25, n[2] if len(n) > 2 else 100) for n in notes])}


def test_a_daemon_that_sends_note_maps_is_understood_too(waltz: LiveHost, stub: StubClient) -> None:
    """A daemon from before `packed` ignores the field and answers with note maps."""
    slot = waltz.slot(0)
    waltz.select(slot)
    press(waltz, "generate")
    wire = [{"pitch": 36, "start": 0.0, "duration": 0.25, "velocity": 100}, {"pitch": 38, "start": 1.0,
                                                                              "duration": 0.25, "velocity": 90}]
    stub.answer(stub.last("generate"), patterns=[{"seed": 7, "notes": wire}])
    waltz.tick()
    assert clip_notes(slot.clip) == [(36, 0.0, 100), (38, 1.0, 90)]


def clip_notes(clip: Live.Clip.Clip) -> list[tuple[int, float, float]]:
    return sorted((n.pitch, n.start_time, n.velocity) for n in clip.get_all_notes_extended())


def make_clip(slot: Live.ClipSlot.ClipSlot, length: float, notes: list[tuple[int, float]]) -> Live.Clip.Clip:
    clip = slot.create_clip(length)
    clip.add_new_notes([Live.Clip.MidiNoteSpecification(p, s, 0.25, 90.0) for p, s in notes])
    return clip


@pytest.fixture
def waltz(stub: StubClient):
    """Live at 96 BPM in 3/4 with the script on the stub client."""
    live = LiveHost(lambda c: surface.DrumSurface(c, client=stub), tempo=96.0, meter=(3, 4))
    yield live
    live.script.disconnect()


def test_generate_in_an_empty_slot_writes_a_named_clip_of_bars_times_the_meter(
    waltz: LiveHost, stub: StubClient
) -> None:
    slot = waltz.slot(0)
    waltz.select(slot)
    press(waltz, "generate")
    request = stub.last("generate")
    assert request.fields == {"style": "funk", "kit": "gm", "tempo": 96.0, "time_signature": [3, 4],
                              "temperature": 1.0, "top_p": 0.95, "focus": 1, "guidance": 1.0, "bars": 4, "variations": 8,
                              "packed": True}  # fmt: skip
    assert waltz.c_instance.status == "MidiDrumiGen: generating funk 4 bars 3/4 96 BPM…"
    assert not slot.has_clip  # nothing until the reply
    stub.answer(request, patterns=[hits((36, 0.0, 110), (38, 1.0), (42, 11.5)), hits((36, 0.0))])
    waltz.tick()
    clip = slot.clip
    assert clip.length == 12.0 and clip.looping  # 4 bars of 3 quarter notes
    assert clip.name == "funk 4 bars 3/4 96 BPM"
    assert clip_notes(clip) == [(36, 0.0, 110.0), (38, 1.0, 100.0), (42, 11.5, 100.0)]
    assert waltz.c_instance.status == "MidiDrumiGen: funk 4 bars 3/4 96 BPM — variation 1 of 2"
    assert any("wrote 3 notes" in line for line in waltz.c_instance.log)


def test_tempos_beyond_the_daemons_range_are_clamped_and_odd_meters_set_the_length(stub: StubClient) -> None:
    live = LiveHost(lambda c: surface.DrumSurface(c, client=stub), tempo=500.0, meter=(7, 8))
    live.select(live.slot(0))
    press(live, "generate")
    request = stub.last("generate")
    assert (request.fields["tempo"], request.fields["time_signature"]) == (400.0, [7, 8])
    stub.answer(request, patterns=[hits((36, 0.0))])
    live.tick()
    assert live.slot(0).clip.length == 14.0  # 4 bars of 3.5 quarter notes
    live.script.disconnect()


def test_a_new_clip_is_one_undo_step(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(0)
    host.select(slot)
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0), (38, 1.0))])
    host.tick()
    assert slot.has_clip
    host.song.undo()
    assert not slot.has_clip
    assert not host.song.can_undo


def test_generate_over_a_clip_replaces_its_notes_and_loop_in_one_undo_step(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(0)
    clip = make_clip(slot, 32.0, [(60, 0.0), (62, 31.0)])
    clip.name = "my riff"
    before = clip_notes(clip)
    host.select(slot)
    press(host, "generate")  # 4 bars of 4/4: 16 beats
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0), (38, 15.0))])
    host.tick()
    assert slot.clip is clip and clip.length == 16.0 and clip.name == "funk 4 bars 120 BPM"
    assert clip_notes(clip) == [(36, 0.0, 100.0), (38, 15.0, 100.0)]  # the riff's note at 31 is gone too
    host.song.undo()
    assert clip_notes(clip) == before and clip.length == 32.0 and clip.name == "my riff"


def test_variations_cycle_locally_each_as_one_undo_step(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(0)
    host.select(slot)
    press(host, "generate")
    patterns = [hits((36, 0.0)), hits((38, 1.0)), hits((42, 2.0))]
    stub.answer(stub.last("generate"), patterns=patterns)
    host.tick()
    sent = len(stub.sent)
    press(host, "next_variation")
    assert [n[0] for n in clip_notes(slot.clip)] == [38]
    assert host.c_instance.status.endswith("variation 2 of 3")
    press(host, "previous_variation")
    press(host, "previous_variation")  # wraps around to the last
    assert [n[0] for n in clip_notes(slot.clip)] == [42]
    assert len(stub.sent) == sent  # the daemon was not asked again
    host.song.undo()
    assert [n[0] for n in clip_notes(slot.clip)] == [36]


def test_variations_do_not_cycle_while_the_slot_waits_for_an_answer(host: LiveHost, stub: StubClient) -> None:
    """A fill asked for on variation 1 is worked from variation 1's notes: had next_variation
    written variation 2 meanwhile, the fill would land over it, undoing the pick unasked."""
    slot = host.slot(0)
    host.select(slot)
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0), (38, 1.0)), hits((36, 0.0), (42, 2.0))])
    host.tick()
    press(host, "fill")
    press(host, "next_variation")
    assert [n[:2] for n in clip_notes(slot.clip)] == [(36, 0.0), (38, 1.0)]  # still variation 1
    assert host.c_instance.status.endswith("still writing a fill…")
    stub.answer(stub.last("fill"), patterns=[hits((36, 0.0), (38, 1.0), (45, 3.5))])
    host.tick()
    assert [n[:2] for n in clip_notes(slot.clip)] == [(36, 0.0), (38, 1.0), (45, 3.5)]


def test_next_variation_on_another_clip_asks_the_daemon_for_variations_of_it(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(2)
    make_clip(slot, 8.0, [(36, 0.0), (38, 4.0)])
    host.select(slot)
    press(host, "next_variation")
    request = stub.last("variation")
    assert request.fields["length"] == 8.0 and request.fields["variations"] == 8
    assert [(n["pitch"], n["start"]) for n in request.fields["notes"]] == [(36, 0.0), (38, 4.0)]
    stub.answer(request, patterns=[hits((36, 0.0), (36, 2.0)), hits((38, 1.0))])
    host.tick()
    assert [n[:2] for n in clip_notes(slot.clip)] == [(36, 0.0), (36, 2.0)]
    press(host, "next_variation")  # now this clip's variations cycle locally
    assert [n[:2] for n in clip_notes(slot.clip)] == [(38, 1.0)]
    assert stub.ops().count("variation") == 1


def test_continue_extends_the_clip_with_the_new_bars_only(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(0)
    clip = make_clip(slot, 4.0, [(36, 0.0), (38, 2.0)])
    host.select(slot)
    press(host, "bars_down")
    press(host, "bars_down")  # 4 → 2 → 1 bar
    press(host, "continue")
    request = stub.last("continue")
    assert request.fields["length"] == 4.0 and request.fields["bars"] == 1
    assert len(request.fields["notes"]) == 2
    stub.answer(request, patterns=[hits((36, 4.0), (38, 6.0), (42, 3.0))])  # 3.0 lies in the old bar
    host.tick()
    assert clip.length == 8.0 and clip.loop_end == 8.0
    assert [n[:2] for n in clip_notes(clip)] == [(36, 0.0), (36, 4.0), (38, 2.0), (38, 6.0)]
    assert any("ignored 1 notes" in line for line in host.c_instance.log)
    assert host.c_instance.status == "MidiDrumiGen: 1 bar added"
    host.song.undo()
    assert clip.length == 4.0 and [n[:2] for n in clip_notes(clip)] == [(36, 0.0), (38, 2.0)]


def test_a_continuation_s_variations_cycle_only_while_the_clip_is_as_it_left_it(host: LiveHost, stub: StubClient) -> None:
    """Undo the new bars, and its variations still cycle in (the clip grows again); double the
    loop, and next_variation asks for variations of the clip as it is: cycling stretched the
    clip back to the answer's length, and grew one whose two continuations were undone with an
    empty bar between."""
    slot = host.slot(0)
    clip = make_clip(slot, 4.0, [(36, 0.0), (38, 2.0)])
    host.select(slot)
    press(host, "bars_down")
    press(host, "bars_down")  # 1 bar
    press(host, "continue")
    stub.answer(stub.last("continue"), patterns=[hits((36, 4.0)), hits((38, 6.0))])
    host.tick()
    host.song.undo()  # back to 4 beats: the length the continuation started from
    press(host, "next_variation")
    assert clip.length == 8.0 and [n[:2] for n in clip_notes(clip)] == [(36, 0.0), (38, 2.0), (38, 6.0)]
    clip.loop_end = 16.0  # the producer doubles the loop
    press(host, "next_variation")
    assert clip.loop_end == 16.0 and stub.last("variation").fields["length"] == 16.0  # asked afresh
    offset = make_clip(host.slot(1), 8.0, [(36, 0.1), (38, 2.1)])
    offset.loop_start, offset.loop_end = 0.1, 4.1  # 3.9999999999999996 beats, as floats have it
    host.select(host.slot(1))
    press(host, "fill")
    stub.answer(stub.last("fill"), patterns=[hits((36, 0.0)), hits((38, 1.0))])
    host.tick()
    asked = len(stub.sent)
    press(host, "next_variation")
    assert len(stub.sent) == asked and host.c_instance.status.endswith("variation 2 of 2")  # cycled, as it is


def test_notes_are_read_and_written_relative_to_the_loop_start(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(0)
    clip = make_clip(slot, 16.0, [(36, 0.0), (38, 8.0), (42, 12.0)])
    clip.loop_start = 8.0  # the loop plays beats 8..16
    host.select(slot)
    press(host, "humanize")
    request = stub.last("humanize")
    assert request.fields["length"] == 8.0 and request.fields["amount"] == 0.5
    assert [(n["pitch"], n["start"]) for n in request.fields["notes"]] == [(38, 0.0), (42, 4.0)]
    stub.answer(request, patterns=[hits((38, 0.02, 96), (42, 3.98, 70))])
    host.tick()
    assert clip_notes(clip) == [(36, 0.0, 90.0), (38, 8.02, 96.0), (42, 11.98, 70.0)]  # outside the loop: kept


def sounding(clip, from_pitch: int, pitch_span: int, from_time: float, time_span: float):
    """get_notes_extended read the other way: every note sounding in the range, begun before it or not."""
    return Live.Clip.MidiNoteVector(
        Live.Clip.MidiNote(i, n) for i, n in clip._notes.items()
        if from_pitch <= n.pitch < from_pitch + pitch_span and n.start_time < from_time + time_span
        and n.start_time + n.duration > from_time)


@pytest.mark.parametrize("action", ["fill", "humanize"])
def test_a_note_begun_before_the_loop_is_neither_sent_nor_removed_however_live_reads_a_range(
    host: LiveHost, stub: StubClient, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """Live's doc says what remove_notes_extended takes (notes starting in the range) but leaves
    open whether get_notes_extended's range also holds notes that begin before it and sound into
    it; the fake reads it as "starts in the range". Read the other way, a long note from before
    the loop must still be left alone: it is not part of the loop."""
    monkeypatch.setattr(Live.Clip.Clip, "get_notes_extended", sounding)
    slot = host.slot(0)
    clip = slot.create_clip(16.0)
    clip.add_new_notes([Live.Clip.MidiNoteSpecification(49, 6.0, 4.0, 90.0),  # a crash ringing into the loop
                        Live.Clip.MidiNoteSpecification(38, 8.0, 0.25, 90.0)])
    clip.loop_start = 8.0
    host.select(slot)
    press(host, action)
    request = stub.last(action)
    assert [(n["pitch"], n["start"]) for n in request.fields["notes"]] == [(38, 0.0)]
    stub.answer(request, patterns=[hits((38, 0.02, 96), (42, 1.0, 70))])
    host.tick()
    assert clip_notes(clip) == [(38, 8.02, 96.0), (42, 9.0, 70.0), (49, 6.0, 90.0)]


def test_the_starting_controls_in_settings_reach_the_request(configured, stub: StubClient) -> None:
    host = configured(stub, density=0.2, complexity=0.7, strength=2.5, guidance=1.5, temperature=0.9, top_p=0.8)
    host.select(host.slot(0))
    press(host, "generate")
    fields = stub.last("generate").fields
    assert {k: fields[k] for k in ("density", "complexity", "strength", "guidance", "temperature", "top_p")} == {
        "density": 0.2, "complexity": 0.7, "strength": 2.5, "guidance": 1.5, "temperature": 0.9, "top_p": 0.8}


def test_focus_is_asked_for_with_fewer_variations_so_the_takes_fit(configured, stub: StubClient) -> None:
    host = configured(stub, focus=4, variations=8)
    host.select(host.slot(0))
    press(host, "generate")
    request = stub.last("generate")
    assert (request.fields["focus"], request.fields["variations"]) == (4, 4)  # 16 takes, the daemon's most


def test_humanize_asks_for_ghost_notes_and_chance_as_set_and_writes_them_into_the_clip(
    configured, stub: StubClient
) -> None:
    host = configured(stub, humanize_ghost_notes=True, humanize_chance=True, humanize_amount=0.8)
    slot = host.slot(0)
    clip = make_clip(slot, 4.0, [(36, 0.0), (38, 1.0)])
    host.select(slot)
    press(host, "humanize")
    request = stub.last("humanize")
    assert (request.fields["ghost_notes"], request.fields["chance"], request.fields["amount"]) == (True, True, 0.8)
    pattern = {"seed": 7, "packed": pack_notes([Note(36, 0.01, 0.25, 90, velocity_deviation=18.0),
                                                Note(38, 1.0, 0.25, 100), Note(38, 1.75, 0.25, 30, 0.35, 6.0)])}
    stub.answer(request, patterns=[pattern])
    host.tick()
    written = sorted((n.pitch, n.start_time, n.velocity, n.probability, n.velocity_deviation)
                     for n in clip.get_all_notes_extended())
    assert written == [(36, 0.01, 90.0, 1.0, 18.0), (38, 1.0, 100.0, 1.0, 0.0), (38, 1.75, 30.0, 0.35, 6.0)]


def test_humanize_moves_the_notes_it_sent_keeping_their_ids_and_release_velocity(host: LiveHost, stub: StubClient) -> None:
    """Live's doc: existing notes are changed with apply_note_modifications, which keeps their
    per-note events; removing and adding them again would lose those."""
    slot = host.slot(1)
    clip = slot.create_clip(4.0)
    spec = Live.Clip.MidiNoteSpecification
    snare, kick, hat = clip.add_new_notes([spec(38, 1.0, 0.25, 90.0, release_velocity=20.0),
                                           spec(36, 0.0, 0.5, 90.4, release_velocity=100.0), spec(42, 3.75, 0.25)])
    host.select(slot)
    press(host, "humanize")
    request = stub.last("humanize")
    assert [n["pitch"] for n in request.fields["notes"]] == [36, 38, 42]  # as the daemon reads a clip: by start
    clip.add_new_notes([spec(46, 2.0, 0.25)])  # played in while the daemon worked: replaced, as by any clip action
    stub.answer(request, patterns=[hits((36, 0.02, 90), (38, 0.98, 110), (42, 3.9), (38, 1.5, 25))])
    host.tick()
    notes = {n.note_id: n for n in clip.get_all_notes_extended()}
    assert (notes[kick].start_time, notes[kick].velocity, notes[kick].duration, notes[kick].release_velocity) == \
        (0.02, 90.4, 0.5, 100.0)  # its played velocity came back as sent (rounded), so it stays as played
    assert (notes[snare].start_time, notes[snare].velocity, notes[snare].release_velocity) == (0.98, 110.0, 20.0)
    assert notes[hat].start_time == 3.9 and notes[hat].duration == pytest.approx(0.1)  # still ends with the clip
    assert [(n.pitch, n.start_time) for i, n in notes.items() if i not in (kick, snare, hat)] == [(38, 1.5)]  # a ghost
    host.song.undo()  # one undo step
    assert sorted((n.pitch, n.start_time, n.release_velocity) for n in clip.get_all_notes_extended()) == \
        [(36, 0.0, 100.0), (38, 1.0, 20.0), (42, 3.75, 64.0), (46, 2.0, 64.0)]


def test_humanize_on_a_clip_with_no_notes_that_play_says_so(host: LiveHost, stub: StubClient) -> None:
    """It asked the daemon, got nothing back and said "humanized (50%)"."""
    slot = host.slot(1)
    clip = slot.create_clip(4.0)
    spec = Live.Clip.MidiNoteSpecification
    clip.add_new_notes([spec(38, 1.0, 0.25, 90.0, mute=True)])
    host.select(slot)
    press(host, "humanize")
    assert "humanize" not in stub.ops()
    assert host.c_instance.status == "MidiDrumiGen: nothing to humanize — the clip has no notes that play"


def test_humanize_ends_each_moved_note_by_the_next_hit_of_its_pitch(host: LiveHost, stub: StubClient) -> None:
    """16th hats drawn a 16th long, each moved its own way: 16 of 32 overlapped the next, whose
    note-off then cut that hit short. Their lengths are kept where nothing follows too soon."""
    slot = host.slot(1)
    clip = slot.create_clip(2.0)
    spec = Live.Clip.MidiNoteSpecification
    clip.add_new_notes([spec(42, k / 4, 0.25, 90.0) for k in range(8)])
    host.select(slot)
    press(host, "humanize")
    request = stub.last("humanize")
    stub.answer(request, patterns=[hits(*((42, k / 4 + (0.02 if k % 2 else -0.02) * (k > 0), 90) for k in range(8)),
                                        (42, 1.9, 30))])  # and a ghost note after the last
    host.tick()
    notes = sorted(clip.get_all_notes_extended(), key=lambda n: n.start_time)
    assert len(notes) == 9
    assert all(a.start_time + a.duration <= b.start_time + 1e-9 for a, b in zip(notes, notes[1:]))
    assert notes[1].duration == pytest.approx(0.21) and notes[2].duration == 0.25  # cut where the next came near
    assert notes[7].duration == pytest.approx(1.9 - 1.77)  # and by a ghost note after it


def test_humanize_pressed_again_plays_the_clip_as_it_was_afresh(host: LiveHost, stub: StubClient) -> None:
    """Humanizing the humanized clip read its flams and triplets as played 16ths and pinned them
    there (2 of 40 flams left after a second press), and piled up ghost notes. While the clip
    holds what humanize wrote, pressing again sends the clip as it was, the same notes by id;
    once the producer has changed it, the clip as it is."""
    slot = host.slot(1)
    clip = slot.create_clip(4.0)
    spec = Live.Clip.MidiNoteSpecification
    clip.add_new_notes([spec(38, 0.875, 0.1, 60.0), spec(38, 1.0, 0.25, 100.0), spec(36, 0.0, 0.25, 100.0)])  # a flam
    host.select(slot)
    press(host, "humanize")
    first = stub.last("humanize")
    stub.answer(first, patterns=[hits((36, 0.02, 90), (38, 0.86, 55), (38, 0.99, 104), (38, 2.5, 25)),
                                 hits((36, 0.01, 95), (38, 0.88, 62), (38, 1.02, 99))])
    host.tick()
    press(host, "next_variation")  # the second take is in the clip now
    press(host, "humanize")
    again = stub.last("humanize")
    assert again.fields["notes"] == first.fields["notes"] and again.id != first.id
    stub.answer(again, patterns=[hits((36, 0.03, 92), (38, 0.87, 58), (38, 1.01, 101))])
    host.tick()
    assert sorted((n.pitch, n.start_time) for n in clip.get_all_notes_extended()) == [(36, 0.03), (38, 0.87), (38, 1.01)]
    snare = [n.note_id for n in clip.get_all_notes_extended() if n.start_time == 1.01]
    moved = clip.get_notes_by_id(snare)  # the producer moves the snare: the clip as it is now is humanized
    moved[0].start_time = 1.5
    clip.apply_note_modifications(moved)
    press(host, "humanize")
    assert [(n["pitch"], n["start"]) for n in stub.last("humanize").fields["notes"]] == \
        [(36, 0.03), (38, 0.87), (38, 1.5)]


def test_each_clip_remembers_what_humanize_was_sent_while_others_are_worked_on(host: LiveHost, stub: StubClient) -> None:
    """Only the last answer was remembered: humanize clip A, then B (or generate anywhere), then
    A again, and A's humanized notes were humanized once more."""
    a, b = make_clip(host.slot(1), 4.0, [(36, 0.0), (38, 1.0)]), make_clip(host.slot(2), 4.0, [(36, 0.0), (42, 0.5)])
    for slot, moved in ((host.slot(1), hits((36, 0.02, 90), (38, 0.97, 104))),
                        (host.slot(2), hits((36, 0.01, 95), (42, 0.53, 70)))):
        host.select(slot)
        press(host, "humanize")
        stub.answer(stub.last("humanize"), patterns=[moved])
        host.tick()
    host.select(host.slot(3))
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    host.tick()
    host.select(host.slot(1))
    press(host, "humanize")
    assert [(n["pitch"], n["start"], n["velocity"]) for n in stub.last("humanize").fields["notes"]] == \
        [(36, 0.0, 90), (38, 1.0, 90)]
    assert [n[:2] for n in clip_notes(a)] == [(36, 0.02), (38, 0.97)] and clip_notes(b)[0][:2] == (36, 0.01)


def test_a_humanize_answer_that_does_not_line_up_replaces_the_notes_in_every_variation(
    host: LiveHost, stub: StubClient
) -> None:
    slot = host.slot(1)
    clip = make_clip(slot, 4.0, [(36, 0.0), (38, 1.0)])
    host.select(slot)
    press(host, "humanize")
    request = stub.last("humanize")
    clip.remove_notes_extended(38, 1, 0.0, 4.0)  # deleted while the daemon worked: nothing to move in place
    stub.answer(request, patterns=[hits((36, 0.01), (38, 1.02)), hits((36, 0.03), (42, 1.0), (38, 1.5))])
    host.tick()
    assert [n[:2] for n in clip_notes(clip)] == [(36, 0.01), (38, 1.02)]
    press(host, "next_variation")  # the notes sent are gone: this one replaces too, whole
    assert [n[:2] for n in clip_notes(clip)] == [(36, 0.03), (38, 1.5), (42, 1.0)]


@pytest.mark.parametrize("action", ["fill", "humanize", "drumify"])
def test_clip_actions_replace_the_notes_and_say_so(host: LiveHost, stub: StubClient, action: str) -> None:
    slot = host.slot(1)
    clip = make_clip(slot, 8.0, [(60, 0.0), (64, 7.0)])
    host.select(slot)
    press(host, action)
    request = stub.last(action)
    assert request.fields["style"] == "funk" and request.fields["time_signature"] == [4, 4]
    stub.answer(request, patterns=[hits((36, 0.0), (38, 7.5))])
    host.tick()
    assert [n[:2] for n in clip_notes(clip)] == [(36, 0.0), (38, 7.5)] and clip.length == 8.0
    said = {"fill": "fill written", "humanize": "humanized (50%)", "drumify": "drumified"}[action]
    assert host.c_instance.status == "MidiDrumiGen: " + said


@pytest.mark.parametrize("action", ["fill", "humanize", "drumify", "next_variation"])
def test_clip_actions_keep_the_muted_notes_they_never_sent(host: LiveHost, stub: StubClient, action: str) -> None:
    slot = host.slot(1)
    clip = make_clip(slot, 4.0, [(36, 0.0)])
    clip.add_new_notes([Live.Clip.MidiNoteSpecification(38, 0.5, 0.25, 80.0, mute=True, release_velocity=90.0)])
    host.select(slot)
    press(host, action)
    request = stub.last("variation" if action == "next_variation" else action)
    assert [n["pitch"] for n in request.fields["notes"]] == [36]  # a muted note does not play, so it is not sent
    stub.answer(request, patterns=[hits((36, 0.01), (42, 1.0))])
    host.tick()
    kept = [(n.pitch, n.start_time, n.mute, n.release_velocity) for n in clip.get_all_notes_extended() if n.mute]
    assert kept == [(38, 0.5, True, 90.0)] and [n[:2] for n in clip_notes(clip)] == [(36, 0.01), (38, 0.5), (42, 1.0)]


def test_a_port_that_echoes_the_lights_back_presses_nothing(host: LiveHost, stub: StubClient, monkeypatch) -> None:
    """One virtual port as both Input and Output (an IAC bus behind TouchOSC) returns every LED
    message; the generic mapping lights an idle button with the value that presses it, so each
    finished groove pressed generate again, and Live's refresh pressed every button."""
    looped: list[tuple[int, ...]] = []
    send = host.c_instance.send_midi
    monkeypatch.setattr(host.c_instance, "send_midi", lambda message: (send(message), looped.append(message)))

    def echo() -> None:
        while looped:
            host.midi_in(looped.pop(0))

    monkeypatch.setattr(surface, "ECHO_S", 0.05)
    host.select(host.slot(0))
    host.script.refresh_state()
    echo()
    assert stub.ops().count("generate") == 0 and len(host.c_instance.midi_out) > 5
    time.sleep(0.06)  # a press is a press once the lights' echoes are due
    press(host, "generate")
    echo()
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    host.tick()
    assert host.c_instance.midi_out[-1] == (0xBF, GENERIC["generate"]["number"], 127)  # lit idle: its echo presses
    echo()
    host.tick()
    assert stub.ops().count("generate") == 1 and host.script._controller.busy_action is None
    time.sleep(0.06)
    press(host, "generate")  # a real press, later, still counts
    assert stub.ops().count("generate") == 2


def test_a_light_echoed_after_a_slow_clip_write_presses_nothing(host: LiveHost, stub: StubClient, monkeypatch) -> None:
    """The idle light is sent, then the clip written in the same call of Live's: the echo can
    only come after it, and a write longer than the echo window let it press generate again."""
    looped: list[tuple[int, ...]] = []
    send = host.c_instance.send_midi
    monkeypatch.setattr(host.c_instance, "send_midi", lambda message: (send(message), looped.append(message)))
    monkeypatch.setattr(surface, "ECHO_S", 0.05)
    write = controller_module.write
    monkeypatch.setattr(controller_module, "write", lambda *args: (write(*args), time.sleep(0.08)))  # a big clip
    host.select(host.slot(0))
    time.sleep(0.06)
    press(host, "generate")
    looped.clear()
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    host.tick()
    while looped:
        host.midi_in(looped.pop(0))
    assert stub.ops().count("generate") == 1


def test_a_client_that_raises_ends_the_press_in_flight(host: LiveHost, stub: StubClient) -> None:
    """Whatever the client raises is logged once and shown, and the press it was waiting for
    ends, unlit: it had waited for ever, its button busy, while every tick raised again."""
    host.select(host.slot(0))
    press(host, "generate")
    assert host.script._controller.busy_action == "generate"

    def broken(timeout: float = 0.0) -> list:
        raise OSError(22, "Invalid argument")

    stub.poll = broken
    host.tick()
    host.tick()
    assert host.script._controller.busy_action is None and stub.forgotten == [stub.last("generate").id]
    assert host.c_instance.midi_out[-1] == (0xBF, GENERIC["generate"]["number"], 127)  # idle again
    assert host.c_instance.status == "MidiDrumiGen: something went wrong — details in Live's Log.txt"
    assert sum("OSError: [Errno 22] Invalid argument" in line for line in host.c_instance.log) == 1
    del stub.poll  # the client works again
    press(host, "generate")  # and the next press is sent
    assert stub.ops().count("generate") == 2


@pytest.mark.parametrize("tick_between", [False, True])
@pytest.mark.parametrize("action", ["continue", "fill", "humanize"])
def test_an_answer_whose_clip_was_deleted_or_replaced_meanwhile_is_not_written(
    host: LiveHost, stub: StubClient, action: str, tick_between: bool
) -> None:
    """Seen at a tick before the answer comes, the request is abandoned at once (forgotten, its
    light off); an answer that comes in the same tick is refused by `write`. Either way it says so."""
    slot = host.slot(1)
    make_clip(slot, 4.0, [(36, 0.0)])
    host.select(slot)
    press(host, action)
    request = stub.last(action)
    slot.delete_clip()
    other = make_clip(slot, 8.0, [(60, 0.0)])  # another clip in the slot: still not the one the answer is for
    if tick_between:
        host.tick()
        assert stub.forgotten == [request.id] and host.script._controller.busy_action is None
    stub.answer(request, patterns=[hits((38, 4.0 if action == "continue" else 1.0))])
    host.tick()
    assert clip_notes(other) == [(60, 0.0, 90.0)] and other.length == 8.0
    assert host.c_instance.midi_out[-1] == (0xBF, GENERIC[action]["number"], 127)  # the button is idle again
    assert host.c_instance.status == "MidiDrumiGen: the clip was deleted or replaced while the daemon worked — nothing written"


@pytest.mark.parametrize("action", ["fill", "humanize", "drumify", "next_variation", "continue"])
def test_an_answer_whose_loop_was_moved_meanwhile_is_not_written_and_its_variations_do_not_follow(
    host: LiveHost, stub: StubClient, action: str
) -> None:
    """An answer is about the notes under the loop at the press. Written where the loop is when
    it comes, a fill of bars 1-4 replaced the producer's bars 5-8, and humanize put bars 1-4's
    kicks there; cycling a fill's variations after the loop moved did the same."""
    slot = host.slot(0)
    clip = make_clip(slot, 8.0, [(36, float(b)) for b in range(4)] + [(38, 4.0 + b) for b in range(4)])
    clip.loop_end = 4.0  # bars 1: kicks under the loop; bar 2: the producer's snares
    host.select(slot)
    press(host, action)
    op = "variation" if action == "next_variation" else action
    answer = [(36, 4.0 + b, 80) for b in range(2)] if op == "continue" else [(36, b + 0.01, 80) for b in range(4)]
    clip.loop_end, clip.loop_start = 8.0, 4.0  # the producer moves the loop on while the daemon works
    stub.answer(stub.last(op), patterns=[hits(*answer), hits(*answer)])
    host.tick()
    assert clip_notes(clip) == [(36, float(b), 90.0) for b in range(4)] + [(38, 4.0 + b, 90.0) for b in range(4)]
    assert host.c_instance.status == "MidiDrumiGen: the clip's loop was moved or resized while the daemon worked — nothing written"
    clip.loop_start, clip.loop_end = 0.0, 4.0
    press(host, "fill")
    stub.answer(stub.last("fill"), patterns=[hits((36, 0.0)), hits((38, 1.0))])
    host.tick()
    assert [n[:2] for n in clip_notes(clip)] == [(36, 0.0)] + [(38, 4.0 + b) for b in range(4)]
    clip.loop_end, clip.loop_start = 8.0, 4.0  # as long as the answer left it, but elsewhere
    asked = len(stub.sent)
    press(host, "next_variation")
    assert len(stub.sent) == asked + 1 and stub.last("variation").fields["notes"][0]["pitch"] == 38  # asked afresh
    assert [n[:2] for n in clip_notes(clip)] == [(36, 0.0)] + [(38, 4.0 + b) for b in range(4)]


@pytest.mark.parametrize("action", ["generate", "fill", "humanize", "next_variation"])
def test_a_press_while_an_arrangement_clip_is_in_view_explains_instead_of_changing_an_unseen_clip(
    host: LiveHost, stub: StubClient, action: str
) -> None:
    """In Arrangement View the Detail View shows an Arrangement clip while the Session's
    highlighted slot holds another: humanize changed that Session clip and said "humanized".
    A Session clip in view, even another slot's, is Session View: the press works."""
    slot = host.slot(0)
    clip = make_clip(slot, 4.0, [(36, 0.0), (38, 1.0)])
    host.select(slot)
    press(host, "fill")
    stub.answer(stub.last("fill"), patterns=[hits((36, 0.0)), hits((38, 1.0))])
    host.tick()
    asked, before = len(stub.sent), clip_notes(clip)
    host.drums.create_midi_clip(8.0, 4.0)
    host.song.view.detail_clip = host.drums._arrangement[0]  # the clip the user looks at
    press(host, action)
    assert len(stub.sent) == asked and clip_notes(clip) == before  # nothing asked, nothing changed
    assert host.c_instance.status == ("MidiDrumiGen: an Arrangement clip is in view — MidiDrumiGen writes "
                                      "Session View clips: switch to Session View")
    host.song.view.detail_clip = make_clip(host.slot(1), 4.0, [(42, 0.0)])  # another slot's: Session View
    press(host, action)
    assert len(stub.sent) == asked + (action != "next_variation")  # a variation cycles locally


def test_generate_into_an_empty_slot_while_an_arrangement_clip_is_in_view_explains(
    host: LiveHost, stub: StubClient
) -> None:
    host.drums.create_midi_clip(0.0, 4.0)
    host.select(host.slot(2))
    host.song.view.detail_clip = host.drums._arrangement[0]
    press(host, "generate")
    assert "generate" not in stub.ops()
    assert not host.slot(2).has_clip and "an Arrangement clip is in view" in host.c_instance.status


@pytest.mark.parametrize("deleted", ["track", "scene"])
@pytest.mark.parametrize("action", ["generate", "humanize"])
def test_an_answer_whose_track_or_scene_was_deleted_meanwhile_is_not_written(
    host: LiveHost, stub: StubClient, deleted: str, action: str
) -> None:
    slot = host.slot(1)
    make_clip(slot, 4.0, [(36, 0.0)])
    host.select(slot)
    press(host, action)
    host.song.delete_track(0) if deleted == "track" else host.song.delete_scene(1)
    steps = len(host.song._model.undo.steps)
    stub.answer(stub.last(action), patterns=[hits((38, 1.0))])
    host.tick()
    assert host.c_instance.status == ("MidiDrumiGen: the track or scene was deleted while the daemon worked"
                                      " — nothing written")
    assert len(host.song._model.undo.steps) == steps  # nothing written, not even an empty undo step
    assert not any("Traceback" in line for line in host.c_instance.log)
    assert all(not s.has_clip for t in host.song.tracks for s in t.clip_slots)  # nor written anywhere else


@pytest.mark.parametrize("deleted", ["track", "scene"])
def test_a_request_whose_track_or_scene_is_deleted_is_dropped_at_the_next_tick(
    host: LiveHost, stub: StubClient, deleted: str
) -> None:
    """Not left lit and counting seconds until an answer that cannot be written comes."""
    host.select(host.slot(1))
    press(host, "generate")
    request = stub.last("generate")
    host.song.delete_track(0) if deleted == "track" else host.song.delete_scene(1)
    host.tick()
    assert stub.forgotten == [request.id] and host.script._controller.busy_action is None
    assert host.c_instance.midi_out[-1] == (0xBF, GENERIC["generate"]["number"], 127)  # the button is idle again
    assert host.c_instance.status == ("MidiDrumiGen: the track or scene was deleted while the daemon worked"
                                      " — nothing written")
    assert any(f"request {request.id} (generate) abandoned" in line for line in host.c_instance.log)
    stub.answer(request, patterns=[hits((36, 0.0))])
    host.tick()
    assert all(not s.has_clip for t in host.song.tracks for s in t.clip_slots)
    assert any(f"dropped the reply to request {request.id}" in line for line in host.c_instance.log)


def test_a_track_deleted_and_undone_between_two_ticks_gets_its_answer(host: LiveHost, stub: StubClient) -> None:
    """The fake's undo revives the old handles (Live's doc does not say); the answer then lands."""
    slot = host.slot(1)
    host.select(slot)
    press(host, "generate")
    host.song.delete_track(0)
    host.song.undo()
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    host.tick()
    assert clip_notes(slot.clip) == [(36, 0.0, 100.0)] and stub.forgotten == []


def test_an_answer_that_could_not_be_written_is_not_cycled_by_next_variation(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(1)
    make_clip(slot, 4.0, [(36, 0.0)])
    host.select(slot)
    press(host, "fill")
    slot.delete_clip()
    make_clip(slot, 4.0, [(42, 0.5)])  # another clip there by the time the two fills come
    stub.answer(stub.last("fill"), patterns=[hits((38, 1.0)), hits((38, 3.0))])
    host.tick()
    press(host, "next_variation")  # asks for variations of the clip that is there, not fill 2 of 2
    assert [(n["pitch"], n["start"]) for n in stub.last("variation").fields["notes"]] == [(42, 0.5)]
    assert clip_notes(slot.clip) == [(42, 0.5, 90.0)]


def test_generate_over_a_clip_whose_start_marker_lies_past_the_new_loop(host: LiveHost, stub: StubClient) -> None:
    slot = host.slot(1)
    clip = make_clip(slot, 16.0, [(36, float(b)) for b in range(16)])
    clip.start_marker = 8.0
    host.select(slot)
    press(host, "bars_down")
    press(host, "bars_down")  # 1 bar
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((38, 1.0))])
    host.tick()
    assert (clip.loop_start, clip.loop_end, clip.start_marker) == (0.0, 4.0, 0.0)
    assert [n[:2] for n in clip_notes(clip)] == [(38, 1.0)]  # the old groove's notes all replaced


def test_a_new_groove_over_a_clip_with_a_lead_in_before_its_loop_replaces_that_too(
    host: LiveHost, stub: StubClient
) -> None:
    """A looped clip plays from its start marker once, then its loop: the old notes before the
    loop played before every launch of the new groove."""
    slot = host.slot(1)
    clip = make_clip(slot, 16.0, [(60, 0.0), (62, 2.0), (36, 4.0), (36, 12.0)])
    clip.loop_start, clip.loop_end = 4.0, 12.0
    host.select(slot)
    press(host, "bars_down")  # 2 bars
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((38, 1.0))])
    host.tick()
    assert (clip.start_marker, clip.loop_start, clip.loop_end) == (4.0, 4.0, 12.0)
    assert [n[:2] for n in clip_notes(clip)] == [(36, 12.0), (38, 5.0)]  # after the loop: kept, unheard as before


def test_a_new_groove_over_a_clip_launched_from_inside_its_loop_starts_on_its_one(
    host: LiveHost, stub: StubClient
) -> None:
    slot = host.slot(1)
    clip = make_clip(slot, 16.0, [(36, float(b)) for b in range(16)])
    clip.start_marker = 4.0  # launched from bar 2 of the old loop, 0..16
    host.select(slot)
    press(host, "bars_down")  # 2 bars: the old start marker would launch the new groove at its second bar
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((38, 1.0))])
    host.tick()
    assert (clip.loop_start, clip.loop_end, clip.start_marker) == (0.0, 8.0, 0.0)


def test_a_clip_with_more_notes_than_the_daemon_takes_is_explained_instead_of_sent(
    host: LiveHost, stub: StubClient
) -> None:
    slot = host.slot(1)
    make_clip(slot, 64.0, [(36 + k % 4, k // 4 / 20) for k in range(4097)])
    host.select(slot)
    sent = len(stub.sent)
    press(host, "continue")
    assert len(stub.sent) == sent
    assert host.c_instance.status == "MidiDrumiGen: this clip plays 4097 notes; MidiDrumiGen takes at most 4096"


def test_clip_actions_play_in_the_clips_own_meter(host: LiveHost, stub: StubClient) -> None:
    """A 3/4 clip in a 4/4 set: its fill is asked for in 3/4, and continue adds bars of 3 beats."""
    slot = host.slot(1)
    clip = make_clip(slot, 6.0, [(36, 0.0), (36, 3.0)])
    clip.signature_numerator = 3
    host.select(slot)
    press(host, "fill")
    assert stub.last("fill").fields["time_signature"] == [3, 4]
    press(host, "continue")
    request = stub.last("continue")
    assert request.fields["time_signature"] == [3, 4] and request.fields["bars"] == 4
    stub.answer(request, patterns=[hits((36, 6.0))])
    host.tick()
    assert clip.length == 6.0 + 4 * 3.0


def test_generate_plays_in_the_songs_meter_and_gives_the_clip_that_meter(host: LiveHost, stub: StubClient) -> None:
    """A Live 12 clip has its own meter: generate replaces a 3/4 clip's groove in the song's 4/4
    and makes the clip 4/4, and a new clip gets the meter asked in even if the song's changed
    while the daemon worked."""
    slot = host.slot(1)
    clip = make_clip(slot, 6.0, [(36, 0.0), (36, 3.0)])
    clip.signature_numerator = 3
    host.select(slot)
    press(host, "generate")
    request = stub.last("generate")
    assert request.fields["time_signature"] == [4, 4]
    stub.answer(request, patterns=[hits((38, 1.0))])
    host.tick()
    assert (clip.signature_numerator, clip.signature_denominator, clip.length) == (4, 4, 16.0)
    host.select(host.slot(2))
    press(host, "generate")
    host.song.signature_numerator, host.song.signature_denominator = 7, 8  # changed before the answer
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    host.tick()
    new = host.slot(2).clip
    assert (new.signature_numerator, new.signature_denominator, new.length) == (4, 4, 16.0)
    host.song.undo()
    assert not host.slot(2).has_clip  # the meter was set inside the clip's one undo step


def test_a_scenes_own_tempo_and_meter_are_the_ones_its_groove_is_asked_in(host: LiveHost, stub: StubClient) -> None:
    """The song takes a scene's tempo and meter when the scene fires: a groove made for its slot
    while the song still plays another scene's 4/4 at 120 is asked in the scene's 7/8 at 90,
    and its clip is 7/8. A clip keeps its own meter, and takes the scene's tempo."""
    scene = host.song.scenes[2]
    scene.tempo, scene.tempo_enabled = 90.0, True
    scene.time_signature_numerator, scene.time_signature_denominator = 7, 8
    scene._meter_on = True
    slot = host.slot(2)
    host.select(slot)
    press(host, "generate")
    request = stub.last("generate")
    assert (request.fields["tempo"], request.fields["time_signature"]) == (90.0, [7, 8])
    stub.answer(request, patterns=[hits((36, 0.0))])
    host.tick()
    assert (slot.clip.signature_numerator, slot.clip.signature_denominator, slot.clip.length) == (7, 8, 14.0)
    assert slot.clip.name.endswith("7/8 90 BPM")
    other = host.slot(3)
    make_clip(other, 6.0, [(36, 0.0)]).signature_numerator = 3
    host.select(other)
    press(host, "fill")  # scene 3 sets nothing: the song's tempo, the clip's meter
    assert (stub.last("fill").fields["tempo"], stub.last("fill").fields["time_signature"]) == (120.0, [3, 4])
    host.select(slot)
    press(host, "fill")
    assert (stub.last("fill").fields["tempo"], stub.last("fill").fields["time_signature"]) == (90.0, [7, 8])


def test_a_superseded_request_is_forgotten_by_the_client(host: LiveHost, stub: StubClient) -> None:
    host.select(host.slot(0))
    press(host, "generate")
    first = stub.last("generate")
    press(host, "bars_up")
    press(host, "generate")
    assert stub.forgotten == [first.id]


@pytest.mark.parametrize("action", ["continue", "fill", "humanize", "drumify", "next_variation"])
def test_clip_actions_on_an_empty_slot_explain_instead_of_sending(
    host: LiveHost, stub: StubClient, action: str
) -> None:
    host.select(host.slot(3))
    sent = len(stub.sent)
    press(host, action)
    assert len(stub.sent) == sent
    assert "needs a clip — select a clip, or press generate first" in host.c_instance.status


@pytest.mark.parametrize("action", ["generate", "humanize"])
def test_a_frozen_track_is_explained_instead_of_sending(host: LiveHost, stub: StubClient, action: str) -> None:
    """Live: "no changes should be applied to the track's devices or clips while it is frozen";
    the frozen audio would go on playing the old groove."""
    slot = host.slot(0)
    make_clip(slot, 4.0, [(36, 0.0)])
    slot.canonical_parent._frozen = True
    host.select(slot)
    press(host, action)
    assert host.c_instance.status == "MidiDrumiGen: “Drums” is frozen — unfreeze it to change its clips"
    assert action not in stub.ops()


def test_a_track_frozen_while_the_daemon_works_or_before_a_variation_is_not_written(
    host: LiveHost, stub: StubClient
) -> None:
    slot = host.slot(0)
    host.select(slot)
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0)), hits((38, 1.0))])
    host.tick()
    press(host, "fill")
    slot.canonical_parent._frozen = True
    stub.answer(stub.last("fill"), patterns=[hits((45, 3.5))])
    host.tick()
    assert [n[:2] for n in clip_notes(slot.clip)] == [(36, 0.0)] and "is frozen" in host.c_instance.status
    press(host, "next_variation")
    assert [n[:2] for n in clip_notes(slot.clip)] == [(36, 0.0)] and "is frozen" in host.c_instance.status


def test_no_slot_or_an_audio_track_is_explained(host: LiveHost, stub: StubClient) -> None:
    host.select(None)
    press(host, "generate")
    assert host.c_instance.status == "MidiDrumiGen: select a clip slot in a MIDI track first"
    host.select(host.slot(0, host.audio))
    press(host, "generate")
    assert host.c_instance.status == "MidiDrumiGen: “Audio” is not a MIDI track — select a slot in a MIDI track"
    assert "generate" not in stub.ops()


def test_a_second_press_while_waiting_supersedes_and_the_stale_reply_is_dropped(
    host: LiveHost, stub: StubClient
) -> None:
    slot = host.slot(0)
    host.select(slot)
    press(host, "generate")
    first = stub.last("generate")
    press(host, "bars_up")  # 8 bars
    press(host, "generate")
    second = stub.last("generate")
    assert second.id != first.id and second.fields["bars"] == 8
    assert host.c_instance.midi_out[-2:] == [(0xBF, 102, 127), (0xBF, 102, 0)]  # idle, then busy again
    stub.answer(first, patterns=[hits((42, 0.0))])
    host.tick()
    assert not slot.has_clip
    assert any(f"dropped the reply to request {first.id}" in line for line in host.c_instance.log)
    stub.answer(second, patterns=[hits((36, 0.0))])
    host.tick()
    assert slot.clip.length == 32.0 and [n[0] for n in clip_notes(slot.clip)] == [36]


def test_pressing_the_same_button_again_does_not_ask_twice(host: LiveHost, stub: StubClient) -> None:
    """Not while the tempo drifts either (automation, Link, Tempo Follower): a press that found
    120.3 BPM where the first found 120 abandoned the first request and started again."""
    host.select(host.slot(0))
    press(host, "generate")
    host.song.tempo = 120.3
    press(host, "generate")
    assert stub.ops().count("generate") == 1
    assert host.c_instance.status == "MidiDrumiGen: still generating funk 4 bars 120 BPM…"
    host.song.tempo = 96.0  # a new tempo: a new request
    press(host, "generate")
    assert stub.ops().count("generate") == 2 and stub.last("generate").fields["tempo"] == 96.0


def test_the_answer_goes_to_the_slot_that_was_pressed_on(host: LiveHost, stub: StubClient) -> None:
    host.select(host.slot(0))
    press(host, "generate")
    host.select(host.slot(5))  # the user moves on while the daemon works
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    host.tick()
    assert host.slot(0).has_clip and not host.slot(5).has_clip


@pytest.mark.parametrize(
    "action, code, message, status",
    [
        ("generate", "unavailable", "MidiDrumiGen daemon is not running at tcp://127.0.0.1:5555 — start it",
         "MidiDrumiGen: daemon not running — start it with `drumigen serve`"),
        ("generate", "timeout", "no answer within 20 s",
         "MidiDrumiGen: the daemon did not answer in time — ask for fewer bars or variations, or raise timeout_s in "
         "settings.json; if it keeps happening, restart `drumigen serve`"),
        ("fill", "unknown_op", "unknown op 'fill'",
         "MidiDrumiGen: this daemon does not support fill yet — update MidiDrumiGen"),
        ("generate", "unknown_style", "unknown style 'polka'; choose one of: rock, funk",
         "MidiDrumiGen: unknown style 'polka'; choose one of: rock, funk"),
        ("generate", "busy", "queue full",
         "MidiDrumiGen: the daemon is busy with other requests — try again in a moment"),
        ("generate", "busy", "the daemon is stopping; try again once it is back",  # not "busy with other requests"
         "MidiDrumiGen: the daemon is stopping — try again once it runs again (`drumigen serve`)"),
        ("generate", "unavailable", "Something at tcp://127.0.0.1:5555 is not the MidiDrumiGen daemon (reset): ...",
         "MidiDrumiGen: something else answers at the daemon's address (another program, or a daemon that needs "
         "CurveZMQ) — details in Live's Log.txt"),  # not "start it"
        ("generate", "unavailable", "Cannot reach the MidiDrumiGen daemon at tcp://10.0.0.9:5555 (timed out) — ...",
         "MidiDrumiGen: cannot reach the daemon — is `drumigen serve` running at the address in settings.json? "
         "Details in Live's Log.txt"),
    ],
)  # fmt: skip
def test_failures_are_shown_in_musician_words_and_logged(
    host: LiveHost, stub: StubClient, action: str, code: str, message: str, status: str
) -> None:
    slot = host.slot(0)
    make_clip(slot, 4.0, [(36, 0.0)])
    host.select(slot)
    press(host, action)
    stub.fail(stub.last(action), code, message)
    host.tick()
    assert host.c_instance.status == status
    assert any(code in line and message in line for line in host.c_instance.log)
    assert host.c_instance.midi_out[-1] == (0xBF, GENERIC[action]["number"], 127)  # the button is idle again


def test_notes_live_cannot_take_are_refused_whole(host: LiveHost, stub: StubClient) -> None:
    host.select(host.slot(0))
    press(host, "generate")
    wire = [{"pitch": 36, "start": 0.0, "duration": 0.25, "velocity": 100},
            {"pitch": 300, "start": 1.0, "duration": 0.25, "velocity": 100}]
    stub.answer(stub.last("generate"), patterns=[{"seed": 7, "notes": wire}])
    host.tick()
    assert not host.slot(0).has_clip
    assert host.c_instance.status == "MidiDrumiGen: the daemon sent notes Live cannot use — details in Live's Log.txt"
    assert any("pitch must be 0..127" in line for line in host.c_instance.log)


@pytest.mark.parametrize("start, said", [(4.0, "1 notes start outside the clip's 4 beats"),
                                         (5.5, "1 notes start outside the clip's 4 beats"),
                                         (-0.5, "note start must be 0 to 1e+06 beats, got -0.5")])
def test_an_answer_with_notes_outside_the_clip_leaves_the_clip_as_it_was(
    host: LiveHost, stub: StubClient, start: float, said: str
) -> None:
    """Checked before anything is removed: humanize would otherwise have deleted a note played in
    while the daemon worked, then been refused the move of a note past the clip's end."""
    slot = host.slot(1)
    clip = make_clip(slot, 4.0, [(36, 0.0), (38, 1.0)])
    host.select(slot)
    press(host, "humanize")
    request = stub.last("humanize")
    clip.add_new_notes([Live.Clip.MidiNoteSpecification(42, 2.0, 0.25, 90.0)])  # played in meanwhile
    stub.answer(request, patterns=[hits((36, 0.01), (38, start))])
    host.tick()
    assert [n[:2] for n in clip_notes(clip)] == [(36, 0.0), (38, 1.0), (42, 2.0)]
    assert host.c_instance.status == "MidiDrumiGen: the daemon sent notes Live cannot use — details in Live's Log.txt"
    assert any(said in line for line in host.c_instance.log)


def test_waiting_is_reported_once_a_second(host: LiveHost, stub: StubClient, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(controller_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    host.select(host.slot(0))
    press(host, "generate")
    shown = len(host.c_instance.messages)
    host.tick()
    clock[0] += 1.2
    host.tick()
    host.tick()
    clock[0] += 1.0
    stub.connected = False
    host.tick()
    assert host.c_instance.messages[shown:] == [
        "MidiDrumiGen: generating funk 4 bars 120 BPM… 1 s",
        "MidiDrumiGen: waiting for the daemon… 2 s",
    ]


def test_a_control_changed_while_waiting_is_readable_and_a_refresh_keeps_the_busy_light(
    host: LiveHost, stub: StubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(controller_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    host.select(host.slot(0))
    press(host, "generate")
    clock[0] += 1.2
    press(host, "next_style")
    said = host.c_instance.status
    host.tick()
    assert host.c_instance.status == said and said.startswith("MidiDrumiGen: style ")  # not the ticker, yet
    clock[0] += 2.0
    host.tick()
    assert host.c_instance.status == "MidiDrumiGen: generating funk 4 bars 120 BPM… 3 s"
    host.script.refresh_state()  # Live resends the LEDs mid-request
    assert host.c_instance.midi_out[-len(GENERIC):][list(GENERIC).index("generate")] == (0xBF, 102, 0)  # still busy


def test_the_daemon_is_asked_what_it_is_and_its_styles_replace_the_fallback(host: LiveHost, stub: StubClient) -> None:
    stub.answer(stub.last("info"), version="0.1.0", protocol=2, model="m.pt", device="cpu")
    stub.answer(stub.last("styles"), styles=["funk", "bossa"], drummers=[], time_signatures=[[4, 4]], kits=["gm"])
    host.tick()
    mismatch = "MidiDrumiGen: the daemon speaks protocol 2, this script 1 — update MidiDrumiGen"
    assert mismatch in host.c_instance.messages
    press(host, "next_style")
    assert host.c_instance.status == "MidiDrumiGen: style bossa (2 of 2)"


def test_a_style_learned_while_live_runs_is_offered_from_the_next_style_press(host: LiveHost, stub: StubClient) -> None:
    """The styles were asked for once, at start: a style learned afterwards never came."""
    stub.answer(stub.last("styles"), styles=["funk", "bossa"], drummers=[], time_signatures=[[4, 4]], kits=["gm"])
    host.tick()
    asked = stub.ops().count("styles")
    press(host, "next_style")
    press(host, "next_style")  # asked once while an answer is due
    assert host.c_instance.status == "MidiDrumiGen: style funk (1 of 2)"
    assert stub.ops().count("styles") == asked + 1
    stub.answer(stub.last("styles"), styles=["funk", "bossa", "my-dub"], drummers=[], time_signatures=[[4, 4]],
                kits=["gm"])
    host.tick()
    press(host, "previous_style")
    assert host.c_instance.status == "MidiDrumiGen: style my-dub (3 of 3)"
    assert sum(line.startswith("MidiDrumiGen: styles:") for line in host.c_instance.log) == 2  # when it changed


def test_a_reply_live_refuses_to_write_does_not_lose_the_others_of_its_tick(
    host: LiveHost, stub: StubClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    host.select(host.slot(0))
    press(host, "generate")

    def refuse(self, length):  # how Boost.Python refuses a call it cannot convert
        raise TypeError("Python argument types in ClipSlot.create_clip did not match C++ signature")

    monkeypatch.setattr(Live.ClipSlot.ClipSlot, "create_clip", refuse)
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    stub.answer(stub.last("styles"), styles=["funk", "bossa"], drummers=[], time_signatures=[[4, 4]], kits=["gm"])
    host.tick()
    assert any("handling the reply to request" in line and "C++ signature" in line for line in host.c_instance.log)
    assert not host.slot(0).has_clip
    press(host, "next_style")  # the styles reply in the same tick was taken
    assert host.c_instance.status == "MidiDrumiGen: style bossa (2 of 2)"


def test_two_hundred_notes_are_written_whole_on_reply_and_on_variation_change(host: LiveHost,
                                                                             stub: StubClient) -> None:
    """The tick that applies a reply, and a local variation change, each write all 200 notes
    (benchmarks/bench_live_script.py times them)."""
    many = [hits(*[(36 + i % 12, i * 0.0625 + v, 64 + i % 60) for i in range(200)]) for v in range(2)]
    for index in range(4):
        slot = host.slot(index)
        host.select(slot)
        press(host, "generate")
        stub.answer(stub.last("generate"), patterns=many)
        host.tick()
        assert sorted(n.start_time for n in slot.clip.get_all_notes_extended())[0] == 0.0
        press(host, "next_variation")
        starts = sorted(n.start_time for n in slot.clip.get_all_notes_extended())
        assert len(starts) == 200 and starts[0] == 1.0  # the second pattern replaced the first, whole


def _users_clip(slot: Live.ClipSlot.ClipSlot) -> Live.Clip.Clip:
    clip = slot.create_clip(8.0)
    clip.name = "my beat"
    clip.add_new_notes([Live.Clip.MidiNoteSpecification(60, 1.0, 0.5, 100.0)])
    return clip


def test_a_clip_the_user_puts_in_the_slot_meanwhile_is_never_written_over(host: LiveHost, stub: StubClient) -> None:
    """Recorded or drawn while the daemon worked: the answer to generate is not written over it."""
    slot = host.slot(0)
    host.select(slot)
    press(host, "generate")
    clip = _users_clip(slot)
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0))])
    host.tick()
    assert clip.name == "my beat" and clip_notes(clip) == [(60, 1.0, 100.0)]
    assert host.c_instance.status == "MidiDrumiGen: another clip is in the slot now — nothing written over it"


def test_next_variation_on_a_clip_that_replaced_the_answers_asks_for_variations_of_it(
    host: LiveHost, stub: StubClient
) -> None:
    """The last answer's patterns cycle only in the clip they went into; in the user's new clip
    the button does what it does on any clip: it asks for variations of that clip."""
    slot = host.slot(0)
    host.select(slot)
    press(host, "generate")
    stub.answer(stub.last("generate"), patterns=[hits((36, 0.0)), hits((38, 1.0))])
    host.tick()
    slot.delete_clip()
    clip = _users_clip(slot)
    press(host, "next_variation")
    assert clip.name == "my beat" and clip_notes(clip) == [(60, 1.0, 100.0)]
    assert stub.last("variation").fields["notes"][0]["pitch"] == 60


def test_a_fill_leaves_the_bars_it_keeps_untouched_in_live(host: LiveHost, stub: StubClient) -> None:
    """The answer holds the other bars exactly as sent: those notes stay the clip's own, with their
    ids and release velocities, rather than being removed and added again."""
    slot = host.slot(1)
    clip = slot.create_clip(8.0)
    kept_ids = clip.add_new_notes([Live.Clip.MidiNoteSpecification(36, 0.0, 0.25, 100.0, release_velocity=30.0),
                                   Live.Clip.MidiNoteSpecification(42, 0.5, 0.25, 80.4, release_velocity=30.0)])
    clip.add_new_notes([Live.Clip.MidiNoteSpecification(38, 5.0, 0.25, 90.0)])  # in the bar the fill replaces
    host.select(slot)
    press(host, "fill")
    request = stub.last("fill")
    sent = [Note.from_wire(n) for n in request.fields["notes"]]
    stub.answer(request, patterns=[{"seed": 7, "packed": pack_notes(sent[:2] + [Note(45, 4.5, 0.25, 100),
                                                                                 Note(43, 7.0, 0.25, 110)])}])
    host.tick()
    notes = {n.note_id: n for n in clip.get_all_notes_extended()}
    assert set(kept_ids) <= set(notes) and {notes[i].release_velocity for i in kept_ids} == {30.0}
    assert notes[kept_ids[1]].velocity == 80.4  # as the user set it, not the 80 sent
    assert sorted((n.pitch, n.start_time) for n in notes.values()) == [(36, 0.0), (42, 0.5), (43, 7.0), (45, 4.5)]
    host.song.undo()
    assert sorted((n.pitch, n.start_time) for n in clip.get_all_notes_extended()) == [(36, 0.0), (38, 5.0), (42, 0.5)]
