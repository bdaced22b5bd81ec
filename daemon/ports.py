"""MIDI ports: choosing the MIDI API, opening, watching. Outputs go through mido's
python-rtmidi backend; inputs read python-rtmidi's queue directly (see PolledInput).

Virtual ports (ones this program creates, for a DAW to pick) exist on macOS (CoreMIDI) and Linux
(ALSA, JACK). Windows' MIDI API cannot create them: there a loopback driver such as loopMIDI
provides a port both programs open.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mido

from daemon.clock import realtime_priority

try:
    import rtmidi
except ImportError as err:  # its wheel links ALSA's libasound.so.2, which a headless server may lack
    rtmidi = None  # training, serving and files need no ports; backend() says what is missing
    _RTMIDI_ERROR = str(err)

VIRTUAL_NAME = "MidiDrumiGen"  # the output port a DAW sees
CLOCK_PORT_NAME = "MidiDrumiGen Clock"  # the virtual input a DAW sends clock to
CLIENT_NAME = "MidiDrumiGen"
INPUT_POLL_S = 0.0005  # input latency added by polling: well under a MIDI clock tick (>= 6 ms)
APIS = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE", "windows": "WINDOWS_MM"}
LOOPMIDI_HINT = (
    "Windows cannot create virtual MIDI ports: install loopMIDI "
    "(https://www.tobias-erichsen.de/software/loopmidi.html), add a port there, "
    "and pass its name with --port (and select it as MIDI input in your DAW)"
)

log = logging.getLogger("drumigen.play")


class PortError(Exception):
    """A port that cannot be opened; the message says what to do."""


class PortLost(Exception):
    """A port vanished while playing (device unplugged, client quit)."""


def backend(api: str = "auto") -> mido.Backend:
    """mido's rtmidi backend on one MIDI API; "auto" is rtmidi's choice, or JACK on a Linux
    machine without the ALSA sequencer (containers, CI). Every port is opened through one."""
    if rtmidi is None:
        raise PortError(f"MIDI ports need python-rtmidi, which did not load ({_RTMIDI_ERROR}); on Linux "
                        "install ALSA's library (Debian, Ubuntu: apt install libasound2)")
    if api == "auto":
        if sys.platform.startswith("linux") and not os.path.exists("/dev/snd/seq"):
            api = "jack"
        else:
            return mido.Backend("mido.backends.rtmidi")
    name = APIS[api]
    if getattr(rtmidi, "API_" + name) not in rtmidi.get_compiled_api():
        raise PortError(f"this python-rtmidi build has no {api} support")
    return mido.Backend("mido.backends.rtmidi/" + name)


@contextmanager
def jack_says_nothing(midi: mido.Backend) -> Iterator[None]:
    """While a JACK client opens, what the process writes to stderr is held back: with no server
    libjack writes five lines of its own there ("Cannot connect to server socket err = ...",
    "JackShmReadWritePtr::~JackShmReadWritePtr - Init not done ...") before rtmidi raises and
    _api_trouble says what to do in one. They are C's writes to file descriptor 2, which
    Python's sys.stderr cannot catch. When the open fails what was held goes to the debug log;
    when it succeeds, to stderr after all: it was not libjack's complaint (live mode's request
    thread may log meanwhile)."""
    if midi.api != "UNIX_JACK":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    failed = True
    with tempfile.TemporaryFile() as said:
        os.dup2(said.fileno(), 2)
        try:
            yield
            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            said.seek(0)
            if text := said.read().decode(errors="replace").strip():
                if failed:
                    log.debug("libjack: %s", text)
                else:
                    print(text, file=sys.stderr)


def list_ports(midi: mido.Backend) -> tuple[list[str], list[str]]:
    """(inputs, outputs) as the API names them."""
    try:
        with jack_says_nothing(midi):
            return midi.get_input_names(), midi.get_output_names()
    except OSError as err:
        raise PortError(_api_trouble(midi, err)) from None


def open_output(midi: mido.Backend, port: str | None, virtual: str | None) -> mido.ports.BaseOutput:
    """An existing output port by name (or a unique part of it), or a new virtual one."""
    try:
        if virtual is not None:
            _check_virtual(midi)
            with jack_says_nothing(midi):
                return midi.open_output(virtual, client_name=CLIENT_NAME)
        return midi.open_output(_match(port, list_ports(midi)[1], "output"))
    except OSError as err:
        raise PortError(_api_trouble(midi, err)) from None


def open_input(midi: mido.Backend, port: str | None, callback: Callable[[mido.Message, float], None],
               virtual: str = CLOCK_PORT_NAME) -> PolledInput:
    """An existing input port by name (or a unique part of it), else a new virtual one."""
    if port is None:
        _check_virtual(midi)
    try:
        with jack_says_nothing(midi):
            rt = rtmidi.MidiIn(_rtapi(midi), CLIENT_NAME if port is None else None)
    except rtmidi.RtMidiError as err:
        raise PortError(_api_trouble(midi, err)) from None
    try:
        if port is None:
            rt.open_virtual_port(virtual)
            name = virtual
        else:
            name = _match(port, rt.get_ports(), "input")
            rt.open_port(rt.get_ports().index(name))
    except PortError:
        rt.delete()
        raise
    except rtmidi.RtMidiError as err:
        rt.delete()
        raise PortError(_api_trouble(midi, err)) from None
    return PolledInput(rt, name, callback)


class PolledInput:
    """An input port read by polling on a thread of its own, handing each message to `callback`
    with its arrival time (perf_counter).

    Not rtmidi's (nor mido's) input callback: with python-rtmidi 1.5.8 it delivers wrong bytes
    (a copy of the previous message) when several messages arrive together, measured here on
    JACK and reported on ALSA (SpotlightKid/python-rtmidi#209); its queue, polled, is exact.
    """

    def __init__(self, rt: rtmidi.MidiIn, name: str, callback: Callable[[mido.Message, float], None]) -> None:
        self.name = name
        self._rt = rt
        self._callback = callback
        self._stop = threading.Event()
        rt.ignore_types(sysex=True, timing=False, active_sense=True)  # clock matters, the rest not
        self._thread = threading.Thread(target=self._poll, name=f"midi-in {name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._rt.close_port()
        self._rt.delete()

    def _poll(self) -> None:
        with realtime_priority():  # clock ticks are stamped here: late is as bad as a late note
            self._read()

    def _read(self) -> None:
        get = self._rt.get_message
        while not self._stop.is_set():
            event = get()
            if event is None:
                time.sleep(INPUT_POLL_S)
                continue
            now = time.perf_counter()
            try:
                msg = mido.Message.from_bytes(event[0])
            except ValueError:
                continue  # not a complete channel or system message: nothing we use
            try:
                self._callback(msg, now)
            except Exception:  # a bug in a handler must not deafen the port
                log.exception("handling %s from %r failed", msg, self.name)


class PortWatch:
    """Notices named ports vanishing, and the JACK server stopping: rtmidi keeps sending into the
    void when a device goes, and its clients go on listing a dead server's ports."""

    def __init__(self, api: str, outputs: list[str], inputs: list[str]) -> None:
        rtapi = getattr(rtmidi, "API_" + api)
        self._probes = [(probe(rtapi=rtapi), names) for probe, names in ((rtmidi.MidiOut, outputs), (rtmidi.MidiIn, inputs))
                        if names]
        self._server = jack_server_socket() if api == "UNIX_JACK" else None
        # A server in another network namespace (a container sharing the host's /dev/shm) is not
        # in this one's /proc/net/unix: then its file is all there is to go by.
        self._listed = self._server is not None and listened_on(self._server)

    def lost(self) -> str | None:
        """What is gone, if anything (one cheap query per direction): "MIDI port 'x'", or "the JACK server"."""
        if self._server is not None and not (listened_on(self._server) if self._listed else self._server.exists()):
            return "the JACK server"
        for probe, names in self._probes:
            present = set(probe.get_ports())
            for name in names:
                if name not in present:
                    return f"MIDI port {name!r}"
        return None

    def close(self) -> None:
        for probe, _ in self._probes:
            probe.delete()


def jack_server_socket() -> Path | None:
    """The socket of the JACK server this process's clients talk to, where jackd (JACK 2 on
    Linux) keeps it: /dev/shm/jack_<server>_<uid>_0. It goes when the server stops. A server
    without one there (PipeWire's JACK, macOS, a promiscuous server) is not watched."""
    if not hasattr(os, "getuid"):
        return None
    path = Path("/dev/shm") / f"jack_{os.environ.get('JACK_DEFAULT_SERVER', 'default')}_{os.getuid()}_0"
    return path if path.exists() else None


def listened_on(path: Path) -> bool:
    """Whether a process listens on the Unix socket `path`. A server that crashed (killed, out of
    memory) leaves its socket file behind: Linux lists live listening sockets in /proc/net/unix
    (flag __SO_ACCEPTCON, 0x10000), a cheap read; without it, the file is all there is to go by."""
    try:
        table = Path("/proc/net/unix").read_text().splitlines()[1:]
    except OSError:
        return path.exists()
    target = str(path)
    for line in table:
        fields = line.split(None, 7)  # the path last, spaces and all (a JACK client's socket has some)
        if len(fields) == 8 and fields[7] == target and int(fields[3], 16) & 0x10000:
            return True
    return False


def _rtapi(midi: mido.Backend) -> int:
    return rtmidi.API_UNSPECIFIED if midi.api is None else getattr(rtmidi, "API_" + midi.api)


def _check_virtual(midi: mido.Backend) -> None:
    if sys.platform == "win32" or midi.api == "WINDOWS_MM":
        raise PortError(LOOPMIDI_HINT)


def _match(wanted: str | None, names: list[str], kind: str) -> str:
    """The port called `wanted`, or the only one whose name contains it (any case)."""
    if wanted in names:
        return wanted
    found = [n for n in names if wanted is not None and wanted.lower() in n.lower()]
    if len(found) == 1:
        return found[0]
    listing = "\n  ".join(names) or "(none)"
    what = "matches several" if found else "matches no"
    raise PortError(f"{wanted!r} {what} MIDI {kind} port; the {kind}s are:\n  {listing}")


def _api_trouble(midi: mido.Backend, err: Exception) -> str:
    if midi.api == "UNIX_JACK":
        alsa = "" if not sys.platform.startswith("linux") or os.path.exists("/dev/snd/seq") else \
            " (JACK because ALSA's sequencer is not here either: no /dev/snd/seq; modprobe snd-seq)"
        return f"JACK MIDI failed ({err}) — is a JACK server running (jackd, or PipeWire's JACK)?{alsa}"
    if midi.api == "LINUX_ALSA":
        return f"ALSA MIDI failed ({err}) — is /dev/snd/seq there (modprobe snd-seq)? Or try --api jack"
    return f"MIDI failed: {err}"
