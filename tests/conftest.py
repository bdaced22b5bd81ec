"""Fixtures shared across the suite: a real daemon on the bundled model, a tiny trained model."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

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

