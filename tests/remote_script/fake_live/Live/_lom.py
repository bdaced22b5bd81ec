"""The rules every fake Live object obeys, kept in one place (private to the fake).

Live enforces four things a Remote Script trips over: the Live Object Model may only be changed
from Live's main thread (the thread that created the Song here), it may not be changed from
inside a listener callback ("Changes cannot be triggered by notifications"), every change
lands in the undo history, grouped by begin_undo_step/end_undo_step, and an object the user
deletes leaves the script holding a dead handle (`Deletable`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

NOTIFICATION_ERROR = "Changes cannot be triggered by notifications. You will need to defer your response."


class Model:
    """The state one Song shares with all its objects: owner thread, notifications, undo."""

    def __init__(self) -> None:
        self.thread = threading.get_ident()
        self.notifying = 0
        self.undo = UndoHistory()

    def check_write(self, what: str) -> None:
        if threading.get_ident() != self.thread:
            raise RuntimeError(f"{what}: the Live Object Model may only be changed from Live's main thread")
        if self.notifying:
            raise RuntimeError(NOTIFICATION_ERROR)

    def change(self, what: str, undo: Callable[[], None]) -> None:
        """Check that a change is allowed, then remember how to revert it."""
        self.check_write(what)
        self.undo.record(undo)


class UndoHistory:
    """Undo steps as lists of revert callables; changes outside an explicit step are one each."""

    def __init__(self) -> None:
        self.steps: list[list[Callable[[], None]]] = []
        self.depth = 0
        self._open: list[Callable[[], None]] = []
        self._reverting = False

    def begin(self) -> None:
        if self.depth == 0:
            self._open = []
        self.depth += 1

    def end(self) -> None:
        """Whether Live keeps a step with no change in it is not documented: here it is kept, an
        entry in the Edit menu that undoes nothing, so a script that opens one needlessly shows."""
        if self.depth == 0:
            return
        self.depth -= 1
        if self.depth == 0:
            self.steps.append(self._open)
            self._open = []

    def record(self, revert: Callable[[], None]) -> None:
        if self._reverting:
            return
        if self.depth:
            self._open.append(revert)
        else:
            self.steps.append([revert])

    def undo(self) -> None:
        if not self.steps:
            return
        step = self.steps.pop()
        self._reverting = True
        try:
            for revert in reversed(step):
                revert()
        finally:
            self._reverting = False


class Deletable:
    """A Python handle on a Live object the user can delete (a track, a clip slot, a clip).

    Live's Python objects are weak handles on its C++ objects: once Live deletes the object, its
    handle compares equal to None (Ableton's own scripts test `liveobj_valid(obj)` as
    `obj != None`, never `obj is None`) and using it fails. Here that failure is a RuntimeError
    from any public attribute. Whether Live's undo of a deletion brings an old handle back is
    not documented; this fake revives it, and a script must rely on neither.
    """

    _dead = False

    def _mark_dead(self, dead: bool = True) -> None:
        self._dead = dead

    def __getattribute__(self, name: str) -> object:
        if name.startswith("_") or not object.__getattribute__(self, "_dead"):
            return object.__getattribute__(self, name)
        raise RuntimeError(f"{type(self).__name__}.{name}: the object was deleted")

    def __eq__(self, other: object) -> bool:
        return other is None if self._dead else self is other

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = object.__hash__


class Listenable:
    """Listener plumbing; `listenable(cls, names)` adds Live's add/remove/has methods."""

    _model: Model

    def _listeners(self, name: str) -> list[Callable[[], None]]:
        table = self.__dict__.setdefault("_listener_table", {})
        return table.setdefault(name, [])

    def _notify(self, name: str) -> None:
        self._model.notifying += 1
        try:
            for listener in list(self._listeners(name)):
                listener()
        finally:
            self._model.notifying -= 1


def listenable(*names: str) -> Callable[[type], type]:
    """Class decorator: `add_<name>_listener`, `remove_<name>_listener`, `<name>_has_listener`."""

    def decorate(cls: type) -> type:
        for name in names:
            setattr(cls, f"add_{name}_listener", _adder(name))
            setattr(cls, f"remove_{name}_listener", _remover(name))
            setattr(cls, f"{name}_has_listener", _tester(name))
        return cls

    return decorate


def _adder(name: str) -> Callable:
    def add(self: Listenable, listener: Callable[[], None]) -> None:
        if listener in self._listeners(name):
            raise RuntimeError(f"Listener already connected to property {name!r}")
        self._listeners(name).append(listener)

    return add


def _remover(name: str) -> Callable:
    def remove(self: Listenable, listener: Callable[[], None]) -> None:
        if listener not in self._listeners(name):
            raise RuntimeError(f"Listener not connected to property {name!r}")
        self._listeners(name).remove(listener)

    return remove


def _tester(name: str) -> Callable:
    def has(self: Listenable, listener: Callable[[], None]) -> bool:
        return listener in self._listeners(name)

    return has


def boost_args(what: str, **args: tuple[type, object]) -> None:
    """Boost.Python's argument matching, which Live's API goes through before Live sees a call:
    an (int) slot takes an int (a bool is one), a (float) slot an int or a float, a (str) slot a
    str, a (bool) slot a bool. Anything else is an ArgumentError, a TypeError."""
    for name, (kind, value) in args.items():
        ok = {int: isinstance(value, int), float: isinstance(value, (int, float)), str: isinstance(value, str),
              bool: isinstance(value, bool)}[kind]  # fmt: skip
        if not ok:
            raise TypeError(f"Python argument types in {what} did not match the C++ signature: "
                            f"{name} is ({kind.__name__}), got {type(value).__name__}")  # fmt: skip


SIGNATURE_DENOMINATORS = (1, 2, 4, 8, 16)


def checked_signature(numerator: int, denominator: int) -> tuple[int, int]:
    """A song's or a clip's meter as Live accepts it (ValueError otherwise)."""
    if not 1 <= numerator <= 99:
        raise ValueError(f"signature numerator {numerator} out of range 1..99")
    if denominator not in SIGNATURE_DENOMINATORS:
        raise ValueError(f"signature denominator {denominator} is not one of {SIGNATURE_DENOMINATORS}")
    return int(numerator), int(denominator)
