"""Fake Live.ClipSlot: one cell of the Session matrix."""

from __future__ import annotations

from Live._lom import Deletable, Listenable, Model, boost_args, listenable
from Live.Clip import Clip


@listenable("has_clip")
class ClipSlot(Deletable, Listenable):
    """A Session slot that may hold one clip."""

    def __init__(self, model: Model, track: object) -> None:
        self._model = model
        self._track = track
        self._clip: Clip | None = None

    def _mark_dead(self, dead: bool = True) -> None:
        super()._mark_dead(dead)
        if self._clip is not None:
            self._clip._mark_dead(dead)

    @property
    def canonical_parent(self) -> object:
        return self._track

    @property
    def has_clip(self) -> bool:
        return self._clip is not None

    @property
    def clip(self) -> Clip | None:
        return self._clip

    def create_clip(self, length: float) -> Clip:
        """Live throws on non-empty slots, slots of non-MIDI tracks and non-positive lengths."""
        boost_args("ClipSlot.create_clip", length=(float, length))
        if self._clip is not None:
            raise RuntimeError("Cannot create a clip in a non-empty slot")
        if not self._track.has_midi_input:
            raise RuntimeError("Can only create MIDI clips in MIDI tracks")
        if not length > 0:
            raise RuntimeError("Clip length must be greater than 0")
        clip = Clip(self._model, self, length)

        def revert() -> None:
            self._put(None)
            clip._mark_dead()

        self._model.change("ClipSlot.create_clip", revert)
        self._put(clip)
        return clip

    def delete_clip(self) -> None:
        if self._clip is None:
            raise RuntimeError("Cannot delete a clip from an empty slot")
        clip = self._clip

        def revert() -> None:
            clip._mark_dead(False)
            self._put(clip)

        self._model.change("ClipSlot.delete_clip", revert)
        self._put(None)
        clip._mark_dead()

    def _put(self, clip: Clip | None) -> None:
        self._clip = clip
        self._notify("has_clip")
