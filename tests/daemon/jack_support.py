"""Helpers for tests on real JACK MIDI ports (see conftest.py for the server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import rtmidi


class Sink:
    """A JACK MIDI input that records what arrives: (perf_counter at arrival, message bytes).

    Polled, not rtmidi's callback, which garbles messages arriving together (see
    daemon.ports.PolledInput).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.received: list[tuple[float, list[int]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._port = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, "test-" + name)
        self._port.ignore_types(sysex=False, timing=False, active_sense=False)
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def open_virtual(self) -> Sink:
        self._port.open_virtual_port(self.name)
        return self

    def connect(self, source: str) -> Sink:
        """Listen to an existing output port (a source) instead."""
        self._port.open_port(self._port.get_ports().index(source))
        return self

    def full_name(self) -> str:
        """The port's JACK name, "client:port" (JACK may have renamed a duplicate client)."""
        return wait_for(lambda: next((p for p in jack_ports(False) if p.endswith(":" + self.name)), None),
                        what=f"port {self.name}")

    def messages(self) -> list[tuple[float, list[int]]]:
        with self._lock:
            return list(self.received)

    def note_ons(self) -> list[tuple[float, int, int]]:
        return [(t, m[1], m[2]) for t, m in self.messages() if m[0] & 0xF0 == 0x90 and m[2] > 0]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._port.close_port()
        self._port.delete()

    def _poll(self) -> None:
        while not self._stop.is_set():
            event = self._port.get_message()
            if event is None:
                time.sleep(0.0005)
                continue
            with self._lock:
                self.received.append((time.perf_counter(), event[0]))


def wait_for(condition: Callable[[], object], timeout: float = 5.0, what: str = "condition") -> object:
    """Poll until `condition()` is truthy and return it; fail the test after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


_probes: dict[bool, rtmidi.MidiIn | rtmidi.MidiOut] = {}


def open_probes() -> None:
    """Make the clients `jack_ports` asks, once: creating JACK clients while another thread
    does (a player starting) is not something to race in libjack."""
    _probes[True], _probes[False] = rtmidi.MidiIn(rtmidi.API_UNIX_JACK), rtmidi.MidiOut(rtmidi.API_UNIX_JACK)


def close_probes() -> None:
    for probe in _probes.values():
        probe.delete()
    _probes.clear()


def jack_ports(outputs: bool) -> list[str]:
    """JACK MIDI ports: sources (outputs=True, what a MidiIn can open) or destinations."""
    return _probes[outputs].get_ports()


def connect_to(port: rtmidi.MidiOut, suffix: str) -> str:
    """Open the destination whose name ends with ":" + suffix once it exists; returns its name."""
    name = wait_for(lambda: next((p for p in jack_ports(False) if p.endswith(":" + suffix)), None),
                    what=f"port {suffix}")
    port.open_port(port.get_ports().index(name))
    return name
