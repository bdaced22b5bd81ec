"""The fake Live is only worth testing against if it is faithful: names from the API dump, Live's rules."""

from __future__ import annotations

import inspect
import re
import threading

import Live
import pytest
from Live._lom import NOTIFICATION_ERROR
from live_docs import FIELD_NOTES, extract_names


def public_names(cls: type, prefix: str) -> list[str]:
    return [f"{prefix}.{name}" for name in vars(cls) if not name.startswith("_")]


FAKE_CLASSES = {
    "Live.Song.Song": Live.Song.Song,
    "Live.Song.Song.View": Live.Song.Song.View,
    "Live.Track.Track": Live.Track.Track,
    "Live.ClipSlot.ClipSlot": Live.ClipSlot.ClipSlot,
    "Live.Scene.Scene": Live.Scene.Scene,
    "Live.Clip.Clip": Live.Clip.Clip,
    "Live.Clip.MidiNote": Live.Clip.MidiNote,
    "Live.MidiMap.MapMode": Live.MidiMap.MapMode,
}


def test_every_public_name_of_the_fake_is_in_the_api_extract() -> None:
    known = extract_names()
    names = [n for prefix, cls in FAKE_CLASSES.items() for n in public_names(cls, prefix)]
    names += [
        f"Live.MidiMap.{n}"
        for n, v in vars(Live.MidiMap).items()
        if inspect.isfunction(v) and v.__module__ == "Live.MidiMap" and not n.startswith("_")
    ]
    names += [f"Live.Clip.{n}" for n in ("Clip", "MidiNote", "MidiNoteSpecification", "MidiNoteVector")]
    missing = sorted(n for n in names if n not in known)
    assert not missing, f"not in live12-api-extract.txt: {missing}"
    assert len(names) > 60  # the check really looked at the classes


def test_midi_note_fields_and_specification_signature_follow_the_docs() -> None:
    note_fields = {n for n in vars(Live.Clip.MidiNote(1, Live.Clip.MidiNoteSpecification(36, 0.0, 0.25)._stored))}
    assert note_fields == {n.rsplit(".", 1)[1] for n in extract_names() if n.startswith("Live.Clip.MidiNote.")}
    documented = ("MidiNoteSpecification(pitch, start_time, duration, velocity=100.0, mute=False, "
                  "probability=1.0, velocity_deviation=0.0, release_velocity=64.0)")  # fmt: skip
    assert documented in re.sub(r"\s+", " ", FIELD_NOTES.read_text())
    params = inspect.signature(Live.Clip.MidiNoteSpecification).parameters
    assert [(p.name, p.default) for p in params.values()] == [
        ("pitch", inspect._empty), ("start_time", inspect._empty), ("duration", inspect._empty),
        ("velocity", 100.0), ("mute", False), ("probability", 1.0), ("velocity_deviation", 0.0),
        ("release_velocity", 64.0),
    ]  # fmt: skip


def song_with_tracks() -> tuple[Live.Song.Song, Live.Track.Track, Live.Track.Track]:
    song = Live.Song.Song()
    return song, song._add_track("Drums", midi=True), song._add_track("Audio", midi=False)


def test_create_clip_raises_on_a_full_slot_an_audio_track_and_a_bad_length() -> None:
    _, drums, audio = song_with_tracks()
    slot = drums.clip_slots[0]
    clip = slot.create_clip(8.0)
    assert slot.has_clip and clip.length == 8.0 and clip.is_midi_clip
    with pytest.raises(RuntimeError, match="non-empty"):
        slot.create_clip(4.0)
    with pytest.raises(RuntimeError, match="MIDI"):
        audio.clip_slots[0].create_clip(4.0)
    with pytest.raises(RuntimeError, match="greater than 0"):
        drums.clip_slots[1].create_clip(0.0)


def test_clip_length_is_read_only_and_loop_markers_stay_ordered() -> None:
    _, drums, _ = song_with_tracks()
    clip = drums.clip_slots[0].create_clip(4.0)
    with pytest.raises(AttributeError):
        clip.length = 8.0
    with pytest.raises(RuntimeError):
        clip.loop_end = 0.0
    clip.loop_end = 16.0
    assert clip.length == 16.0
    clip.looping = False
    assert clip.length == 4.0  # the markers rule when the loop is off


def test_notes_api_adds_reads_and_removes_by_range() -> None:
    _, drums, _ = song_with_tracks()
    clip = drums.clip_slots[0].create_clip(4.0)
    spec = Live.Clip.MidiNoteSpecification
    ids = clip.add_new_notes([spec(36, 0.0, 0.25, 110.0), spec(38, 1.0, 0.25, probability=0.5), spec(42, 3.5, 0.25)])
    assert len(set(ids)) == 3
    snares = clip.get_notes_extended(38, 1, 0.0, 4.0)
    assert [(n.pitch, n.start_time, n.probability) for n in snares] == [(38, 1.0, 0.5)]
    clip.remove_notes_extended(0, 128, 1.0, 3.0)  # notes starting in [1, 4)
    assert [n.pitch for n in clip.get_all_notes_extended()] == [36]
    with pytest.raises(TypeError):
        clip.add_new_notes([(36, 0.0, 0.25, 100, False)])  # legacy tuples are not specifications
    with pytest.raises(TypeError):
        spec(36.0, 0.0, 0.25)  # Boost.Python refuses a float pitch
    with pytest.raises(ValueError):
        spec(36, 0.0, 0.0)


def test_note_modifications_keep_ids_and_what_else_notes_carry_and_refuse_notes_not_in_the_clip() -> None:
    _, drums, _ = song_with_tracks()
    clip = drums.clip_slots[0].create_clip(4.0)
    spec = Live.Clip.MidiNoteSpecification
    kick, snare = clip.add_new_notes([spec(36, 0.0, 0.25, 100.0, release_velocity=30.0), spec(38, 1.0, 0.25)])
    notes = clip.get_notes_by_id([snare, kick])
    assert [n.note_id for n in notes] == [kick, snare]  # in the clip's order
    notes[0].start_time, notes[0].velocity = 0.02, 80.0
    clip.apply_note_modifications(notes)
    (changed,) = clip.get_notes_by_id([kick])
    assert (changed.start_time, changed.velocity, changed.release_velocity) == (0.02, 80.0, 30.0)
    with pytest.raises(TypeError):
        clip.apply_note_modifications(list(notes))  # a MidiNoteVector, as the signature says
    clip.remove_notes_by_id([snare])
    with pytest.raises(RuntimeError):
        clip.apply_note_modifications(notes)  # the snare is gone
    notes[0].velocity = 300.0
    with pytest.raises(ValueError):
        clip.apply_note_modifications(Live.Clip.MidiNoteVector(notes[:1]))


def test_arguments_are_matched_as_boost_python_matches_them() -> None:
    """(int)from_pitch, (float)from_time, a str name, a bool looping: the signatures in
    live12-api-extract.txt. A float where an int goes fails before Live sees the call."""
    _, drums, _ = song_with_tracks()
    clip = drums.clip_slots[0].create_clip(4)  # an int is a (float) too
    clip.get_notes_extended(0, 128, 0, 4)
    for call in (lambda: clip.get_notes_extended(0.0, 128, 0.0, 4.0), lambda: clip.get_notes_extended(0, 128, "0", 4),
                 lambda: clip.remove_notes_extended(0, 128.0, 0.0, 4.0), lambda: drums.clip_slots[1].create_clip("4"),
                 lambda: setattr(clip, "name", None), lambda: setattr(clip, "looping", "no"),
                 lambda: setattr(drums, "name", 3)):  # fmt: skip
        with pytest.raises(TypeError, match="did not match the C.. signature"):
            call()
    assert clip.name == "" and clip.looping and not drums.clip_slots[1].has_clip


def test_changes_only_from_the_thread_that_created_the_song() -> None:
    song, drums, _ = song_with_tracks()
    errors = []

    def elsewhere() -> None:
        try:
            drums.clip_slots[0].create_clip(4.0)
        except RuntimeError as error:
            errors.append(str(error))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert errors and "main thread" in errors[0]
    assert not drums.clip_slots[0].has_clip


def test_changes_from_inside_a_listener_raise() -> None:
    song, drums, _ = song_with_tracks()
    seen = []

    def on_tempo() -> None:
        try:
            drums.clip_slots[0].create_clip(4.0)
        except RuntimeError as error:
            seen.append(str(error))

    song.add_tempo_listener(on_tempo)
    assert song.tempo_has_listener(on_tempo)
    song.tempo = 100.0
    assert seen == [NOTIFICATION_ERROR]
    assert not drums.clip_slots[0].has_clip
    song.remove_tempo_listener(on_tempo)
    drums.clip_slots[0].create_clip(4.0)  # outside the notification it works


def test_undo_reverts_one_step_at_a_time() -> None:
    song, drums, _ = song_with_tracks()
    slot = drums.clip_slots[0]
    song.begin_undo_step()
    clip = slot.create_clip(4.0)
    clip.name = "groove"
    clip.add_new_notes([Live.Clip.MidiNoteSpecification(36, 0.0, 0.25)])
    song.end_undo_step()
    song.tempo = 90.0  # a change of its own, outside any step
    song.undo()
    assert song.tempo == 120.0 and slot.has_clip
    song.undo()
    assert not slot.has_clip
    assert not song.can_undo


def test_deleting_a_track_leaves_dead_handles_that_equal_none_and_moves_the_highlight() -> None:
    song, drums, audio = song_with_tracks()
    slot = drums.clip_slots[2]
    clip = slot.create_clip(4.0)
    song.view.highlighted_clip_slot = slot
    song.delete_track(0)
    assert song.tracks == (audio,)
    for handle in (drums, slot, clip):  # Ableton's liveobj_valid(obj) is `obj != None`
        assert handle == None and not (handle != None)  # noqa: E711
        with pytest.raises(RuntimeError, match="deleted"):
            handle.canonical_parent
    assert song.view.highlighted_clip_slot is audio.clip_slots[2]  # the same scene, the track now in its place
    with pytest.raises(RuntimeError):
        song.delete_track(5)
    song.undo()
    assert song.tracks == (drums, audio) and drums != None and slot.clip is clip and clip.length == 4.0  # noqa: E711


def test_deleting_a_scene_kills_its_slot_in_every_track_and_the_scenes_below_move_up() -> None:
    song, drums, audio = song_with_tracks()
    gone, below = drums.clip_slots[3], drums.clip_slots[4]
    clip = gone.create_clip(4.0)
    song.view.highlighted_clip_slot = gone
    song.delete_scene(3)
    assert gone == None and clip == None and audio.clip_slots[3] is not None  # noqa: E711
    assert drums.clip_slots[3] is below and len(drums.clip_slots) == len(audio.clip_slots) == 7
    assert song.view.highlighted_clip_slot is below
    for _ in range(6):
        song.delete_scene(0)
    with pytest.raises(RuntimeError, match="last scene"):
        song.delete_scene(0)


def test_a_scenes_tempo_and_meter_read_minus_one_until_it_has_them() -> None:
    """Live's doc: "Returns -1 if the scene has no tempo property", and when `tempo_enabled` is
    off; the same for the time signature, whose enabled state can only be read."""
    song, drums, _ = song_with_tracks()
    scene = song.scenes[2]
    assert scene.clip_slots[0] is drums.clip_slots[2] and len(song.scenes) == len(drums.clip_slots)
    assert (scene.tempo, scene.time_signature_numerator, scene.time_signature_denominator) == (-1, -1, -1)
    scene.tempo = 90.0
    assert scene.tempo == -1
    scene.tempo_enabled = True
    assert scene.tempo == 90.0
    scene.time_signature_numerator = 7
    scene.time_signature_denominator = 8
    assert scene.time_signature_numerator == -1 and not scene.time_signature_enabled
    scene._meter_on = True  # set in Live's own UI: no API turns it on
    assert (scene.time_signature_numerator, scene.time_signature_denominator) == (7, 8)
    with pytest.raises(ValueError):
        scene.time_signature_denominator = 3
    song.undo()
    assert (scene.time_signature_numerator, scene.time_signature_denominator) == (7, 4)  # 8 undone, not the refused 3
    song.delete_scene(2)
    assert scene == None and song.scenes[2].clip_slots[0] is drums.clip_slots[2]  # noqa: E711


def test_a_deleted_clip_is_a_dead_handle_until_undone() -> None:
    song, drums, _ = song_with_tracks()
    slot = drums.clip_slots[0]
    clip = slot.create_clip(4.0)
    slot.delete_clip()
    assert clip == None and slot != None  # noqa: E711
    song.undo()
    assert slot.clip is clip and clip.length == 4.0
    song.undo()  # the creation undone: the clip is gone again
    assert clip == None and not slot.has_clip  # noqa: E711


def test_midi_map_forwards_only_with_the_owning_script_handle() -> None:
    handle = Live.MidiMap._new_map(7)
    assert Live.MidiMap.forward_midi_cc(7, handle, 15, 102)
    assert Live.MidiMap.forward_midi_note(7, handle, 0, 36)
    assert Live.MidiMap._forwards(handle) == {("cc", 15, 102), ("note", 0, 36)}
    with pytest.raises(RuntimeError):
        Live.MidiMap.forward_midi_cc(8, handle, 0, 1)
    with pytest.raises(ValueError):
        Live.MidiMap.forward_midi_cc(7, handle, 16, 1)
