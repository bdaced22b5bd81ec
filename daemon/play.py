"""`drumigen play`: stream a groove to a MIDI port in real time, alone or locked to MIDI clock.

    drumigen play groove.mid --loop                  # to a new virtual port "MidiDrumiGen"
    drumigen play groove.mid --port "IAC" --bpm 96   # to an existing port
    drumigen play --style funk --live --clock        # endless, following the DAW's transport

The pieces: daemon.ports (MIDI API and ports), daemon.clock (when each beat is due),
daemon.scheduler (events at absolute deadlines), daemon.live (phrases from the daemon).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import NoReturn

import mido

from daemon import midifile, ports
from daemon.clock import FixedTempo, MidiClock, Timeline
from daemon.live import (
    CC_DENSITY,
    CC_STYLE,
    CC_TEMPERATURE,
    KEYS_HELP,
    Controls,
    DaemonError,
    LiveSource,
    Settings,
    generate_once,
    keyboard,
)
from daemon.scheduler import FixedSource, Phrase, Player
from shared.protocol import (
    BARS_RANGE,
    DEFAULT_ENDPOINT,
    E_UNAVAILABLE,
    SEED_RANGE,
    TEMPERATURE_RANGE,
    TEMPO_RANGE,
    model_tempo,
)

DEFAULT_BPM = 120.0
DEFAULT_BARS = 4

log = logging.getLogger("drumigen.play")


def add_play_parser(sub: argparse._SubParsersAction) -> None:
    """Register `play` on the drumigen command line."""
    from daemon.cli import (bounded, endpoint_arg, fraction_arg, style_arg, time_signature_arg,  # the command
                            whole)  # line's own types (cli imports this module)

    p = sub.add_parser(
        "play", help="stream a groove to a MIDI port in real time",
        description="Play a MIDI file, or grooves from the daemon, through a MIDI port: an existing one "
                    "(--port) or a virtual one a DAW can pick (the default; not on Windows, use loopMIDI). "
                    "Ctrl-C stops and silences every note.")
    p.add_argument("file", nargs="?", type=Path, help="a MIDI file to play (or give --style)")
    p.add_argument("--style", type=style_arg, help="ask the daemon for a groove in this style (or a mix, "
                                                  "funk:0.7,jazz:0.3) instead of a file")
    p.add_argument("--live", action="store_true",
                   help="keep generating with --style: the next phrase, a continuation of the one before, is "
                        "made while one plays; "
                        "keys (and MIDI CCs 20/21/22 from --cc-port, or the --clock port) change "
                        "style/density/temperature at the next bar")
    p.add_argument("--bars", type=whole(*BARS_RANGE), default=DEFAULT_BARS, help="bars per generated phrase (default 4)")
    p.add_argument("--time-signature", dest="meter", type=time_signature_arg, default=(4, 4),
                   help="time signature of generated phrases, e.g. 7/8 (default 4/4)")
    p.add_argument("--density", type=fraction_arg, help="0..1, fewer to more hits (default: the style's own)")
    p.add_argument("--temperature", type=bounded(*TEMPERATURE_RANGE), default=1.0, help="randomness (default 1.0)")
    p.add_argument("--seed", type=whole(*SEED_RANGE), help="seed of the first phrase (the next ones count up)")
    p.add_argument("--endpoint", type=endpoint_arg, default=DEFAULT_ENDPOINT,
                   help=f"the daemon (default {DEFAULT_ENDPOINT}); unencrypted, as the Live script's: keep it on "
                        "this computer")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--port", metavar="NAME", help="an existing output port (its name or a unique part)")
    out.add_argument("--virtual", nargs="?", const=ports.VIRTUAL_NAME, metavar="NAME",
                     help=f"create a virtual output port (default, named {ports.VIRTUAL_NAME!r})")
    p.add_argument("--loop", action="store_true", help="repeat the file or phrase until stopped")
    p.add_argument("--bpm", type=bounded(*TEMPO_RANGE), help="tempo (default: the file's, or 120); with --clock, the tempo "
                                             "until the clock is heard, which the first phrases are made at")
    p.add_argument("--clock", action="store_true",
                   help="follow MIDI clock, Start/Stop/Continue and Song Position from --clock-port")
    p.add_argument("--clock-port", metavar="NAME",
                   help=f"input port sending clock (default: a virtual input {ports.CLOCK_PORT_NAME!r})")
    p.add_argument("--cc-port", metavar="NAME", help="input port for the live CCs (default: the clock port)")
    p.add_argument("--channel", type=whole(1, 16), default=10, help="MIDI channel 1-16 (default 10, drums)")
    p.add_argument("--api", choices=["auto", *ports.APIS], default="auto",
                   help="MIDI system (default: the platform's; JACK where Linux lacks the ALSA sequencer)")
    p.add_argument("--list-ports", action="store_true", help="list MIDI ports and exit")
    p.set_defaults(func=cmd_play, play_parser=p)


def cmd_play(args: argparse.Namespace) -> int:
    _check(args)
    with _stopped_like_ctrl_c():
        return _run(args)


class Stopped(KeyboardInterrupt):
    """A signal that stops the player as Ctrl-C does; the exit status still names it (128 + its
    number, as a shell reports a process the signal ended)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _stopped_like_ctrl_c() -> Iterator[None]:
    """SIGTERM and SIGHUP (kill, a closed terminal, a process manager) stop as Ctrl-C does, so
    the player releases every note on the way out instead of leaving them hanging."""
    def interrupt(signum: int, _frame: object) -> NoReturn:
        raise Stopped(signum)

    signals = [s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None]
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    previous = {s: signal.signal(s, interrupt) for s in signals}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _run(args: argparse.Namespace) -> int:
    from daemon.cli import EXIT_ERROR, EXIT_OK, EXIT_UNAVAILABLE  # here: cli imports this module

    try:
        midi = ports.backend(args.api)
        if args.list_ports:
            inputs, outputs = ports.list_ports(midi)
            print("outputs:\n  " + "\n  ".join(outputs or ["(none)"]))
            print("inputs:\n  " + "\n  ".join(inputs or ["(none)"]))
            return EXIT_OK
        with ExitStack() as stack:
            _play(args, midi, stack)
    except (ports.PortError, ports.PortLost, midifile.MidiFileError) as err:
        print(f"drumigen: {err}", file=sys.stderr)  # one line, as every command says why it stopped
        return EXIT_ERROR
    except DaemonError as err:
        print(f"drumigen: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE if err.code == E_UNAVAILABLE else EXIT_ERROR
    return EXIT_OK


def _check(args: argparse.Namespace) -> None:
    """Flag combinations argparse cannot express; exits with status 2 like argparse."""
    error = args.play_parser.error
    if args.list_ports:
        return
    if args.file is None and args.style is None:
        error("give a MIDI file to play, or --style to play grooves from the daemon")
    if args.file is not None and args.style is not None:
        error("give a MIDI file or --style, not both")
    if args.live and args.style is None:
        error("--live needs --style")
    if args.clock_port is not None and not args.clock:
        error("--clock-port needs --clock")
    if args.cc_port is not None and not args.live:
        error("--cc-port needs --live")
    if args.port == "" or args.virtual == "":
        error("a port name must not be empty")


def _play(args: argparse.Namespace, midi: mido.Backend, stack: ExitStack) -> None:
    channel = args.channel - 1
    clock = MidiClock(args.bpm or DEFAULT_BPM) if args.clock else None
    tempo = clock.tempo if clock is not None else (lambda: args.bpm or DEFAULT_BPM)
    source, bpm = _source(args, channel, tempo, stack)
    live = source if isinstance(source, LiveSource) else None
    controls = Controls(live, quit=lambda: player.stop()) if live is not None else None

    output = stack.enter_context(ports.open_output(midi, args.port, None if args.port else
                                                   args.virtual or ports.VIRTUAL_NAME))
    inputs = _open_inputs(args, midi, clock, controls, stack)
    named = ([output.name] if args.port else [], [port.name for name, port in inputs if name is not None])
    watch = ports.PortWatch(output.api, *named) if any(named) or output.api == "UNIX_JACK" else None
    if watch is not None:
        stack.callback(watch.close)
    timeline: Timeline = clock if clock is not None else FixedTempo(bpm)
    player = Player(output, source, timeline, channel=channel, watch=watch,
                    on_phrase=_announce if live is not None else None)
    sync = f"following MIDI clock from {inputs[0][1].name!r}" if clock else f"at {bpm:g} BPM"
    log.info("playing to %r %s — Ctrl-C stops", output.name, sync)
    if controls is not None:
        if stack.enter_context(keyboard(controls.key)):
            log.info("%s", KEYS_HELP)
        if clock is not None or args.cc_port is not None:
            log.info("CC %d/%d/%d on %r change style/density/temperature", CC_STYLE, CC_DENSITY,
                     CC_TEMPERATURE, inputs[-1][1].name)
    player.run()


def _source(args: argparse.Namespace, channel: int, tempo: Callable[[], float],
            stack: ExitStack) -> tuple[FixedSource | LiveSource, float]:
    """What to play, and at what tempo without a clock."""
    settings = Settings(args.style, args.density, args.temperature)
    if args.live:
        source = LiveSource(args.endpoint, settings, bars=args.bars, meter=args.meter, channel=channel,
                            tempo=tempo, seed=args.seed)
        stack.callback(source.close)
        source.start()
        return source, tempo()
    if args.file is not None:
        groove = midifile.read(args.file)
        if args.bpm is None and not args.clock and groove.tempo != model_tempo(groove.tempo):
            low, high = TEMPO_RANGE
            raise midifile.MidiFileError(f"{args.file} plays at {groove.tempo:g} BPM; play it at {low:g}-{high:g} with --bpm")
        phrase = Phrase.build(groove.notes, groove.length, groove.meter, args.file.name, channel)
        return FixedSource(phrase, args.loop), args.bpm or groove.tempo
    phrase = generate_once(args.endpoint, settings, bars=args.bars, meter=args.meter, tempo=tempo(),
                           seed=args.seed, channel=channel)
    return FixedSource(phrase, args.loop), tempo()


def _announce(beat: float, phrase: Phrase) -> None:
    log.info("bar %d: %s", beat // phrase.bar + 1, phrase.label)


def _open_inputs(args: argparse.Namespace, midi: mido.Backend, clock: MidiClock | None,
                 controls: Controls | None, stack: ExitStack) -> list[tuple[str | None, ports.PolledInput]]:
    """Each distinct input once: (the name asked for, or None for a virtual port; the port)."""
    wanted: dict[str | None, list[Callable[[mido.Message, float], object]]] = {}
    if clock is not None:
        wanted.setdefault(args.clock_port, []).append(clock.feed)
    if controls is not None and (args.cc_port is not None or clock is not None):
        wanted.setdefault(args.cc_port if args.cc_port is not None else args.clock_port, []).append(
            lambda msg, _: controls.cc(msg))
    opened = []
    for name, handlers in wanted.items():
        def dispatch(msg: mido.Message, now: float, handlers: list = handlers) -> None:
            for handle in handlers:
                handle(msg, now)
        port = ports.open_input(midi, name, dispatch)
        stack.callback(port.close)
        opened.append((name, port))
    return opened
