"""Fake Live.Track: a MIDI or audio track with its Session clip slots."""

from __future__ import annotations

from Live._lom import Deletable, Listenable, Model, boost_args, listenable
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
