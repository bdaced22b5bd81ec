"""Fake Live.Scene: a row of the Session, with the tempo and meter the song takes when it fires."""

from __future__ import annotations

from Live._lom import Deletable, Listenable, Model, checked_signature, listenable

NOT_SET = -1  # Live's doc: tempo and time signature "return -1 if the scene has no" such property


@listenable("name", "tempo", "tempo_enabled", "time_signature_numerator", "time_signature_denominator")
class Scene(Deletable, Listenable):
    """A scene may set a tempo and a meter of its own. Live's doc says a disabled one reads -1
    and that `time_signature_enabled` can only be read; it does not say whether setting a value
    enables it, so the fake does not, and tests turn a meter on with `_meter_on`."""

    def __init__(self, model: Model, song: object) -> None:
        self._model = model
        self._song = song
        self._name = ""
        self._tempo, self._tempo_on = 120.0, False
        self._meter, self._meter_on = (4, 4), False

    @property
    def canonical_parent(self) -> object:
        return self._song

    @property
    def clip_slots(self) -> tuple:
        row = self._song._scenes.index(self)
        return tuple(track._slots[row] for track in self._song._tracks)

    @property
    def name(self) -> str:
        return self._name

    @property
    def tempo(self) -> float:
        return self._tempo if self._tempo_on else float(NOT_SET)

    @tempo.setter
    def tempo(self, value: float) -> None:
        from Live.Song import TEMPO_RANGE

        if not TEMPO_RANGE[0] <= value <= TEMPO_RANGE[1]:
            raise ValueError(f"tempo {value} out of range {TEMPO_RANGE[0]:g}..{TEMPO_RANGE[1]:g}")
        self._set("_tempo", float(value), "tempo")

    @property
    def tempo_enabled(self) -> bool:
        return self._tempo_on

    @tempo_enabled.setter
    def tempo_enabled(self, value: bool) -> None:
        self._set("_tempo_on", bool(value), "tempo_enabled")

    @property
    def time_signature_enabled(self) -> bool:
        return self._meter_on

    @property
    def time_signature_numerator(self) -> int:
        return self._meter[0] if self._meter_on else NOT_SET

    @time_signature_numerator.setter
    def time_signature_numerator(self, value: int) -> None:
        self._set("_meter", checked_signature(value, self._meter[1]), "time_signature_numerator")

    @property
    def time_signature_denominator(self) -> int:
        return self._meter[1] if self._meter_on else NOT_SET

    @time_signature_denominator.setter
    def time_signature_denominator(self, value: int) -> None:
        self._set("_meter", checked_signature(self._meter[0], value), "time_signature_denominator")

    def _set(self, field: str, value: object, listener: str) -> None:
        old = getattr(self, field)
        self._model.change(f"Scene.{listener}", lambda: setattr(self, field, old))
        setattr(self, field, value)
        self._notify(listener)
