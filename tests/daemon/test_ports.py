"""Choosing the MIDI API, finding ports by name, the Windows limitation, noticing lost ports."""

from __future__ import annotations

import os
import sys

import pytest

from daemon import ports
from tests.daemon.jack_support import Sink, dummy_server


def test_auto_api_is_jack_where_linux_has_no_alsa_sequencer(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ports.os.path, "exists", lambda path: False)
    assert ports.backend("auto").api == "UNIX_JACK"
    assert ports.backend("jack").api == "UNIX_JACK"


def test_virtual_ports_on_windows_point_to_loopmidi(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(ports.PortError, match="loopMIDI"):
        ports.open_output(ports.backend("jack"), None, "MidiDrumiGen")
    with pytest.raises(ports.PortError, match="loopMIDI"):
        ports.open_input(ports.backend("jack"), None, lambda msg, now: None)


def test_ports_match_by_unique_part_of_the_name():
    names = ["Midi Through:Port-0 14:0", "IAC Driver Bus 1", "IAC Driver Bus 2"]
    assert ports._match("IAC Driver Bus 1", names, "output") == "IAC Driver Bus 1"
    assert ports._match("through", names, "output") == "Midi Through:Port-0 14:0"
    with pytest.raises(ports.PortError, match="matches several"):
        ports._match("IAC", names, "output")
    with pytest.raises(ports.PortError, match="(?s)matches no MIDI output port.*IAC Driver Bus 2"):
        ports._match("Launchpad", names, "output")


def test_without_a_jack_server_the_error_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "drumigen-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    with pytest.raises(ports.PortError, match="is a JACK server running"):
        ports.list_ports(ports.backend("jack"))


def test_watch_notices_a_vanished_port(jack_server: str):
    target = Sink("watched").open_virtual()
    watch = ports.PortWatch("UNIX_JACK", [target.full_name()], [])
    try:
        assert watch.lost() is None
        name = target.full_name()
        target.close()
        assert watch.lost() == f"MIDI port {name!r}"
    finally:
        watch.close()


def test_watch_notices_the_jack_server_stopping():
    """A JACK server that stops (restarted, or PipeWire's restarted) leaves rtmidi's clients
    listing its ports: `play` went on sending into nothing and never stopped."""
    with dummy_server(f"drumigen-watch-{os.getpid()}"):
        watch = ports.PortWatch("UNIX_JACK", [], [])
        assert watch.lost() is None
    assert watch.lost() == "the JACK server"
    watch.close()
