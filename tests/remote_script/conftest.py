"""The fake `Live` on sys.path (as Live's own is for a Remote Script), and Live hosting the script."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE / "fake_live"), str(HERE)]

from live_host import LiveHost  # noqa: E402  (needs the fake on sys.path)
from stub_client import StubClient  # noqa: E402

from remote_script import surface  # noqa: E402


@pytest.fixture(autouse=True)
def ports_that_do_not_echo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake Live's ports return nothing the script sends, and its tests press at once: a
    press within ECHO_S of a light it matches would be taken for the light's echo. The test of
    echoes sets its own."""
    monkeypatch.setattr(surface, "ECHO_S", 0.0)


@pytest.fixture
def stub() -> StubClient:
    return StubClient()


@pytest.fixture
def host(stub: StubClient) -> Iterator[LiveHost]:
    """Live 12 running the script (repository settings, generic mapping) on a stub client."""
    live = LiveHost(lambda c_instance: surface.DrumSurface(c_instance, client=stub))
    yield live
    live.script.disconnect()


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., LiveHost]]:
    """Starts Live hosting the script with these settings.json values and this client (None: the
    script's own DaemonClient); every host it started is disconnected at the end."""
    hosts: list[LiveHost] = []

    def start(client: object, **settings: object) -> LiveHost:
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(settings))
        monkeypatch.setattr(surface, "SETTINGS_FILE", path)
        hosts.append(LiveHost(lambda c_instance: surface.DrumSurface(c_instance, client=client)))
        return hosts[-1]

    yield start
    for host in hosts:
        host.script.disconnect()
