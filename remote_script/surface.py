"""The control surface Live talks to: the c_instance protocol, implemented directly.

Live calls these methods on its main thread: `build_midi_map` (say which MIDI to forward),
`receive_midi` (a forwarded message), `update_display` (about every 100 ms), `refresh_state`,
`disconnect`. No exception may escape into Live: each entry point logs the traceback to Log.txt
and shows a short status line instead, so one bug never takes the script down.
"""

from __future__ import annotations

import functools
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path

import Live

from . import midi_map
from .controller import Controller
from .mapping import Mapping, MappingError, load_mapping
from .messages import PREFIX, bars_text, say
from .settings import load_settings
from .wire import DaemonClient

HERE = Path(__file__).resolve().parent
SETTINGS_FILE = HERE / "settings.json"
MAPPINGS_FOLDER = HERE / "mappings"
# A message we sent that comes back this soon is its echo, not a press: a virtual port chosen as
# both Input and Output (an IAC or loopMIDI bus behind TouchOSC), or a controller's soft thru,
# returns the LED messages, and the generic mapping lights an idle button with the value that
# presses it (an echoed "idle" pressed generate again after every groove: 44 in 12 s). A person
# reacting to a light takes longer (reaction times are about 0.2 s); a press that matches a
# light sent sooner than this is lost, unsaid. Counted from the end of the call that sent it
# (Live delivers nothing while the script writes a clip), so a slow write cannot outlast it.
ECHO_S = 0.1


def _guarded(method: Callable) -> Callable:
    """Run a Live entry point; log and show what it raised instead of raising into Live."""

    @functools.wraps(method)
    def guarded(self: DrumSurface, *args: object) -> None:
        try:
            method(self, *args)
        except Exception:
            trace = f"error in {method.__name__}:\n{traceback.format_exc()}"
            if trace != self._last_error.get(method.__name__):  # once while it recurs: on every tick, it buried Log.txt
                self._log(trace)
                self._last_error[method.__name__] = trace
            self._show(say("something went wrong — details in Live's Log.txt"))
        else:
            self._last_error.pop(method.__name__, None)  # the same error again later is news
        finally:
            self._sent_by_now()  # Live passes on what it sent once the call returns: echoes are timed from here

    return guarded


class DrumSurface:
    """One MidiDrumiGen control surface: settings, mapping, daemon client and controller."""

    def __init__(self, c_instance: object, client: DaemonClient | None = None) -> None:
        self._c_instance = c_instance
        self._last_error: dict[str, str] = {}  # entry point -> the traceback it last logged (_guarded)
        self._sent: deque[list] = deque(maxlen=256)  # [when Live had it, message]: echoes to ignore
        settings, problems = load_settings(SETTINGS_FILE)
        try:
            self._mapping = load_mapping(settings.mapping, MAPPINGS_FOLDER)
        except MappingError as error:
            problems.append(f"{error}; no buttons are mapped")
            self._mapping = Mapping("none", ())
        if client is None:
            client = DaemonClient(settings.endpoint, settings.timeout_s, settings.retries, log=self._log)
        self._controller = Controller(c_instance.song(), client, settings, self._show, self._log, self._light)
        self._log(f"started: mapping “{self._mapping.name}”, daemon at {settings.endpoint}")
        self._show(say(f"ready — {settings.style}, {bars_text(settings.bars)}; press generate"))
        for problem in problems:
            self._log(problem)
            self._show(say(problem))

    # The c_instance protocol.

    @_guarded
    def build_midi_map(self, midi_map_handle: int) -> None:
        midi_map.forward(self._c_instance.handle(), midi_map_handle, self._mapping.controls)

    @_guarded
    def receive_midi(self, midi_bytes: tuple[int, ...]) -> None:
        if self._is_echo(tuple(midi_bytes)):
            return
        event = midi_map.decode(midi_bytes)
        if event is None or event.value == 0:  # releases do nothing
            return
        action = self._mapping.action_for(event.kind, event.channel, event.number)
        if action is not None:
            self._controller.press(action)

    @_guarded
    def update_display(self) -> None:
        self._controller.tick()

    @_guarded
    def refresh_state(self) -> None:
        """Live asks for the controller's LEDs to be sent again (e.g. after a port change)."""
        busy = self._controller.busy_action
        for control in self._mapping.controls:
            message = control.led_message(busy=control.action == busy)
            if message is not None:
                self._send(message)

    def port_settings_changed(self) -> None:
        self.refresh_state()

    @_guarded
    def disconnect(self) -> None:
        """Lights off, and the socket closed even when the lights cannot be turned off."""
        try:
            for control in self._mapping.controls:
                message = control.off_message()
                if message is not None:
                    self._send(message)
        finally:
            self._controller.close()
        self._log("stopped")

    def connect_script_instances(self, instanciated_scripts: object) -> None:
        """Live introduces the other control surfaces; this script works alone."""

    def can_lock_to_devices(self) -> bool:
        return False

    def suggest_input_port(self) -> str:
        return ""

    def suggest_output_port(self) -> str:
        return ""

    def suggest_map_mode(self, cc_no: int, channel: int) -> int:
        """Live asks when the user maps a CC of this port to a parameter: our buttons send
        absolute values; of any other CC (an encoder, maybe relative) we know nothing, -1, as
        Ableton's own framework answers."""
        ours = any(c.kind == "cc" and c.number == cc_no and c.channel in (None, channel) for c in self._mapping.controls)
        return Live.MidiMap.MapMode.absolute if ours else -1

    # Output.

    def _light(self, action: str, busy: bool) -> None:
        control = self._mapping.control_for(action)
        message = None if control is None else control.led_message(busy)
        if message is not None:
            self._send(message)

    def _send(self, message: tuple[int, ...]) -> None:
        self._sent.append([None, tuple(message)])  # when: at the end of this call of Live's
        self._c_instance.send_midi(message)

    def _sent_by_now(self) -> None:
        now = time.monotonic()
        for sent in reversed(self._sent):
            if sent[0] is not None:
                break
            sent[0] = now

    def _is_echo(self, message: tuple[int, ...]) -> bool:
        """One message we sent within ECHO_S, coming back: each send excuses one arrival."""
        now = time.monotonic()
        while self._sent and self._sent[0][0] is not None and now - self._sent[0][0] > ECHO_S:
            self._sent.popleft()
        for i, (_, sent) in enumerate(self._sent):
            if sent == message:
                del self._sent[i]
                return True
        return False

    def _show(self, message: str) -> None:
        self._c_instance.show_message(message)

    def _log(self, message: str) -> None:
        self._c_instance.log_message(PREFIX + message)
