"""Choosing the MIDI API, finding ports by name, the Windows limitation, noticing lost ports."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

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
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ports.os.path, "exists", lambda path: False)  # why auto chose JACK: no ALSA either
    with pytest.raises(ports.PortError, match=r"ALSA's sequencer is not here either: no /dev/snd/seq"):
        ports.list_ports(ports.backend("auto"))


def test_without_a_jack_server_libjacks_own_lines_go_to_the_debug_log(monkeypatch: pytest.MonkeyPatch,
                                                                       capfd: pytest.CaptureFixture,
                                                                       caplog: pytest.LogCaptureFixture):
    """libjack wrote five lines of its own to stderr ("Cannot connect to server socket ...")
    before drumigen's one line that says what to do."""
    monkeypatch.setenv("JACK_DEFAULT_SERVER", "drumigen-no-such-server")
    monkeypatch.setenv("JACK_NO_START_SERVER", "1")
    caplog.set_level("DEBUG", logger="drumigen.play")
    for attempt in (lambda midi: ports.list_ports(midi), lambda midi: ports.open_output(midi, None, "x"),
                    lambda midi: ports.open_input(midi, None, lambda msg, now: None)):
        with pytest.raises(ports.PortError, match="is a JACK server running"):
            attempt(ports.backend("jack"))
    assert capfd.readouterr().err == ""
    assert sum("Cannot connect to server" in r.getMessage() for r in caplog.records) == 3


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


def test_watch_notices_the_jack_server_crashing():
    """A jackd killed (or out of memory) leaves its socket file in /dev/shm: `play` went on
    sending into nothing for good."""
    name = "drumigen-crashed"  # one name: the next run reclaims the registry entry a killed server leaves
    try:
        with dummy_server(name):
            watch = ports.PortWatch("UNIX_JACK", [], [])
            assert watch.lost() is None
            os.kill(jackd_pid(name), signal.SIGKILL)
            deadline = time.monotonic() + 10  # the kernel closes a killed process's sockets in a moment
            while (gone := watch.lost()) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert gone == "the JACK server"
            assert ports.jack_server_socket() is not None  # though the file outlives its server
        watch.close()
    finally:
        for leftover in Path("/dev/shm").glob(f"jack*{name}*"):
            leftover.unlink()


def test_a_socket_is_listened_on_while_its_server_listens_spaces_and_all(tmp_path):
    """JACK names sockets after clients ("RtMidiIn Client"): the path is /proc/net/unix's last field."""
    import socket

    path = tmp_path / "jack_RtMidiIn Client_0_0"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(path))
    server.listen()
    assert ports.listened_on(path)
    server.close()
    assert path.exists() and not ports.listened_on(path)


def jackd_pid(name: str) -> int:
    """The pid of `jackd -n name`, from /proc (no procps on a bare CI machine)."""
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # not a process, or one that just ended
            continue
        if entry.name.isdigit() and args[1:3] == [b"-n", name.encode()]:
            return int(entry.name)
    raise LookupError(f"no jackd -n {name} running")


def test_what_is_written_to_stderr_while_a_jack_client_opens_is_held_back_only_when_it_fails(
        capfd: pytest.CaptureFixture, caplog: pytest.LogCaptureFixture):
    """Live mode's request thread may log while the ports open: that must not be lost when they
    open; libjack's complaint when they do not is the debug log's."""
    caplog.set_level("DEBUG", logger="drumigen.play")
    jack = ports.backend("jack")
    with ports.jack_says_nothing(jack):
        os.write(2, b"another thread's warning\n")
    assert capfd.readouterr().err == "another thread's warning\n"
    with pytest.raises(ports.PortError), ports.jack_says_nothing(jack):
        os.write(2, b"Cannot connect to server socket\n")
        raise ports.PortError("no server")
    assert capfd.readouterr().err == "" and any("libjack: Cannot connect" in r.getMessage() for r in caplog.records)
