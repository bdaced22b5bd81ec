"""Fake Live.Song: tempo, meter, tracks, scenes, the Session view and the undo history."""

from __future__ import annotations

from Live._lom import Listenable, Model, checked_signature, listenable
from Live.ClipSlot import ClipSlot
from Live.Scene import Scene
from Live.Track import Track

TEMPO_RANGE = (20.0, 999.0)  # what Live's tempo field accepts


@listenable("tempo", "signature_numerator", "signature_denominator", "is_playing")
class Song(Listenable):
    """A Live Set. Build it on the thread that plays Live's main thread in a test."""

    @listenable("selected_track", "detail_clip")
    class View(Listenable):
        """The Session/Arranger view: what is selected and highlighted."""

        def __init__(self, model: Model, song: Song) -> None:
            self._model = model
            self._song = song
            self._slot: ClipSlot | None = None
            self._shown: object | None = None  # a clip put in the Detail View by `detail_clip`

        @property
        def canonical_parent(self) -> Song:
            return self._song

        @property
        def highlighted_clip_slot(self) -> ClipSlot | None:
            return self._slot

        @highlighted_clip_slot.setter
        def highlighted_clip_slot(self, slot: ClipSlot | None) -> None:
            self._model.check_write("Song.View.highlighted_clip_slot")  # selection is not undoable
            self._move(slot)

        def _move(self, slot: ClipSlot | None) -> None:
            """Also how the highlight leaves a slot the user deletes. Live moves it somewhere
            valid; where is not documented, and the fake's choice (the slot that took the
            deleted one's place) only keeps it valid: no script test depends on where."""
            self._slot, self._shown = slot, None
            self._notify("selected_track")
            self._notify("detail_clip")

        @property
        def selected_track(self) -> Track | None:
            return None if self._slot is None else self._slot.canonical_parent

        @property
        def detail_clip(self) -> object:
            """The highlighted slot's clip, unless another was put in view since (in Live, an
            Arrangement clip opened in Arrangement View; the fake has no Arrangement, so a test
            shows another Session clip instead)."""
            if self._shown is not None:
                return self._shown
            return None if self._slot is None else self._slot.clip

        @detail_clip.setter
        def detail_clip(self, clip: object) -> None:
            """Live: "Get/Set the Clip that is currently visible in Lives Detailview". What else
            moves with it in Live is not documented; in the fake, nothing."""
            self._model.check_write("Song.View.detail_clip")
            self._shown = clip
            self._notify("detail_clip")

    def __init__(self, tempo: float = 120.0, numerator: int = 4, denominator: int = 4) -> None:
        self._model = Model()
        self._tempo = float(tempo)
        self._numerator = numerator
        self._denominator = denominator
        self._tracks: list[Track] = []
        self._scenes: list[Scene] = []
        self._view = Song.View(self._model, self)

    def _add_track(self, name: str, midi: bool = True, slots: int = 8) -> Track:
        """Test set-up (Live's create_midi_track is not part of this fake). Every track has a
        slot for every scene, as in Live."""
        if self._tracks and slots != len(self._tracks[0]._slots):
            raise ValueError(f"this set has {len(self._tracks[0]._slots)} scenes, not {slots}")
        track = Track(self._model, self, name, midi, slots)
        self._tracks.append(track)
        if not self._scenes:
            self._scenes = [Scene(self._model, self) for _ in range(slots)]
        return track

    @property
    def tracks(self) -> tuple[Track, ...]:
        return tuple(self._tracks)

    @property
    def scenes(self) -> tuple[Scene, ...]:
        return tuple(self._scenes)

    def delete_track(self, index: int) -> None:
        """Delete the track with the given index (an exception if there is none); the script's
        handles on it, its slots and their clips go dead (_lom.Deletable)."""
        if not 0 <= index < len(self._tracks):
            raise RuntimeError(f"track index {index} out of range")
        self._model.check_write("Song.delete_track")
        track, tracks = self._tracks[index], list(self._tracks)

        def revert() -> None:
            self._tracks[:] = tracks
            track._mark_dead(False)

        self._model.change("Song.delete_track", revert)
        del self._tracks[index]
        track._mark_dead()
        lit = self._view._slot
        if lit is not None and lit._track is track:  # to the same scene of the track now in its place
            row = next(i for i, slot in enumerate(track._slots) if slot is lit)
            near = self._tracks[min(index, len(self._tracks) - 1)] if self._tracks else None
            self._view._move(None if near is None else near._slots[row])

    def delete_scene(self, index: int) -> None:
        """Delete the scene with the given index: its slot in every track goes dead, and the
        scenes below move up. A set keeps at least one scene, as Live's does."""
        scenes = len(self._tracks[0]._slots) if self._tracks else 0
        if not 0 <= index < scenes:
            raise RuntimeError(f"scene index {index} out of range")
        if scenes == 1:
            raise RuntimeError("cannot delete the last scene")
        self._model.check_write("Song.delete_scene")
        rows, scenes, scene = [track._slots for track in self._tracks], list(self._scenes), self._scenes[index]

        def revert() -> None:
            for track, slots in zip(self._tracks, rows):
                track._slots = slots
                slots[index]._mark_dead(False)
            self._scenes[:] = scenes
            scene._mark_dead(False)

        self._model.change("Song.delete_scene", revert)
        lit = self._view._slot
        del self._scenes[index]
        scene._mark_dead()
        for track in self._tracks:
            track._slots[index]._mark_dead()
            track._slots = track._slots[:index] + track._slots[index + 1 :]
        if lit is not None and lit._dead:  # to the same track's slot of the scene now in its place
            self._view._move(lit._track._slots[min(index, len(lit._track._slots) - 1)])

    @property
    def view(self) -> View:
        return self._view

    @property
    def tempo(self) -> float:
        return self._tempo

    @tempo.setter
    def tempo(self, value: float) -> None:
        if not TEMPO_RANGE[0] <= value <= TEMPO_RANGE[1]:
            raise ValueError(f"tempo {value} out of range {TEMPO_RANGE[0]:g}..{TEMPO_RANGE[1]:g}")
        self._set("tempo", float(value))

    @property
    def signature_numerator(self) -> int:
        return self._numerator

    @signature_numerator.setter
    def signature_numerator(self, value: int) -> None:
        self._set("numerator", checked_signature(value, self._denominator)[0], "signature_numerator")

    @property
    def signature_denominator(self) -> int:
        return self._denominator

    @signature_denominator.setter
    def signature_denominator(self, value: int) -> None:
        self._set("denominator", checked_signature(self._numerator, value)[1], "signature_denominator")

    @property
    def is_playing(self) -> bool:
        return False

    @property
    def can_undo(self) -> bool:
        return bool(self._model.undo.steps)

    def begin_undo_step(self) -> None:
        self._model.check_write("Song.begin_undo_step")
        self._model.undo.begin()

    def end_undo_step(self) -> None:
        self._model.check_write("Song.end_undo_step")
        self._model.undo.end()

    def undo(self) -> str:
        self._model.check_write("Song.undo")
        self._model.undo.undo()
        return ""

    def _set(self, field: str, value: object, listener: str | None = None) -> None:
        old = getattr(self, "_" + field)

        def revert() -> None:
            setattr(self, "_" + field, old)

        self._model.change(f"Song.{listener or field}", revert)
        setattr(self, "_" + field, value)
        self._notify(listener or field)
