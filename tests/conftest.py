"""Fixtures shared across the suite: a real daemon on the bundled model, a tiny trained model,
the waits the Live-side client asks for."""

from __future__ import annotations

import selectors
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support import GROOVE_MINI, DaemonProcess  # noqa: E402


@pytest.fixture(scope="session")
def daemon(tmp_path_factory):
    """A real daemon on the bundled model. Tests that stop it must `start()` it again."""
    d = DaemonProcess(tmp_path_factory.mktemp("daemon")).start()
    yield d
    d.stop(signal.SIGTERM)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A 1-layer model trained for a few seconds on GROOVE_MINI: real training, tiny cost."""
    from daemon.train import TrainConfig, train

    tmp = tmp_path_factory.mktemp("tiny")
    config = TrainConfig(data=GROOVE_MINI, out=tmp / "tiny.pt", cache_dir=tmp / "cache", n_layer=1, n_head=2,
                         n_embd=32, block_size=128, steps=30, batch_size=4, warmup=5, lr=3e-3, eval_every=15,
                         eval_windows=4, threads=1)
    train(config)
    return config.out



@pytest.fixture
def client_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every wait shared.client asks for while a test runs: its selector's timeouts and sleeps
    (the only calls in the Remote Script that can hold a thread, its socket being non-blocking).
    Live's main thread must never be asked to wait; unlike a tick's duration, a busy machine
    cannot make this fail, nor a quiet one hide it. Clear the list before the calls under test."""
    from shared import client

    waits: list[float] = []

    class Watched(selectors.DefaultSelector):
        def select(self, timeout: float | None = None) -> list:
            waits.append(timeout)
            return super().select(timeout)

    def slept(seconds: float) -> None:
        waits.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(client, "selectors", SimpleNamespace(
        DefaultSelector=Watched, EVENT_READ=selectors.EVENT_READ, EVENT_WRITE=selectors.EVENT_WRITE))
    monkeypatch.setattr(client, "time", SimpleNamespace(monotonic=time.monotonic, sleep=slept))
    return waits
