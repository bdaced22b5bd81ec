"""Real MIDI ports for the daemon's tests: a private JACK server on the dummy driver.

A test that asks for `jack_server` fails (never skips) when JACK cannot start, so CI notices a
missing `jackd2` package instead of silently testing less.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack

import pytest

from tests.daemon import jack_support
from tests.daemon.jack_support import JackError, Sink, dummy_server

JACK_PERIOD = 128  # frames at 48 kHz: MIDI moves every 2.7 ms


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny ops on a shared 2-core machine: a second intra-op thread only waits for a busy core."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def jack_server() -> Iterator[str]:
    with ExitStack() as stack:
        try:
            name = stack.enter_context(dummy_server(f"drumigen-test-{os.getpid()}", period=JACK_PERIOD))
        except JackError as err:
            pytest.fail(f"{err} — the real-time MIDI tests need a JACK server")
        jack_support.open_probes()
        stack.callback(jack_support.close_probes)
        yield name


@pytest.fixture
def sink(jack_server: str, request: pytest.FixtureRequest) -> Iterator[Sink]:
    """A virtual JACK input named after the test, recording what arrives."""
    port = Sink(request.node.name[:40]).open_virtual()
    yield port
    port.close()
