"""Plays Live's part around a Remote Script: c_instance, MIDI map, MIDI in, display ticks.

Live builds the script with `create_instance(c_instance)`, asks it to `build_midi_map`, delivers
only the MIDI messages the map forwards to `receive_midi`, and calls `update_display` about every
100 ms on its main thread. LiveHost does the same, on the thread that built it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import Live
from Live.MidiMap import _forwards, _new_map

SCRIPT_HANDLE = 7351
TICK_S = 0.1  # Live's display tick


class CInstance:
    """The C++ object Live hands a script: the song, the status bar, the log, MIDI out."""

    def __init__(self, song: Live.Song.Song) -> None:
        self._song = song
        self.messages: list[str] = []
        self.log: list[str] = []
        self.midi_out: list[tuple[int, ...]] = []
        self.rebuild_requests = 0

    def song(self) -> Live.Song.Song:
        return self._song

    def handle(self) -> int:
        return SCRIPT_HANDLE

    def show_message(self, message: str) -> None:
        if not isinstance(message, str):
            raise TypeError("show_message expects a str")
        self.messages.append(message)

    def log_message(self, message: str) -> None:
        if not isinstance(message, str):
            raise TypeError("log_message expects a str")
        self.log.append(message)

    def send_midi(self, midi_event_bytes: tuple[int, ...]) -> None:
        """Live takes a tuple of ints: a status byte, then data bytes below 128."""
        if not isinstance(midi_event_bytes, tuple) or not midi_event_bytes:
            raise TypeError("send_midi expects a non-empty tuple of ints")
        status, *data = midi_event_bytes
        if not (isinstance(status, int) and 0x80 <= status <= 0xFF):
            raise ValueError(f"send_midi: bad status byte {status!r}")
        if not all(isinstance(b, int) and 0 <= b <= 0x7F for b in data):
            raise ValueError(f"send_midi: bad data bytes {data!r}")
        if status < 0xF0 and len(data) != (1 if 0xC0 <= status < 0xE0 else 2):
            raise ValueError(f"send_midi: wrong length for status 0x{status:02X}")
        self.midi_out.append(midi_event_bytes)

    def request_rebuild_midi_map(self) -> None:
        self.rebuild_requests += 1

    @property
    def status(self) -> str:
        """The status bar's current text."""
        return self.messages[-1] if self.messages else ""


class LiveHost:
    """A Live Set with a MIDI track ("Drums") and an audio track, running one script."""

    def __init__(self, create_instance: Callable, tempo: float = 120.0, meter: tuple[int, int] = (4, 4)) -> None:
        self.song = Live.Song.Song(tempo, *meter)
        self.drums = self.song._add_track("Drums", midi=True)
        self.audio = self.song._add_track("Audio", midi=False)
        self.c_instance = CInstance(self.song)
        self.script = create_instance(self.c_instance)
        self.forwards: frozenset = frozenset()
        self.rebuild_midi_map()
        self.script.refresh_state()

    def rebuild_midi_map(self) -> None:
        handle = _new_map(SCRIPT_HANDLE)
        self.script.build_midi_map(handle)
        self.forwards = _forwards(handle)

    def select(self, slot: Live.ClipSlot.ClipSlot | None) -> None:
        self.song.view.highlighted_clip_slot = slot

    def slot(self, index: int = 0, track: Live.Track.Track | None = None) -> Live.ClipSlot.ClipSlot:
        return (track or self.drums).clip_slots[index]

    def midi_in(self, midi_bytes: tuple[int, ...]) -> bool:
        """Deliver a message as Live would: only if the MIDI map forwards it."""
        kind = {0xB0: "cc", 0x90: "note", 0x80: "note"}.get(midi_bytes[0] & 0xF0)
        if kind is None or (kind, midi_bytes[0] & 0x0F, midi_bytes[1]) not in self.forwards:
            return False
        self.script.receive_midi(midi_bytes)
        return True

    def press(self, control: dict) -> bool:
        """Press and release a control given as a mapping entry {"type", "channel", "number"}."""
        channel = control["channel"] if isinstance(control["channel"], int) else 0
        if control["type"] == "cc":
            down, up = (0xB0 | channel, control["number"], 127), (0xB0 | channel, control["number"], 0)
        else:
            down, up = (0x90 | channel, control["number"], 100), (0x80 | channel, control["number"], 0)
        delivered = self.midi_in(down)
        self.midi_in(up)
        return delivered

    def tick(self) -> float:
        """One display tick; returns the seconds the script spent in it."""
        start = time.perf_counter()
        self.script.update_display()
        spent = time.perf_counter() - start
        if self.c_instance.rebuild_requests:
            self.c_instance.rebuild_requests = 0
            self.rebuild_midi_map()
        return spent

    def run_until(self, done: Callable[[], bool], timeout: float, tick_s: float = 0.01) -> list[float]:
        """Tick until `done()` or `timeout` seconds; returns every tick's cost. Raises on timeout."""
        costs = []
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not done after {timeout} s; status: {self.c_instance.status!r}")
            costs.append(self.tick())
            time.sleep(tick_s)  # the gap between Live's ticks, not a synchronisation
        return costs
