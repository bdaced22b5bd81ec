"""Fake Live.Clip: a Session clip with the Live 11+ notes API (MidiNoteSpecification, note ids)."""

from __future__ import annotations

import itertools
from typing import NamedTuple

from Live._lom import Deletable, Listenable, Model, boost_args, checked_signature, listenable


class _Stored(NamedTuple):
    pitch: int
    start_time: float
    duration: float
    velocity: float
    mute: bool
    probability: float
    velocity_deviation: float
    release_velocity: float


class MidiNoteSpecification:
    """The data for one new note; validated like Live does when it is built."""

    def __init__(
        self,
        pitch: int,
        start_time: float,
        duration: float,
        velocity: float = 100.0,
        mute: bool = False,
        probability: float = 1.0,
        velocity_deviation: float = 0.0,
        release_velocity: float = 64.0,
    ) -> None:
        if type(pitch) is not int:  # Boost.Python refuses a float where C++ takes an int
            raise TypeError(f"pitch must be an int, got {type(pitch).__name__}")
        for name, value in (("start_time", start_time), ("duration", duration), ("velocity", velocity),
                            ("probability", probability), ("velocity_deviation", velocity_deviation),
                            ("release_velocity", release_velocity)):  # fmt: skip
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise TypeError(f"{name} must be a number, got {type(value).__name__}")
        if not 0 <= pitch <= 127:
            raise ValueError(f"pitch {pitch} out of range 0..127")
        if not duration > 0:
            raise ValueError("duration must be greater than 0")
        if not 0 <= velocity <= 127 or not 0 <= release_velocity <= 127:
            raise ValueError("velocity out of range 0..127")
        if not 0.0 <= probability <= 1.0:
            raise ValueError("probability out of range 0..1")
        if not -127.0 <= velocity_deviation <= 127.0:
            raise ValueError("velocity_deviation out of range -127..127")
        self._stored = _Stored(pitch, float(start_time), float(duration), float(velocity), bool(mute),
                               float(probability), float(velocity_deviation), float(release_velocity))  # fmt: skip


class MidiNote:
    """A note as Live hands it out: a detached copy with its note_id."""

    def __init__(self, note_id: int, stored: _Stored) -> None:
        self.note_id = note_id
        (self.pitch, self.start_time, self.duration, self.velocity, self.mute, self.probability,
         self.velocity_deviation, self.release_velocity) = stored  # fmt: skip


class MidiNoteVector(list):
    """A container for holding MIDI notes from Live."""


@listenable("name", "notes", "loop_start", "loop_end", "end_marker", "start_marker", "looping",
            "signature_numerator", "signature_denominator")
class Clip(Deletable, Listenable):
    """A clip in a ClipSlot (Session) or on a Track (Arrangement): Live's doc, "in an Arrangement
    or the Session, depending on the Track (Slot) it lives in"; MIDI unless built as audio."""

    def __init__(self, model: Model, parent: object, length: float, midi: bool = True) -> None:
        self._model = model
        self._slot = parent  # its ClipSlot, or its Track for an Arrangement clip
        self._midi = midi
        self._name = ""
        self._looping = True
        self._loop_start, self._loop_end = 0.0, float(length)
        self._start_marker, self._end_marker = 0.0, float(length)
        track = parent if hasattr(parent, "clip_slots") else parent.canonical_parent
        song = track.canonical_parent  # a new clip takes the song's meter
        self._signature_numerator, self._signature_denominator = song.signature_numerator, song.signature_denominator
        self._notes: dict[int, _Stored] = {}
        self._ids = itertools.count(1)

    # Properties from live12-api-extract.txt.

    @property
    def canonical_parent(self) -> object:
        return self._slot

    @property
    def is_midi_clip(self) -> bool:
        return self._midi

    @property
    def length(self) -> float:
        """Read-only in Live: the loop length when looping, else end minus start marker."""
        if self._looping:
            return self._loop_end - self._loop_start
        return self._end_marker - self._start_marker

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        boost_args("Clip.name", value=(str, value))
        self._set("name", value)

    @property
    def looping(self) -> bool:
        return self._looping

    @looping.setter
    def looping(self, value: bool) -> None:
        boost_args("Clip.looping", value=(bool, value))
        self._set("looping", value)

    @property
    def loop_start(self) -> float:
        return self._loop_start

    @loop_start.setter
    def loop_start(self, value: float) -> None:
        if not value < self._loop_end:
            raise RuntimeError("LoopStart behind LoopEnd")
        self._set("loop_start", float(value))

    @property
    def loop_end(self) -> float:
        return self._loop_end

    @loop_end.setter
    def loop_end(self, value: float) -> None:
        if not value > self._loop_start:
            raise RuntimeError("LoopEnd before LoopStart")
        self._set("loop_end", float(value))

    @property
    def start_marker(self) -> float:
        return self._start_marker

    @start_marker.setter
    def start_marker(self, value: float) -> None:
        if not value < self._end_marker:
            raise RuntimeError("StartMarker behind EndMarker")
        self._set("start_marker", float(value))

    @property
    def end_marker(self) -> float:
        return self._end_marker

    @end_marker.setter
    def end_marker(self, value: float) -> None:
        if not value > self._start_marker:
            raise RuntimeError("EndMarker before StartMarker")
        self._set("end_marker", float(value))

    @property
    def signature_numerator(self) -> int:
        return self._signature_numerator

    @signature_numerator.setter
    def signature_numerator(self, value: int) -> None:
        self._set("signature_numerator", checked_signature(value, self._signature_denominator)[0])

    @property
    def signature_denominator(self) -> int:
        return self._signature_denominator

    @signature_denominator.setter
    def signature_denominator(self, value: int) -> None:
        self._set("signature_denominator", checked_signature(self._signature_numerator, value)[1])

    # The Live 11+ notes API.

    def add_new_notes(self, specifications: object) -> tuple[int, ...]:
        self._require_midi("add_new_notes")
        specs = list(specifications)  # any iterable, as Live accepts
        for spec in specs:
            if not isinstance(spec, MidiNoteSpecification):
                raise TypeError("add_new_notes expects Live.Clip.MidiNoteSpecification objects")
        self._change_notes("add_new_notes")
        ids = []
        for spec in specs:
            note_id = next(self._ids)
            self._notes[note_id] = spec._stored
            ids.append(note_id)
        self._notify("notes")
        return tuple(ids)

    def get_notes_extended(
        self, from_pitch: int, pitch_span: int, from_time: float, time_span: float
    ) -> MidiNoteVector:
        self._require_midi("get_notes_extended")
        _range_args("Clip.get_notes_extended", from_pitch, pitch_span, from_time, time_span)
        return MidiNoteVector(
            MidiNote(i, n) for i, n in self._notes.items() if _in_range(n, from_pitch, pitch_span, from_time, time_span)
        )

    def get_all_notes_extended(self) -> MidiNoteVector:
        self._require_midi("get_all_notes_extended")
        return MidiNoteVector(MidiNote(i, n) for i, n in self._notes.items())

    def get_notes_by_id(self, note_ids: object) -> MidiNoteVector:
        """The notes matching the given ids, in the clip's order, not the order asked. What Live
        does with an id that matches no note is not documented; here it is left out."""
        self._require_midi("get_notes_by_id")
        wanted = set(note_ids)
        return MidiNoteVector(MidiNote(i, n) for i, n in self._notes.items() if i in wanted)

    def apply_note_modifications(self, notes: object) -> None:
        """Change existing notes, matched by note_id, to the given ones, keeping everything else
        they carry. It takes a MidiNoteVector, as its signature says, and every note must be in
        the clip (Live's doc: "it must not contain any notes that are not present in the clip")."""
        self._require_midi("apply_note_modifications")
        if not isinstance(notes, MidiNoteVector):
            raise TypeError("apply_note_modifications expects a Live.Clip.MidiNoteVector")
        for note in notes:
            if not isinstance(note, MidiNote):
                raise TypeError("apply_note_modifications expects Live.Clip.MidiNote objects")
            if note.note_id not in self._notes:
                raise RuntimeError(f"apply_note_modifications: no note with id {note.note_id} in the clip")
        changed = {note.note_id: MidiNoteSpecification(  # validated as a new note would be
            note.pitch, note.start_time, note.duration, note.velocity, note.mute, note.probability,
            note.velocity_deviation, note.release_velocity)._stored for note in notes}
        self._change_notes("apply_note_modifications")
        self._notes.update(changed)
        self._notify("notes")

    def remove_notes_extended(self, from_pitch: int, pitch_span: int, from_time: float, time_span: float) -> None:
        self._require_midi("remove_notes_extended")
        _range_args("Clip.remove_notes_extended", from_pitch, pitch_span, from_time, time_span)
        doomed = [i for i, n in self._notes.items() if _in_range(n, from_pitch, pitch_span, from_time, time_span)]
        self._change_notes("remove_notes_extended")
        for note_id in doomed:
            del self._notes[note_id]
        self._notify("notes")

    def remove_notes_by_id(self, ids: object) -> None:
        """Delete all notes matching the given note IDs (ids that match none are ignored)."""
        self._require_midi("remove_notes_by_id")
        doomed = [note_id for note_id in ids if note_id in self._notes]
        self._change_notes("remove_notes_by_id")
        for note_id in doomed:
            del self._notes[note_id]
        self._notify("notes")

    # Helpers.

    def _set(self, name: str, value: object) -> None:
        old = getattr(self, "_" + name)

        def revert() -> None:
            setattr(self, "_" + name, old)

        self._model.change(f"Clip.{name}", revert)
        setattr(self, "_" + name, value)
        self._notify(name)

    def _change_notes(self, what: str) -> None:
        snapshot = dict(self._notes)

        def revert() -> None:
            self._notes = snapshot

        self._model.change(f"Clip.{what}", revert)

    def _require_midi(self, what: str) -> None:
        if not self._midi:
            raise RuntimeError(f"{what}: not a MIDI clip")


def _range_args(what: str, from_pitch: int, pitch_span: int, from_time: float, time_span: float) -> None:
    boost_args(what, from_pitch=(int, from_pitch), pitch_span=(int, pitch_span), from_time=(float, from_time),
               time_span=(float, time_span))  # fmt: skip


def _in_range(note: _Stored, from_pitch: int, pitch_span: int, from_time: float, time_span: float) -> bool:
    return from_pitch <= note.pitch < from_pitch + pitch_span and from_time <= note.start_time < from_time + time_span
