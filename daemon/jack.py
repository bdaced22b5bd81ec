"""A private JACK server on the dummy driver: real MIDI ports without a sound card (tests, CI,
benchmarks, headless machines). Needs `jackd` and `jack_wait` (Debian/Ubuntu package jackd2)."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

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
