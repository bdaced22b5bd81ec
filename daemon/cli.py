"""`drumigen`: the command line. Every command has --help; exit codes are stable (see EXIT_*)."""

from __future__ import annotations

import argparse
import logging
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path

from daemon import __version__
from daemon.play import add_play_parser
from shared.notes import Note, bar_beats
from shared.protocol import (
    BARS_RANGE,
    DEFAULT_ENDPOINT,
    E_TIMEOUT,
    E_UNAVAILABLE,
    FOCUS_RANGE,
    GUIDANCE_RANGE,
    LEARN_STEPS_RANGE,
    MAX_CLIP_BARS,
    MAX_CLIP_NOTES,
    OP_GENERATE,
    OP_INFO,
    OP_PING,
    OP_STYLES,
    PROTOCOL_VERSION,
    SEED_RANGE,
    STRENGTH_RANGE,
    STYLE_STRENGTH,
    TEMPERATURE_RANGE,
    TEMPO_RANGE,
    TOP_P_RANGE,
    VARIATIONS_RANGE,
    ProtocolError,
    brief,
    model_tempo,
)

EXIT_OK = 0
EXIT_ERROR = 1  # the request was refused or failed (bad input, unknown style, ...)
EXIT_USAGE = 2  # argparse's own code for bad flags
EXIT_UNAVAILABLE = 3  # no daemon answered at the endpoint (none listens, or it did not answer in time)

DATA_HELP = "Groove MIDI Dataset folder (default: shared/datasets/groove beside the repository)"

log = logging.getLogger("drumigen")


def cmd_train(args: argparse.Namespace) -> int:
    from daemon.train import TrainConfig, train

    overrides = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name, None) is not None}
    if "guidance" in overrides and "teacher" not in overrides:
        print("drumigen: --guidance is the guidance a --teacher is distilled at; give the teacher too", file=sys.stderr)
        return EXIT_USAGE
    result = train(TrainConfig(**overrides))
    what = "NLL" if result["objective"] == "nll_token" else "KL from the guided teacher"
    print(f"best validation {what} {result['best_val']:.4f} nats/token after {result['minutes']:.1f} min")
    return EXIT_OK


def add_train(sub) -> None:
    p = sub.add_parser("train", help="train the drummer on the Groove MIDI Dataset",
                       description="Train on GMD's train split, validate on its validation split.")
    p.add_argument("--data", type=Path, help=DATA_HELP)
    p.add_argument("--out", type=Path, help="checkpoint path (default runs/gmd/model.pt)")
    p.add_argument("--cache-dir", dest="cache_dir", type=Path, help="tokenized-data cache (default .cache)")
    p.add_argument("--limit-files", dest="limit_files", type=int, help="use only N files per split (smoke tests)")
    for name in ("n_layer", "n_head", "n_embd", "block_size", "steps", "batch_size", "warmup", "eval_every",
                 "eval_windows", "seed", "threads"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=int)
    for name in ("dropout", "lr", "min_lr", "weight_decay", "grad_clip", "guidance"):
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=float)
    p.add_argument("--genre-balance", dest="genre_balance", type=fraction_arg,
                   help="0 draws genres as the data plays them, 1 all alike (default 0.5, as the shipped model)")
    p.add_argument("--rebar", type=fraction_arg,
                   help="the share of 4/4 windows replayed in another meter, so bars of every length are learned "
                        "(default 0.2, as the shipped model; 0: GMD's meters only)")
    p.add_argument("--device", type=device_arg, help="auto (CUDA when present), cpu, cuda, cuda:1, mps")
    p.add_argument("--resume", type=Path, help="continue from a checkpoint: a *.last.pt brings its optimiser state; any other "
                        "(the shipped one) starts a fresh optimiser with a new warm-up")
    p.add_argument("--teacher", type=Path, help="distil this checkpoint's classifier-free guidance (at --guidance, default "
                        "1.5) into a copy of it, so plain sampling plays as guided sampling did; the shipped recipe adds "
                        "--guidance 2.0 --steps 500 --warmup 30 --lr 3e-4 --min-lr 3e-5 --dropout 0 --eval-every 100 "
                        "(docs/model.md)")
    p.set_defaults(func=cmd_train)



# --- the daemon ------------------------------------------------------------------------------
class LogFile(logging.FileHandler):
    """The daemon's log file. One that cannot be written (a full disk) is said once on stderr,
    where logging printed a 20-line traceback for every record, and no longer named as where
    the details are (server.log_file_hint)."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        if not isinstance(sys.exc_info()[1], OSError):  # a record that cannot be formatted: logging's own report
            super().handleError(record)
        elif not self.failed:
            self.failed = True
            print(f"drumigen: the log file {self.baseFilename} cannot be written ({sys.exc_info()[1]}); "
                  "the daemon goes on without it", file=sys.stderr)


def cmd_serve(args: argparse.Namespace) -> int:
    import zmq

    from daemon import server

    log_file = args.log_file or server.default_log_file()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    handler = LogFile(log_file)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    if args.log_file:  # asked for a file: the terminal (a daemon run in the background of a shell) hears only trouble
        for terminal in (h for h in root.handlers if type(h) is logging.StreamHandler):
            terminal.setLevel(logging.WARNING)
    root.addHandler(handler)
    config = server.ServeConfig(bind=args.bind, device=args.device, threads=args.threads,
                                curve_secret=args.curve_secret, insecure=args.insecure, styles=args.styles)
    if args.checkpoint:
        config.checkpoint = args.checkpoint
    try:
        server.serve(config)
    except (ValueError, FileNotFoundError) as err:  # a refused bind, a missing or foreign checkpoint
        log.error("%s", err)
        return EXIT_ERROR
    except zmq.ZMQError as err:  # address in use, bad endpoint
        log.error("cannot listen on %s: %s (is another daemon running?)", args.bind, err)
        return EXIT_ERROR
    return EXIT_OK


def add_serve(sub) -> None:
    p = sub.add_parser("serve", help="run the inference daemon",
                       description="Load the model once and answer requests over ZeroMQ (docs/protocol.md).")
    p.add_argument("--bind", type=bind_arg, default=DEFAULT_ENDPOINT, help=f"ZeroMQ endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--checkpoint", type=Path, help="model checkpoint (default: the bundled GMD model)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, mps")
    p.add_argument("--threads", type=whole(1, 1024),
                   help="torch's CPU threads for humanize (default: all cores); sampling and style learning "
                        "run on one thread, which is faster for their small steps")
    p.add_argument("--log-file", dest="log_file", type=Path,
                   help="log here, and only warnings and errors to the terminal (default: everything to both, "
                        "the file mididrumigen/daemon.log in $XDG_STATE_HOME or ~/.local/state)")
    p.add_argument("--curve-secret", dest="curve_secret", type=Path,
                   help="CurveZMQ server secret key from `drumigen keys` (required off loopback)")
    p.add_argument("--insecure", action="store_true", help="allow a non-loopback bind without CurveZMQ")
    add_styles_flag(p)
    p.set_defaults(func=cmd_serve)


def cmd_keys(args: argparse.Namespace) -> int:
    from daemon.curve import make_keys

    public, secret = make_keys(args.dir, replace=args.force)
    print(f"public key  {public}  (give it to clients: --server-key {public})")
    print(f"secret key  {secret}  (keep it: drumigen serve --curve-secret {secret})")
    return EXIT_OK


def add_keys(sub) -> None:
    p = sub.add_parser("keys", help="make a CurveZMQ key pair for a daemon reachable off this computer")
    p.add_argument("dir", type=Path, nargs="?", default=Path("."), help="folder for server.key and server.key_secret")
    p.add_argument("--force", action="store_true", help="replace a key pair already there (its clients lose access)")
    p.set_defaults(func=cmd_keys)


# --- talking to the daemon ---------------------------------------------------------------------
class Unavailable(Exception):
    """No daemon answered: none listens (the message says how to start one), or it did not
    answer in time."""


class ForeignReply(ValueError):
    """A reply this drumigen cannot read: a daemon of another version, or no daemon at all."""

    def __init__(self, what: str) -> None:
        super().__init__(f"the daemon's reply {what}; is it another version of MidiDrumiGen? (drumigen info)")

    @classmethod
    def reading(cls, err: Exception) -> "ForeignReply":
        """For the KeyError or TypeError reading a reply raised."""
        return cls(f"has no field {brief(err.args[0])}" if isinstance(err, KeyError) and err.args else
                   f"is not shaped as this drumigen reads it ({brief(str(err))})")


def patterns_of(reply: dict) -> list[tuple[int, list[Note]]]:
    """Each pattern of a reply (or of the same done in process) as (seed, notes)."""
    try:
        found = [(p["seed"], [Note.from_wire(n) for n in p["notes"]]) for p in reply["patterns"]]
    except (KeyError, TypeError) as err:
        raise ForeignReply.reading(err) from None
    except ProtocolError as err:
        raise ForeignReply(f"holds a note this drumigen cannot play ({err.message})") from None
    if not found:
        raise ForeignReply("holds no patterns")
    return found


RETRIES = 1  # a request whose connection drops is sent once more, on a fresh one (Lazy Pirate)


def call(args: argparse.Namespace, op: str, **fields) -> dict:
    """One request to the daemon, retried Lazy-Pirate style; raises ProtocolError or Unavailable."""
    if args.server_key:
        reply = _call_curve(args, {"op": op, "id": 1, **fields})
    else:
        from shared.client import DaemonClient

        # --timeout is the whole wait: the client waits one attempt's share per retry while connected
        with DaemonClient(args.endpoint, timeout=args.timeout / (RETRIES + 1), retries=RETRIES) as client:
            r = client.call(op, **fields)
        if not r.ok and r.error_code in (E_UNAVAILABLE, E_TIMEOUT):  # nobody listens, or no answer in time
            raise Unavailable(r.error_message)
        reply = {"ok": r.ok, **(r.data or {})} if r.ok else {"ok": False, "error": {
            "code": r.error_code, "message": r.error_message}}
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise ProtocolError(str(error.get("code")), str(error.get("message")))
    return reply


def _call_curve(args: argparse.Namespace, request: dict) -> dict:
    """A CurveZMQ request (the stdlib client speaks only NULL), Lazy Pirate as DaemonClient's:
    a REQ socket waits up to `--timeout` in all; a connection that drops on the way (the daemon
    restarted) loses the request, which is sent once more on a fresh socket. The daemon is told
    how much of the wait is left, and drops the work when that passes."""
    import msgpack
    import zmq

    from daemon.curve import read_curve_key

    server_key = read_curve_key(args.server_key)
    ctx = zmq.Context.instance()
    deadline = time.monotonic() + args.timeout
    dropped = 0
    for _ in range(RETRIES + 1):
        sock = ctx.socket(zmq.REQ)
        monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.curve_serverkey = server_key
            sock.curve_publickey, sock.curve_secretkey = zmq.curve_keypair()
            sock.connect(args.endpoint)
            sock.send(msgpack.packb({**request, "timeout": max(deadline - time.monotonic(), 0.001)}))
            poller = zmq.Poller()
            poller.register(sock, zmq.POLLIN)
            poller.register(monitor, zmq.POLLIN)
            while (left := deadline - time.monotonic()) > 0:
                ready = dict(poller.poll(left * 1000))
                if sock in ready:
                    return msgpack.unpackb(sock.recv(), raw=False)
                if monitor in ready:
                    monitor.recv_multipart()  # EVENT_DISCONNECTED: the request went with the connection
                    dropped += 1
                    break
            else:
                break
        finally:
            sock.disable_monitor()
            monitor.close(0)
            sock.close()
    if dropped > RETRIES:  # at once, as a daemon with another key does
        raise Unavailable(f"the connection to {args.endpoint} dropped {dropped} times: a daemon with a different "
                          "server key, or one restarting?")
    raise Unavailable(f"no answer from {args.endpoint} within {args.timeout:g} s: "
                      "daemon down, or a different server key?")


def add_client_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--endpoint", type=endpoint_arg, default=DEFAULT_ENDPOINT,
                   help=f"daemon endpoint (default {DEFAULT_ENDPOINT})")
    p.add_argument("--timeout", type=bounded(0.1, 3600.0), default=60.0,
                   help="seconds to wait for an answer in all; a request whose connection drops (the daemon "
                        "restarted) is sent once more on a fresh one (Lazy Pirate) (default 60)")
    p.add_argument("--server-key", dest="server_key", type=Path,
                   help="the daemon's CurveZMQ public key file, when it runs with --curve-secret")


def cmd_ping(args: argparse.Namespace) -> int:
    from time import monotonic, perf_counter, sleep

    deadline = monotonic() + args.wait
    while True:
        started = perf_counter()
        try:
            call(args, OP_PING)
            break
        except Unavailable:
            if monotonic() >= deadline:
                raise
            sleep(0.2)  # a daemon that is still starting up
    print(f"daemon at {args.endpoint} answered in {(perf_counter() - started) * 1000:.1f} ms")
    return EXIT_OK


def cmd_info(args: argparse.Namespace) -> int:
    reply = call(args, OP_INFO)
    for key in ("version", "protocol", "model", "model_params", "device", "queue"):
        print(f"{key:13} {reply.get(key)}")
    return EXIT_OK


def cmd_styles(args: argparse.Namespace) -> int:
    reply = call(args, OP_STYLES)
    try:
        lines = ["genres          " + ", ".join(reply["genres"]),
                 "presets         " + ", ".join(reply["presets"]),
                 "drummers        " + ", ".join(reply["drummers"]),
                 "your styles     " + (", ".join(reply["learned"]) or "none yet (drumigen style learn NAME FILES...)"),
                 "time signatures " + ", ".join(f"{n}/{d}" for n, d in reply["time_signatures"]),
                 "kits            " + ", ".join(reply["kits"])]
    except (KeyError, TypeError, ValueError) as err:
        raise ForeignReply.reading(err) from None
    print("\n".join(lines))
    return EXIT_OK


# --- generate --------------------------------------------------------------------------------
def cmd_generate(args: argparse.Namespace) -> int:
    one_file = args.out is not None and args.out.suffix.lower() in (".mid", ".midi")  # -o groove.mid, as other commands take
    if one_file and args.count > 1:
        print(f"drumigen generate: --out {args.out} names one file for {args.count} grooves: give a folder",
              file=sys.stderr)
        return EXIT_USAGE
    wire = {k: v for k, v in {
        "style": args.style, "drummer": args.drummer, "bars": args.bars, "tempo": args.tempo,
        "time_signature": list(args.time_signature), "variations": args.count, "temperature": args.temperature,
        "top_p": args.top_p, "seed": args.seed, "kind": args.kind, "density": args.density,
        "complexity": args.complexity, "strength": args.strength, "guidance": args.guidance, "focus": args.focus,
        "kit": args.kit,
    }.items() if v is not None}
    reply = {"patterns": _generate_locally(args, wire)} if args.local else call(args, OP_GENERATE, **wire)
    patterns = patterns_of(reply)
    from daemon import midifile
    from daemon.show import grid

    meter = tuple(args.time_signature)
    length = args.bars * bar_beats(meter)
    piece = drawn_as(args.kit)
    for i, (seed, notes) in enumerate(patterns, 1):
        title = f"variation {i}/{len(patterns)}: {len(notes)} notes, seed {seed}"
        if args.out:
            path = args.out if one_file else args.out / _file_name(args, seed)
            midifile.write(path, notes, args.tempo, meter, length, name=_style_label(args.style))
            title += f" -> {path}"
        print(title)
        if not args.quiet:
            print(grid(notes, meter, length, piece=piece) + "\n")
    if not args.out:
        print("(not saved: --out FOLDER writes each groove as a .mid there)")
    return EXIT_OK


def _generate_locally(args: argparse.Namespace, wire: dict) -> list[dict]:
    from daemon import checkpoint
    from daemon.generate import Generator
    from daemon.requests import request_for, wire_patterns

    generator = Generator.load(args.checkpoint or checkpoint.BUNDLED, args.device, style_folder=args.styles)
    request = request_for(wire, generator)
    return wire_patterns(generator.generate([request])[0], packed=False)  # as the daemon answers


def _file_name(args: argparse.Namespace, seed: int) -> str:
    num, den = args.time_signature
    style = re.sub(r"[^a-z0-9.-]+", "-", _style_label(args.style).lower()).strip("-")
    return f"{style}_{args.tempo:g}bpm_{num}-{den}_{args.bars}bars_seed{seed}.mid"


def _style_label(style: str | dict | None) -> str:
    if isinstance(style, dict):
        return "+".join(f"{k}{v:g}" for k, v in style.items())
    return style or "any"


def style_arg(text: str) -> str | dict[str, float]:
    """`funk` or a mix `funk:0.7,jazz:0.3`."""
    if ":" not in text and "," in text:
        raise argparse.ArgumentTypeError(f"{text!r}: a mix gives each style its weight, e.g. funk:0.5,hiphop:0.5")
    if ":" not in text:
        return text
    mix = {}
    for part in text.split(","):
        name, _, weight = part.partition(":")
        if name.strip().lower() in (given.lower() for given in mix):
            raise argparse.ArgumentTypeError(f"style {name.strip()!r} is named twice in the mix")
        try:
            mix[name.strip()] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"style mix part {part!r} is not name:weight") from None
        if not 0 <= mix[name.strip()] < math.inf:  # nan fails this too
            raise argparse.ArgumentTypeError(f"style weight in {part!r} must be a number >= 0")
    return mix


def bounded(low: float, high: float):
    """An argparse type: a number from `low` to `high`."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {low:g}..{high:g}, got {text}")
        return value
    return parse


fraction_arg = bounded(0.0, 1.0)  # a humanize amount, a genre balance


def kit_arg(text: str) -> str | dict[str, int]:
    """An argparse type: a built-in kit's name, or a JSON kit map file, sent as the map itself."""
    from daemon import kit

    if kit.builtin(text) is not None:
        return text.strip().lower()
    try:
        return {str(source): target for source, target in kit.load_map(text).items()}
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def drawn_as(kit_spec: str | dict | None) -> Callable[[int], int] | None:
    """For a kit map of one's own (kit_arg's dict): the drum each of its pads plays, to name the
    grid's rows by (a rack's pad 38 playing the closed hat was drawn as a snare). None: GM names."""
    from daemon import kit

    return kit.heard_as(kit.load_map(kit_spec)) if isinstance(kit_spec, dict) else None


def device_arg(text: str) -> str:
    """An argparse type: auto, cpu, cuda, cuda:N or mps (whether this machine has one is the loader's to say)."""
    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"device must be auto, cpu, cuda, cuda:N or mps, got {text!r}")
    return text


def whole(low: int, high: int):
    """An argparse type: a whole number from `low` to `high`."""
    def parse(text: str) -> int:
        digits = re.fullmatch(r"\s*[+-]?(\d+)\s*", text)
        if digits is None:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number")
        if len(digits[1]) > 18 or not low <= int(text) <= high:  # past 18 digits int() is slow, and out of range
            raise argparse.ArgumentTypeError(f"must be {low}..{high}, got {text[:40]}")
        return int(text)
    return parse


def bind_arg(text: str) -> str:
    """An argparse type: an endpoint the daemon can bind: tcp://host:port (port 1-65535; * or 0: any
    free one, which the log names), ipc:// or inproc://."""
    if text.startswith(("ipc://", "inproc://")):
        return text
    match = re.fullmatch(r"tcp://(\[[^\]]+\]|[^:/\[\]]+):(\d{1,5}|\*)", text)
    if match is None or (match[2] != "*" and not 0 <= int(match[2]) <= 65535):
        raise argparse.ArgumentTypeError(f"{text!r} is not an endpoint like {DEFAULT_ENDPOINT} (port 1-65535, or * or 0 for any)")
    return text


def endpoint_arg(text: str) -> str:
    """An argparse type: tcp://host:port, checked as the client will read it."""
    from shared.client import parse_endpoint

    try:
        parse_endpoint(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def time_signature_arg(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,2})/(\d{1,2})", text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"time signature {text!r} is not like 4/4 or 7/8")
    return int(match[1]), int(match[2])


def add_generate(sub) -> None:
    p = sub.add_parser("generate", help="generate grooves (through the daemon, or --local)",
                       description="Generate drum grooves, show them as grids and optionally write .mid files.")
    p.add_argument("--style", type=style_arg,
                   help="any style `drumigen styles` lists (a genre, drummer, preset or your own), or a mix: "
                        "funk:0.7,jazz:0.3")
    p.add_argument("--drummer", help="play like one GMD drummer: drummer1 .. drummer10")
    p.add_argument("--bars", type=whole(*BARS_RANGE), default=4, help="bars per groove, 1-16 (default 4)")
    p.add_argument("--tempo", type=bounded(*TEMPO_RANGE), default=120.0,
                   help=f"BPM, {TEMPO_RANGE[0]:g}-{TEMPO_RANGE[1]:g} (default 120)")
    p.add_argument("--time-signature", dest="time_signature", type=time_signature_arg, default=(4, 4),
                   help="meter, e.g. 4/4, 3/4, 6/8, 5/4, 7/8 (default 4/4)")
    p.add_argument("--count", type=whole(*VARIATIONS_RANGE), default=1, help="how many variations, 1-16 (default 1)")
    p.add_argument("--seed", type=whole(*SEED_RANGE), help="same request + same seed = same groove")
    p.add_argument("--temperature", type=bounded(*TEMPERATURE_RANGE), help="randomness, 0.05-3 (default 1.0)")
    p.add_argument("--top-p", dest="top_p", type=bounded(*TOP_P_RANGE), help="nucleus sampling mass, 0.01-1 (default 0.95)")
    p.add_argument("--kind", choices=("beat", "fill"), help="a groove or a fill")
    p.add_argument("--density", type=fraction_arg, help="0 sparse .. 1 busy")
    p.add_argument("--complexity", type=fraction_arg, help="0 straight .. 1 syncopated")
    p.add_argument("--strength", type=bounded(*STRENGTH_RANGE), help=f"how strongly the style is played: 0 none, 1 as the model "
                                                  f"learned it, up to {STRENGTH_RANGE[1]:g} (default {STYLE_STRENGTH} "
                                                  "for genres and presets, 1 for your learned styles and drummers)")
    p.add_argument("--guidance", type=bounded(*GUIDANCE_RANGE), help="classifier-free guidance 0-2 (default 1): > 1 follows the controls "
                                                  "harder, 0 ignores them")
    add_focus_flag(p)
    p.add_argument("--kit", type=kit_arg, help="output drum map: gm (default), gmd, rack16, or a JSON file of "
                                               "{gm_pitch: your_pitch} (a Drum Rack's pads)")
    p.add_argument("--out", "-o", type=Path, help="folder to write one .mid per groove into (or, for one groove, "
                                                  "a .mid file)")
    p.add_argument("--quiet", "-q", action="store_true", help="do not draw the grids")
    add_local_flags(p)
    add_client_flags(p)
    p.set_defaults(func=cmd_generate)


def add_focus_flag(p) -> None:
    p.add_argument("--focus", type=whole(*FOCUS_RANGE), help="takes per groove, 1-8; the one most typical of the style is kept "
                                             "(default 1; each take costs about as much as a variation)")


def add_local_flags(p) -> None:
    """--local: the model runs in this process, no daemon needed."""
    p.add_argument("--local", action="store_true", help="run the model in this process instead of the daemon")
    p.add_argument("--checkpoint", type=Path, help="with --local: model checkpoint (default: bundled)")
    p.add_argument("--device", type=device_arg, default="auto", help="with --local: auto, cpu, cuda, cuda:1, mps")
    add_styles_flag(p, "with --local: ")


def add_styles_flag(p, when: str = "") -> None:
    """--styles: the learned styles' folder, for the commands that read or write it (a daemon
    started with `serve --styles DIR` and a `style learn` without it saw different styles)."""
    p.add_argument("--styles", type=Path, help=f"{when}folder of learned styles (default: $MIDIDRUMIGEN_STYLES, else "
                                               "~/.local/share/mididrumigen/styles)")


# --- working on a clip: continue, variation, fill ------------------------------------------------
def cmd_clip_op(args: argparse.Namespace) -> int:
    """Send a .mid to a clip op (or run it --local) and write what comes back."""
    from daemon import midifile

    groove = midifile.read(args.file, drums_only=args.command != "drumify")  # drumify plays on any rhythm
    if args.command != "drumify":
        _warn_unheard(args.file, groove.notes, args.kit)
    bar = bar_beats(groove.meter)
    wire = _clip_wire(args, groove) | {k: v for k, v in {
        "style": args.style, "seed": args.seed, "temperature": args.temperature, "focus": args.focus,
        "bars": getattr(args, "bars", None), "every": getattr(args, "every", None), "kit": args.kit,
    }.items() if v is not None}
    (seed, notes), *_ = patterns_of({"patterns": _clip_op_locally(args, wire)} if args.local
                                    else call(args, args.command, **wire))
    length = groove.length
    if args.command == "continue":  # the clip grows: keep it and add the new bars
        length += args.bars * bar
        notes = groove.notes + notes
    midifile.write(args.out, notes, groove.tempo, groove.meter, length, name=f"MidiDrumiGen {args.command}",
                   tempo_changes=groove.tempo_changes)  # the clip's own timing kept
    print(f"{args.command}: {len(notes)} notes, {length:g} beats, seed {seed} -> {args.out}")
    if not args.quiet:
        from daemon.show import grid

        print(grid(notes, groove.meter, length, piece=drawn_as(args.kit)))
    return EXIT_OK


def _clip_wire(args: argparse.Namespace, groove) -> dict:
    """A file's groove as a clip op's fields; a ValueError, said of the file, for one longer than
    a clip op takes (not of a `length` field the user never wrote)."""
    from daemon import midifile

    bar = bar_beats(groove.meter)
    if groove.length > MAX_CLIP_BARS * bar:
        raise ValueError(f"{args.file} lasts {groove.length / bar:g} bars of {groove.meter[0]}/{groove.meter[1]}; "
                         f"{args.command} takes clips of up to {MAX_CLIP_BARS} bars")
    if len(groove.notes) > MAX_CLIP_NOTES:  # sent anyway, the daemon's msgpack limits answered for it
        raise ValueError(f"{args.file} holds {len(groove.notes)} notes; {args.command} takes clips of up to "
                         f"{MAX_CLIP_NOTES}")
    return {"notes": [n.to_wire() for n in groove.notes], "length": groove.length,
            "tempo": model_tempo(groove.tempo), "time_signature": list(groove.meter)}


def _warn_unheard(path: Path, notes: list[Note], kit_choice: str | dict[str, int] | None,
                  refused_if_none: bool = True) -> None:
    """Say when most of a file's notes are not drums the model hears (a melody, or a rack's pads
    without --kit); a file with none at all is refused by the op itself, unless not
    `refused_if_none` (humanize plays a feel into any percussion, and a melody's notes are in its
    range: it went through as "humanized 16 notes")."""
    from daemon import clip_ops
    from daemon.requests import kit_map

    missed = clip_ops.unheard(notes, kit_map(kit_choice or "gm"))
    some_heard = len(missed) < len(notes)
    if missed and (some_heard or not refused_if_none) and 2 * len(missed) > len(notes):
        print(f"drumigen: warning: {len(missed)} of the {len(notes)} notes in {path} are not drums the model hears "
              f"(pitches {', '.join(map(str, sorted({n.pitch for n in missed})[:8]))}); a rack of your own needs --kit",
              file=sys.stderr)


def _clip_op_locally(args: argparse.Namespace, wire: dict) -> list[dict]:
    from daemon import checkpoint, clip_ops
    from daemon.generate import Generator
    from daemon.requests import clip, request_for, whole_number, wire_patterns

    generator = Generator.load(args.checkpoint or checkpoint.BUNDLED, args.device, style_folder=args.styles)
    request = request_for(wire, generator)
    notes, length = clip(wire, request.meter)
    if args.command == "continue":
        found = clip_ops.continue_clip(generator, request, notes, length, request.bars)
    elif args.command == "variation":
        found = clip_ops.vary_clip(generator, request, notes, length)
    elif args.command == "drumify":
        found = clip_ops.drumify_clip(generator, request, notes, length)
    else:
        found = clip_ops.fill_clip(generator, request, notes, length, whole_number(wire, "every", None, (1, MAX_CLIP_BARS)))
    return wire_patterns(found, packed=False)  # as the daemon answers


def add_clip_ops(sub) -> None:
    for name, text in (("continue", "play more bars after a groove in a .mid"),
                       ("variation", "a new take on a groove in a .mid, as long as it"),
                       ("fill", "put fills into a groove in a .mid (its last bar, or every N bars)"),
                       ("drumify", "a drum groove that plays on the rhythm of a .mid (a tapped line, a bass line)")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        p.add_argument("file", type=Path, help="the groove (.mid)")
        p.add_argument("--out", "-o", type=Path, required=True, help="the .mid to write")
        heard = name in ("continue", "variation")  # fill and drumify do not play on from the clip's notes
        p.add_argument("--style", type=style_arg, help="any style `drumigen styles` lists, or a mix (default: "
                                                       + ("what the model hears in the clip)" if heard else "any style)"))
        p.add_argument("--seed", type=whole(*SEED_RANGE), help="same clip + same seed = same result")
        p.add_argument("--temperature", type=bounded(*TEMPERATURE_RANGE), help="randomness, 0.05-3 (default 1.0)")
        p.add_argument("--kit", type=kit_arg, help="the file's drum map, which the result keeps: gm (default), gmd, "
                                                   "rack16, or a JSON file of {gm_pitch: your_pitch}")
        add_focus_flag(p)
        if name == "continue":
            p.add_argument("--bars", type=whole(*BARS_RANGE), default=4, help="new bars, 1-16 (default 4)")
        if name == "fill":
            p.add_argument("--every", type=whole(1, MAX_CLIP_BARS), help="a fill every N bars (default: only the last bar)")
        p.add_argument("--quiet", "-q", action="store_true", help="do not draw the grid")
        add_local_flags(p)
        add_client_flags(p)
        p.set_defaults(func=cmd_clip_op)


# --- humanize ---------------------------------------------------------------------------------
def cmd_humanize(args: argparse.Namespace) -> int:
    """Humanize a .mid in this process, as the daemon's `humanize` op does (same checks, same
    seed, same notes)."""
    from daemon import checkpoint, clip_ops, midifile, styles
    from daemon.generate import GrooveRequest, Voice
    from daemon.humanize import BUNDLED_HUMANIZER, Humanizer
    from daemon.requests import checked_style, clip, kit_map, meter
    from daemon.vocab import Vocabulary

    groove = midifile.read(args.file)
    _warn_unheard(args.file, groove.notes, args.kit, refused_if_none=False)
    vocab = Vocabulary.from_dict(checkpoint.load_state(checkpoint.BUNDLED)["vocab"])
    wire = _clip_wire(args, groove)
    notes, length = clip(wire, meter(wire, vocab.meters))  # a meter, length and size the daemon takes
    style = checked_style(args.style)  # as the daemon checks it: weights >= 0, not all zero, no `any` in a mix
    feel = None  # the genre the daemon's humanize plays the style in (styles.Resolved.feel)
    if style is not None:
        feel = styles.resolve_mix({style: 1.0} if isinstance(style, str) else style, vocab, folder=args.styles).feel
    humanizer = Humanizer.load(args.checkpoint or BUNDLED_HUMANIZER)
    req = GrooveRequest(tempo=wire["tempo"], meter=groove.meter, seed=args.seed, kit=kit_map(args.kit or "gm"),
                        voice=Voice(feel=feel))
    (played,) = clip_ops.humanize_clip(humanizer, req, notes, length, args.amount, args.ghost_notes, chance=False)
    midifile.write(args.out, played.notes, groove.tempo, groove.meter, length, name="MidiDrumiGen humanized",
                   tempo_changes=groove.tempo_changes)
    added = len(played.notes) - len(notes)
    print(f"humanized {len(notes)} notes" + (f" (+{added} ghost notes)" if added else "")
          + f" in the feel of {feel or 'GMD as a whole'}, seed {played.seed} -> {args.out}")
    return EXIT_OK


def add_humanize_parser(sub) -> None:
    p = sub.add_parser("humanize", help="add a GMD drummer's timing and dynamics to a quantised .mid",
                       description="Move each hit off the grid and shape its velocity the way GMD drummers "
                                   "play the style; optionally add snare ghost notes.")
    p.add_argument("file", type=Path, help="a quantised drum .mid")
    p.add_argument("--style", type=style_arg, help="whose feel: a genre, a preset, a style you learned (its genre), a "
                                                  "mix (its strongest genre); a drummer, or none, GMD as a whole")
    p.add_argument("--amount", type=fraction_arg, default=1.0, help="0 unchanged .. 1 the full feel (default 1)")
    p.add_argument("--seed", type=whole(*SEED_RANGE), help="same file + same seed = same result")
    p.add_argument("--ghost-notes", dest="ghost_notes", action="store_true", help="add soft snare ghost notes")
    p.add_argument("--kit", type=kit_arg, help="the file's drum map, which the result keeps: gm (default), gmd, "
                                               "rack16, or a JSON file of {gm_pitch: your_pitch}")
    p.add_argument("--checkpoint", type=Path, help="humanizer checkpoint (default: the bundled one)")
    add_styles_flag(p)
    p.add_argument("--out", "-o", type=Path, required=True, help="the .mid to write")
    p.set_defaults(func=cmd_humanize)


def cmd_train_humanizer(args: argparse.Namespace) -> int:
    from daemon.data import DEFAULT_DATA
    from daemon.humanize import HumanizerConfig
    from daemon.train_humanizer import train_humanizer

    config = HumanizerConfig(**{k: v for k, v in (("epochs", args.epochs), ("seed", args.seed)) if v is not None})
    meta = train_humanizer(args.data or DEFAULT_DATA, args.out, config)  # no dataset there: main says so
    print(f"humanizer -> {args.out}: validation offset MAE {meta['val_offset_mae_16ths']:.3f} 16ths, "
          f"velocity MAE {meta['val_velocity_mae']:.1f}, epoch {meta['best_epoch']}, {meta['seconds']:.0f} s")
    return EXIT_OK


def add_train_humanizer_parser(sub) -> None:
    p = sub.add_parser("train-humanizer", help="train the humanizer on the Groove MIDI Dataset",
                       description="Fit the humanizer on GMD's train split; its validation split picks the epoch.")
    p.add_argument("--data", type=Path, help=DATA_HELP)
    p.add_argument("--out", type=Path, default=Path("runs/humanizer/humanizer-gmd.pt"), help="checkpoint to write")
    p.add_argument("--epochs", type=whole(1, 1000),
                   help="most epochs, 1-1000 (default 12; the validation loss may stop it earlier)")
    p.add_argument("--seed", type=whole(0, 2**63 - 1), help="torch seed")
    p.set_defaults(func=cmd_train_humanizer)


# --- files -----------------------------------------------------------------------------------
def cmd_show(args: argparse.Namespace) -> int:
    from daemon import midifile
    from daemon.show import grid, piano_roll

    groove = midifile.read(args.file)
    about = (f"{args.file}: {len(groove.notes)} notes, {groove.tempo:g} BPM, "
             f"{groove.meter[0]}/{groove.meter[1]}, {groove.length:g} beats")
    print(about)
    piece = drawn_as(args.kit)
    print(grid(groove.notes, groove.meter, groove.length, piece=piece))
    if args.png:
        try:
            piano_roll(groove.notes, groove.meter, groove.length, args.png, title=about, piece=piece)
        except RuntimeError as err:  # no matplotlib
            print(f"drumigen: {err}", file=sys.stderr)
            return EXIT_ERROR
        print(f"piano roll -> {args.png}")
    return EXIT_OK


def add_show(sub) -> None:
    p = sub.add_parser("show", help="draw a MIDI groove as a drum grid in the terminal (or a PNG)",
                       description="Draw a MIDI groove as a drum grid in the terminal and, with --png, as a "
                                   "piano-roll image that shows its exact timing and velocities.")
    p.add_argument("file", type=Path, help="a .mid file")
    p.add_argument("--png", type=Path, help="also draw it as a piano roll into this .png (needs the png extra)")
    p.add_argument("--kit", type=kit_arg, help="the file's drum map, to name its rows by the drum each pad plays: a JSON "
                                               "file of {gm_pitch: your_pitch} (default: GM names)")
    p.set_defaults(func=cmd_show)


def cmd_eval(args: argparse.Namespace) -> int:
    from daemon import checkpoint
    from daemon.data import DEFAULT_DATA
    from daemon.evaluate import run

    parts = run(args.checkpoint or checkpoint.BUNDLED, args.data or DEFAULT_DATA, args.cache_dir,
                per_genre=args.per_genre, temperature=args.temperature, strength=args.strength, guidance=args.guidance,
                focus=args.focus, nll=not args.no_nll, **({} if args.top_p is None else {"top_p": args.top_p}))
    for i, part in enumerate(parts):  # each as it is measured: minutes apart on GMD
        print(("\n" if i else "") + part, flush=True)
    return EXIT_OK


def add_eval(sub) -> None:
    p = sub.add_parser("eval", help="measure a checkpoint against held-out GMD grooves",
                       description="NLL on GMD's validation and test splits, and per-genre quality of generated "
                                   "grooves against real held-out grooves (see daemon/evaluate.py).")
    p.add_argument("--checkpoint", type=Path, help="checkpoint to measure (default: the bundled one)")
    p.add_argument("--data", type=Path, help=DATA_HELP)
    p.add_argument("--cache-dir", dest="cache_dir", type=Path, default=Path(".cache"), help="tokenized-data cache")
    p.add_argument("--per-genre", dest="per_genre", type=whole(1, 4096), default=64,
                   help="grooves generated per genre (default 64)")
    p.add_argument("--temperature", type=bounded(*TEMPERATURE_RANGE), default=1.0)
    p.add_argument("--top-p", dest="top_p", type=bounded(*TOP_P_RANGE), help="nucleus sampling mass (default 0.95, "
                                                                              "generate's)")
    p.add_argument("--strength", type=bounded(*STRENGTH_RANGE), help="style strength (default: each style's own)")
    p.add_argument("--guidance", type=bounded(*GUIDANCE_RANGE), default=1.0)
    p.add_argument("--focus", type=whole(*FOCUS_RANGE), default=1,
                   help="takes per generated groove, 1-8, the most typical of its style kept (default 1)")
    p.add_argument("--no-nll", dest="no_nll", action="store_true", help="skip the likelihood part")
    p.set_defaults(func=cmd_eval)


def add_client_commands(sub) -> None:
    for name, func, text in (("ping", cmd_ping, "check that the daemon answers"),
                             ("info", cmd_info, "the daemon's version, model and device"),
                             ("styles", cmd_styles, "the styles, drummers, meters and kits a running daemon plays "
                                                       "(`drumigen style list` describes them without one)")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        add_client_flags(p)
        if name == "ping":
            p.add_argument("--wait", type=bounded(0.0, 3600.0), default=0.0,
                           help="keep trying for this many seconds (startup)")
        p.set_defaults(func=func)


LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def cmd_style(args: argparse.Namespace) -> int:
    from daemon import styles

    return getattr(styles, f"cmd_style_{args.style_action}")(args)


def add_style_parser(sub) -> None:
    """`drumigen style learn|list|rename|delete|export|import` (daemon/styles.py does the work)."""
    p = sub.add_parser("style", help="learn your own styles from MIDI grooves, and manage them",
                       description="Learned styles live in $MIDIDRUMIGEN_STYLES, else "
                                   "$XDG_DATA_HOME/mididrumigen/styles (~/.local/share/mididrumigen/styles); "
                                   "the daemon sees a new one at once. docs/styles.md says how learning works.")
    actions = p.add_subparsers(dest="style_action", required=True, metavar="ACTION")
    learn = actions.add_parser("learn", help="learn a style from 3-20 MIDI grooves (under a minute)")
    learn.add_argument("name", help="the new style's name: letters, digits, '-' or '_'")
    learn.add_argument("files", nargs="+", type=Path, help=".mid files, or folders of them")
    learn.add_argument("--steps", type=whole(*LEARN_STEPS_RANGE),
                       help=f"optimisation steps, {LEARN_STEPS_RANGE[0]}-{LEARN_STEPS_RANGE[1]} (default 40)")
    learn.add_argument("--checkpoint", type=Path, help="model (default: the bundled one)")
    learn.add_argument("--replace", action="store_true", help="overwrite a style of the same name")
    learn.add_argument("--kit", type=kit_arg, help="the files' drum map, for grooves played on a rack of your own: "
                                                   "gm (default), gmd, rack16, or a JSON file of {gm_pitch: your_pitch}")
    listing = actions.add_parser("list", help="the genres, the presets, the drummers and your styles")
    listing.add_argument("--checkpoint", type=Path,
                         help="flag styles learned on a model other than this one (default: the bundled one)")
    rename = actions.add_parser("rename", help="rename a style")
    rename.add_argument("old")
    rename.add_argument("new")
    delete = actions.add_parser("delete", help="delete a style")
    delete.add_argument("name")
    export = actions.add_parser("export", help="copy a style to a file or folder, e.g. to share it")
    export.add_argument("name")
    export.add_argument("path", help="a .json file, or a folder (an existing one, or one written with a trailing /)")
    imp = actions.add_parser("import", help="add a style file exported elsewhere")
    imp.add_argument("path", type=Path)
    imp.add_argument("--name", help="store it under this name instead of its own")
    imp.add_argument("--checkpoint", type=Path, help="refuse a style learned on another model than this one "
                                                     "(default: the bundled one)")
    for action in (learn, listing, rename, delete, export, imp):
        add_styles_flag(action)
    p.set_defaults(func=cmd_style)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="drumigen", description="MidiDrumiGen: AI drum grooves for Ableton Live 12",
                                     epilog="exit codes: 0 ok, 1 refused or failed, 2 bad usage, 3 no daemon")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"drumigen {__version__}, protocol {PROTOCOL_VERSION}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_serve(sub)
    add_client_commands(sub)
    add_generate(sub)
    add_clip_ops(sub)
    add_show(sub)
    add_play_parser(sub)
    add_humanize_parser(sub)
    add_style_parser(sub)
    add_train(sub)
    add_train_humanizer_parser(sub)
    add_eval(sub)
    add_keys(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format=LOG_FORMAT)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)  # `show --png`: its font-cache notices are not ours

    try:
        code = args.func(args)
        sys.stdout.flush()  # into a pipe output waits in a buffer: a closed reader must be heard of here
        return code
    except Unavailable as err:
        print(f"drumigen: {err}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except ProtocolError as err:
        print(f"drumigen: {err.message} [{err.code}]", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as err:  # refused input: a MIDI file or checkpoint that is not one, a GPU this machine lacks
        log.debug("refused", exc_info=True)
        print(f"drumigen: {err}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # `drumigen show x.mid | head`: the reader has what it wanted, as with any Unix tool
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # what is still buffered goes nowhere at exit, not into a traceback
        os.close(devnull)
        return 128 + getattr(signal, "SIGPIPE", 13)  # Windows has no SIGPIPE
    except OSError as err:  # a file that cannot be written or read: a folder in its place, no such folder, ...
        print(f"drumigen: {_os_error(err)}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt as stop:  # Ctrl-C, or the player's SIGTERM/SIGHUP (play.Stopped)
        return 128 + getattr(stop, "signum", signal.SIGINT)


def _os_error(err: OSError) -> str:
    """One line for a file that could not be read or written; a file standing where a folder
    must be (`-o song.mid/out.mid`) is named as such, not as mkdir's "File exists"."""
    if not err.filename:
        return str(err)
    if isinstance(err, (FileExistsError, NotADirectoryError)):
        path = Path(err.filename)
        blocking = next((p for p in (path, *path.parents) if os.path.isfile(p)), None)  # isfile: never raises
        if blocking is not None:
            return f"{blocking} is a file, not a folder"
    return f"{err.filename}: {err.strerror}"


if __name__ == "__main__":
    sys.exit(main())
