"""Helpers for tests (and benchmarks) on real JACK MIDI ports: a private JACK server on the
dummy driver, real MIDI ports without a sound card (needs `jackd` and `jack_wait`, Debian's
package jackd2), and a port that records what arrives. conftest.py starts the server."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import rtmidi


STARTUP_TIMEOUT_S = 10
PR_SET_PDEATHSIG = 1


class JackError(RuntimeError):
    """jackd is missing or would not start."""


@contextmanager
def dummy_server(name: str, rate: int = 48000, period: int = 128) -> Iterator[str]:
    """Run `jackd -n NAME -d dummy` and point this process's JACK clients at it meanwhile.

    The period bounds MIDI timing through JACK: events are delivered once per period
    (128 frames at 48 kHz: 2.7 ms).
    """
    jackd, jack_wait = shutil.which("jackd"), shutil.which("jack_wait")
    if jackd is None or jack_wait is None:
        raise JackError("jackd is not installed: apt-get install jackd2")
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION="1")  # no D-Bus device reservation
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen([jackd, "-n", name, "-d", "dummy", "-r", str(rate), "-p", str(period)],
                                stdout=output, stderr=subprocess.STDOUT, env=env,
                                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        try:
            ready = subprocess.run([jack_wait, "-s", name, "-w", "-t", str(STARTUP_TIMEOUT_S)],
                                   capture_output=True, env=env)
            if ready.returncode != 0 or proc.poll() is not None:
                output.seek(0)
                raise JackError(f"jackd did not start:\n{output.read().decode(errors='replace')}")
            saved = {key: os.environ.get(key) for key in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
            os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
            try:
                yield name
            finally:
                for key, value in saved.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value
        finally:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _die_with_parent() -> None:
    """In the child before exec: a crashed test run must not leave its jackd behind (Linux)."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


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
