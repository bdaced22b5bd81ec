"""Fake Live.Track: a MIDI or audio track with its Session clip slots and Arrangement clips."""

from __future__ import annotations

from Live._lom import Deletable, Listenable, Model, boost_args, listenable
from Live.Clip import Clip
from Live.ClipSlot import ClipSlot


@listenable("name", "is_frozen")
class Track(Deletable, Listenable):
    """A player track; `midi` decides whether its slots can create MIDI clips."""

    def __init__(self, model: Model, song: object, name: str, midi: bool, slots: int) -> None:
        self._model = model
        self._song = song
        self._name = name
        self._midi = midi
        self._frozen = False  # Freeze is a user's menu command, with no API to do it: tests set this
        self._slots = tuple(ClipSlot(model, self) for _ in range(slots))
        self._arrangement: list[Clip] = []  # tests reach them here: the extract lists no getter

    def _mark_dead(self, dead: bool = True) -> None:
        super()._mark_dead(dead)
        for slot in self._slots:
            slot._mark_dead(dead)

    @property
    def canonical_parent(self) -> object:
        return self._song

    @property
    def clip_slots(self) -> tuple[ClipSlot, ...]:
        return self._slots

    def create_midi_clip(self, start_time: float, length: float) -> None:
        """Live: "Creates an empty MIDI clip and inserts it into the arrangement at the specified
        time. Throws an error when called on a non-MIDI track or a frozen track, when the
        specified time is outside the [0., 1576800.] range" (or while recording into the track,
        which the fake does not model)."""
        boost_args("Track.create_midi_clip", start_time=(float, start_time), length=(float, length))
        if not self._midi or self._frozen:
            raise RuntimeError("Can only create MIDI clips in unfrozen MIDI tracks")
        if not 0.0 <= start_time <= 1576800.0:
            raise RuntimeError("Time out of range")
        clip = Clip(self._model, self, length)

        def revert() -> None:
            self._arrangement.remove(clip)
            clip._mark_dead()

        self._model.change("Track.create_midi_clip", revert)
        self._arrangement.append(clip)

    @property
    def has_midi_input(self) -> bool:
        return self._midi

    @property
    def is_frozen(self) -> bool:
        """Live's doc: "No changes should be applied to the track's devices or clips while it is
        frozen" (it does not say Live refuses them): the fake lets them through, as Live may."""
        return self._frozen

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        boost_args("Track.name", value=(str, value))
        old = self._name
        self._model.change("Track.name", lambda: setattr(self, "_name", old))
        self._name = value
        self._notify("name")
