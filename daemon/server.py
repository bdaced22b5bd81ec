"""`drumigen serve`: the inference daemon.

ZeroMQ pattern: an asynchronous server (the guide's ROUTER front end with one worker).
The network thread owns the ROUTER socket and answers `ping`, `info`, `styles` and every
malformed request itself, at once; `generate` jobs go to a queue, and so do clip ops and
`learn_style`, which the worker runs alone. Connections take turns in the queue
(daemon/turns.py). One model worker takes everything waiting (up to MAX_BATCH_ROWS rows)
and samples it as one batch, so sixteen clients asking at once cost little more than one;
each request is answered as its own rows end. Results travel back to the
network thread through an inproc PAIR socket, because a ZeroMQ socket belongs to one thread.

Work nobody waits for is dropped: a request may say how long its sender waits (`timeout`; the
Live client gives up then, and cancels it), and a `cancel` names requests its connection no
longer wants (a press that superseded another, a wait given up).
The worker skips such jobs when it takes them and stops sampling them between decode steps,
so the request that replaced them does not wait behind them.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import math
import os
import queue
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgpack
import torch
import zmq

from daemon import __version__, checkpoint, clip_ops, kit, styles
from daemon.curve import read_curve_key
from daemon.generate import Generator, GrooveRequest, Pattern
from daemon.humanize import Humanizer
from daemon.turns import Turns
from daemon.requests import (LEARNED_CLIP_FIELDS, OP_FIELDS, check_fields, clip, flag, kit_map, meter, number,
                             request_for, whole_number, wire_patterns)
from daemon.vocab import DRUMMERS, GENRES
from shared import protocol as P

log = logging.getLogger("drumigen.server")

MAX_QUEUE = 256  # waiting generate requests before new ones get E_BUSY
MAX_QUEUE_PER_CONNECTION = 64  # and from one connection: a flood of one client's must not refuse another's
MAX_BATCH_ROWS = 64  # rows (takes of variations) sampled together in one batch
STOP_GRACE_S = 2.0  # on SIGINT/SIGTERM the running batch may finish within this; later, it is dropped
SOCKET_MAX_BYTES = 4 * P.MAX_MESSAGE_BYTES  # libzmq drops the peer above this; between the two we reply too_large
MAX_ROUTING_FRAMES = 8  # identity frames before the delimiter: a client's, and a few brokers' on the way
# msgpack containers a request may hold: twice a clip's notes (P.MAX_CLIP_NOTES), so up to
# there a client hears that limit, past it this one; bytes expand 50-fold into Python objects
# (8 MiB of empty maps took 600 MB).
UNPACK_LIMITS = {"max_array_len": 2 * P.MAX_CLIP_NOTES, "max_map_len": 1024}
# Containers and their entries a request may hold in all: learn_style's 20 clips of 4,096 notes
# are 0.6 M. The limits above are per container, and 8 MiB of arrays of empty arrays held the
# network thread 3.5 s and took 550 MB; the count stops one a few hundred ms in.
MAX_VALUES = 1 << 20


class TooManyValues(ValueError):
    """A request past MAX_VALUES, raised from inside msgpack's decoding."""


def _unpack(payload: bytes) -> object:
    left = MAX_VALUES

    def count(container):  # msgpack calls it on every array and map it has decoded
        nonlocal left
        left -= 1 + len(container)
        if left < 0:
            raise TooManyValues(f"request holds more than {MAX_VALUES} values")
        return container

    return msgpack.unpackb(payload, raw=False, strict_map_key=True, list_hook=count, object_hook=count,
                           **UNPACK_LIMITS)


def _request_id(value: object) -> bool:
    """A request id as the protocol allows it: an integer, or a short string (it comes back on the
    reply: a 7 MB id echoed to a client that never read took the daemon's memory with it)."""
    return (isinstance(value, int) and not isinstance(value, bool)) or (
        isinstance(value, str) and len(value) <= P.MAX_ID_CHARS)


def _id_of(payload: bytes) -> str | int | None:
    """The id of a request refused as malformed, where it can be read: a map with a key that is
    not a string (`kit={36: 40}`) is valid msgpack that the strict decoding refuses, and a client
    that never hears its id on the answer retries until its timeout instead of showing why. Read
    entry by entry up to `id`, so a container over UNPACK_LIMITS after it (a clip of 10,000
    notes; clients write `op` and `id` first) still lets the id be heard."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, **UNPACK_LIMITS)
    unpacker.feed(payload)
    try:
        for _ in range(unpacker.read_map_header()):
            if unpacker.unpack() == "id":
                request_id = unpacker.unpack()
                return request_id if _request_id(request_id) else None
            unpacker.skip()
    except (ValueError, TypeError, msgpack.UnpackException, msgpack.OutOfData):
        pass
    return None


@dataclass(eq=False)
class Job:
    envelope: list[bytes]  # ROUTER identity frames and the empty delimiter
    request_id: object
    request: GrooveRequest | None  # a plain `generate`: batched with the others waiting
    received: float  # time.perf_counter() when the network thread read it
    task: Callable[[clip_ops.Gone], dict] | None = None  # a clip op or learn_style: runs alone, returns the reply's fields
    packed: bool = False  # the client asked for each pattern's notes as one bin (shared.notes.pack_notes)
    timeout: float | None = None  # how long its sender waits, from `received`; None: as long as it takes
    cancelled: bool = False  # set by the network thread on a `cancel`; read by the worker

    @property
    def key(self) -> tuple:
        """Which request of which connection this is: what a `cancel` names."""
        return tuple(self.envelope), self.request_id

    def abandoned(self) -> bool:
        return self.cancelled or (self.timeout is not None and time.perf_counter() - self.received > self.timeout)

    def dropped_reply(self) -> dict:
        why = "its sender cancelled it" if self.cancelled else f"its timeout of {self.timeout:g} s passed"
        return P.error_reply(self.request_id, P.E_CANCELLED, f"dropped unfinished: {why}")


@dataclass
class ServeConfig:
    bind: str = P.DEFAULT_ENDPOINT
    checkpoint: Path = checkpoint.BUNDLED
    device: str = "auto"
    threads: int | None = None  # torch intra-op threads; default: all cores
    curve_secret: Path | None = None  # z85 server secret key file (from `drumigen keys`)
    insecure: bool = False  # allow a non-loopback bind without CurveZMQ
    styles: Path | None = None  # the user's learned styles; None: styles.default_folder()


class Daemon:
    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        _check_bind(config)
        if config.threads:
            torch.set_num_threads(config.threads)
        started = time.perf_counter()
        self.generator = Generator.load(config.checkpoint, config.device, config.styles)
        log.info("model %s on %s loaded in %.2f s", config.checkpoint.name, self.generator.device,
                 time.perf_counter() - started)
        self.jobs: Turns[Job] = Turns(MAX_QUEUE, lambda job: tuple(job.envelope), MAX_QUEUE_PER_CONNECTION,
                                      lambda job: not job.abandoned())  # superseded presses make room
        self._results: queue.SimpleQueue[tuple[Job, dict]] = queue.SimpleQueue()
        self._open: dict[tuple, list[Job]] = {}  # accepted and not yet answered, by Job.key (network thread only)
        self.stopping = threading.Event()
        self._stop_at = math.inf  # perf_counter() when asked to stop
        self.ctx = zmq.Context()
        self.router = self.ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.MAXMSGSIZE, SOCKET_MAX_BYTES)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a reconnecting client may reuse its identity
        self.router.ipv6 = config.bind.startswith("tcp://[")  # an IPv6 address: off by default in libzmq
        if config.curve_secret is not None:
            secret = read_curve_key(config.curve_secret)
            self.router.curve_secretkey = secret
            self.router.curve_publickey = zmq.curve_public(secret)
            self.router.curve_server = True
        self.router.bind(config.bind)
        self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self._results_in = self.ctx.socket(zmq.PAIR)
        self._results_in.bind(f"inproc://results-{id(self)}")
        self._results_out = self.ctx.socket(zmq.PAIR)
        self._results_out.connect(f"inproc://results-{id(self)}")
        self._results_lock = threading.Lock()  # the worker's sends and close() never meet on _results_out
        self._results_closed = False
        self._worker = threading.Thread(target=self._work, name="model-worker", daemon=True)
        self._info = {
            "version": __version__,
            "protocol": P.PROTOCOL_VERSION,
            "model": config.checkpoint.name,
            "model_params": self.generator.model.num_params(),
            "device": str(self.generator.device),
        }
        self.humanizer = Humanizer.load()
        self._clip_ops: dict[str, Callable[[dict], Callable[[clip_ops.Gone], dict]]] = {
            P.OP_CONTINUE: self._continue,
            P.OP_VARIATION: self._variation,
            P.OP_FILL: self._fill,
            P.OP_HUMANIZE: self._humanize,
            P.OP_DRUMIFY: self._drumify,
            P.OP_LEARN_STYLE: self._learn_style,
        }

    # --- network thread ----------------------------------------------------------------------
    def serve_forever(self) -> None:
        self._worker.start()
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self._results_in, zmq.POLLIN)
        log.info("listening on %s (protocol %d)", self.endpoint, P.PROTOCOL_VERSION)
        try:
            while not self.stopping.is_set():
                events = dict(poller.poll(100))
                if self._results_in in events:
                    self._send_results()
                if self.router in events:
                    self._drain_router()
        finally:
            self.close()

    def _drain_router(self) -> None:
        for _ in range(1000):  # bounded, so results and shutdown are never starved
            try:
                frames = self.router.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            reply = self._handle(frames)
            if reply is not None:
                self._send(reply[0], reply[1])

    def _handle(self, frames: list[bytes]) -> tuple[list[bytes], dict] | None:
        """The reply for one request, or None when a job was queued."""
        if not 3 <= len(frames) <= MAX_ROUTING_FRAMES + 2 or frames[-2] != b"":
            # Not [routing..., "", one payload]: answer on the routing part (through the first empty
            # frame, or the identity alone), so a DEALER that got the framing wrong hears why.
            routing = frames[: MAX_ROUTING_FRAMES + 1]  # a million frames are not echoed back
            envelope = routing[: routing.index(b"", 1) + 1] if b"" in routing[1:] else frames[:1]
            return envelope, P.error_reply(None, P.E_MALFORMED, f"expected at most {MAX_ROUTING_FRAMES - 1} "
                                           "routing frames, an empty delimiter frame, then one msgpack frame")
        envelope, payload = frames[:-1], frames[-1]
        if len(payload) > P.MAX_MESSAGE_BYTES:
            return envelope, P.error_reply(None, P.E_TOO_LARGE,
                                           f"request is {len(payload)} bytes; the limit is {P.MAX_MESSAGE_BYTES}")
        try:
            msg = _unpack(payload)
        except TooManyValues as err:  # its id is read without building the rest (_id_of skips it)
            return envelope, P.error_reply(_id_of(payload), P.E_TOO_LARGE, str(err))
        except (ValueError, msgpack.UnpackException) as err:  # FormatError, StackError, ExtraData, bad UTF-8, ...
            why = str(err)[:200] or "cut short, or not msgpack at all"
            return envelope, P.error_reply(_id_of(payload), P.E_MALFORMED,
                                           f"request is not valid msgpack ({type(err).__name__}: {why})")
        if not isinstance(msg, dict):
            return envelope, P.error_reply(None, P.E_MALFORMED, "request must be a msgpack map")
        request_id = msg.get("id")
        if not (request_id is None or _request_id(request_id)):
            return envelope, P.error_reply(None, P.E_MALFORMED,
                                           f"id must be an integer or a string of at most {P.MAX_ID_CHARS} characters")
        op = msg.get("op")
        try:
            if isinstance(op, str) and op in OP_FIELDS:
                check_fields(msg, op)
            if op == P.OP_PING:
                return envelope, P.ok_reply(request_id, pong=True, time=time.time())
            if op == P.OP_INFO:
                return envelope, P.ok_reply(request_id, queue=self.jobs.qsize(), **self._info)
            if op == P.OP_STYLES:
                return envelope, P.ok_reply(request_id, **self._style_list())
            if op == P.OP_CANCEL:
                return envelope, P.ok_reply(request_id, cancelled=self._cancel(envelope, msg))
            if op == P.OP_GENERATE:
                self._accept(Job(envelope, request_id, request_for(msg, self.generator), time.perf_counter()), msg)
                return None
            if isinstance(op, str) and op in self._clip_ops:
                self._accept(Job(envelope, request_id, None, time.perf_counter(), self._clip_ops[op](msg)), msg)
                return None
        except P.ProtocolError as err:
            return envelope, P.error_reply(request_id, err.code, err.message)
        except queue.Full as full:  # Turns says whose requests fill it
            return envelope, P.error_reply(request_id, P.E_BUSY, f"{full}; try again in a moment")
        except Exception:  # a bug must cost this request, never the daemon
            log.exception("request %r (op %r) failed", request_id, op)
            return envelope, P.error_reply(request_id, P.E_INTERNAL,
                                           f"the daemon failed on this request; details are in {log_file_hint()}")
        return envelope, P.error_reply(request_id, P.E_UNKNOWN_OP,
                                       f"unknown op {P.brief(op)}; this daemon knows: {', '.join(P.OPS)}")

    def _accept(self, job: Job, msg: dict) -> None:
        """Queue a job for the worker; E_BUSY (queue.Full) when too many wait."""
        job.packed = flag(msg, "packed")
        job.timeout = number(msg, "timeout", None, P.TIMEOUT_RANGE)
        self.jobs.put_nowait(job)
        if job.request_id is not None:
            self._open.setdefault(job.key, []).append(job)

    def _cancel(self, envelope: list[bytes], msg: dict) -> list:
        """Mark the named requests of this connection that are waiting or running; their ids."""
        ids = msg.get("ids")
        if not (isinstance(ids, list) and len(ids) <= MAX_QUEUE and all(map(_request_id, ids))):
            raise P.ProtocolError(P.E_BAD_REQUEST, f"ids must be a list of at most {MAX_QUEUE} request ids to cancel")
        found = []
        for request_id in dict.fromkeys(ids):  # named twice, cancelled (and answered) once
            jobs = self._open.get((tuple(envelope), request_id), [])
            for job in jobs:
                job.cancelled = True
            if jobs:
                found.append(request_id)
        return found

    def _send(self, envelope: list[bytes], reply: dict) -> None:
        payload = msgpack.packb(reply, use_bin_type=True)
        if len(payload) > P.MAX_REPLY_BYTES:  # the client would drop the connection and resend, in vain
            log.warning("reply to id %r would be %d bytes: refused", reply.get("id"), len(payload))
            payload = msgpack.packb(P.error_reply(
                reply.get("id"), P.E_TOO_LARGE, f"the reply would be {len(payload)} bytes, over the limit of "
                f"{P.MAX_REPLY_BYTES}: ask for `packed` notes, fewer variations or a shorter clip"), use_bin_type=True)
        try:  # a client that does not read: past 1,000 replies waiting (its high-water mark) libzmq drops them
            self.router.send_multipart([*envelope, payload], zmq.NOBLOCK)
        except zmq.ZMQError as err:  # EHOSTUNREACH and EAGAIN are not raised (ROUTER_MANDATORY off); others are real
            log.error("could not send reply to id %r: %s", reply.get("id"), err)

    def _send_results(self) -> None:
        while True:
            try:
                self._results_in.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            self._flush_results()

    def _flush_results(self) -> None:
        while True:
            try:
                job, reply = self._results.get_nowait()
            except queue.Empty:
                return
            self._send(job.envelope, reply)
            waiting = self._open.get(job.key, [])
            if job in waiting:
                waiting.remove(job)
                if not waiting:
                    del self._open[job.key]

    def _style_list(self) -> dict:
        """Read afresh each time: a style learned or deleted with the CLI shows at once."""
        names = styles.all_names(self.generator.style_folder, self.generator.model, self.generator.vocab)
        return {
            "styles": names,  # every name `style` takes: genres, presets, drummers, learned
            "genres": list(GENRES),
            "presets": {name: preset.about for name, preset in styles.PRESETS.items()},
            "learned": [name for name in names if name not in styles.BUILTIN],
            "drummers": list(DRUMMERS),
            "time_signatures": [list(m) for m in self.generator.vocab.meters],
            "kits": list(kit.BUILTIN_MAPS),
        }

    # --- clip ops: checked here on the network thread, run by the worker -----------------------
    def _clip(self, msg: dict) -> tuple[GrooveRequest, list, float]:
        request = request_for(msg, self.generator)
        notes, length = clip(msg, request.meter)
        return request, notes, length

    def _continue(self, msg: dict) -> Callable[[clip_ops.Gone], dict]:
        request, notes, length = self._clip(msg)
        return lambda gone: _patterns(clip_ops.continue_clip(self.generator, request, notes, length, request.bars, gone))

    def _variation(self, msg: dict) -> Callable[[clip_ops.Gone], dict]:
        request, notes, length = self._clip(msg)
        return lambda gone: _patterns(clip_ops.vary_clip(self.generator, request, notes, length, gone))

    def _fill(self, msg: dict) -> Callable[[clip_ops.Gone], dict]:
        request, notes, length = self._clip(msg)
        every = whole_number(msg, "every", None, (1, P.MAX_CLIP_BARS))
        return lambda gone: _patterns(clip_ops.fill_clip(self.generator, request, notes, length, every, gone))

    def _drumify(self, msg: dict) -> Callable[[clip_ops.Gone], dict]:
        request, notes, length = self._clip(msg)
        return lambda gone: _patterns(clip_ops.drumify_clip(self.generator, request, notes, length, gone))

    def _humanize(self, msg: dict) -> Callable[[clip_ops.Gone], dict]:
        request, notes, length = self._clip(msg)
        amount = number(msg, "amount", 1.0, (0.0, 1.0))
        ghost_notes, chance = flag(msg, "ghost_notes"), flag(msg, "chance")
        return lambda _gone: {**_patterns(clip_ops.humanize_clip(self.humanizer, request, notes, length, amount,
                                                                 ghost_notes, chance)),  # milliseconds: never stopped
                              "feel": request.voice.feel or "any"}

    def _learn_style(self, msg: dict) -> Callable[[clip_ops.Gone], dict]:
        """A style learned from Live clips (about a minute on a laptop CPU; the queue waits)."""
        name = msg.get("name")
        if not isinstance(name, str):
            raise P.ProtocolError(P.E_BAD_REQUEST, "name (the new style's name) must be a string")
        replace = flag(msg, "replace")
        try:
            name = styles.check_name(name)
        except styles.StyleError as err:
            raise P.ProtocolError(P.E_BAD_REQUEST, str(err)) from None
        if not replace and styles.StyleLibrary(self.generator.style_folder).path(name).exists():  # said now, not
            raise P.ProtocolError(P.E_BAD_REQUEST, f"there is already a style named {P.brief(name)}; "  # after the queue
                                                   "pass replace: true to learn it again")
        pieces = kit.reverse_map(kit_map(msg.get("kit")))  # the clips' pads, heard as the pieces they play
        raw = msg.get("clips")
        if not isinstance(raw, list) or not styles.MIN_GROOVES <= len(raw) <= styles.MAX_GROOVES:
            raise P.ProtocolError(P.E_BAD_REQUEST, f"clips must be a list of {styles.MIN_GROOVES}..{styles.MAX_GROOVES} clip maps (your grooves)")
        if not all(isinstance(item, dict) for item in raw):
            raise P.ProtocolError(P.E_BAD_REQUEST, f"clip {next(i for i, c in enumerate(raw, 1) if not isinstance(c, dict))} "
                                                   "is not a map")
        for i, item in enumerate(raw, 1):
            try:
                check_fields(item, P.OP_LEARN_STYLE, LEARNED_CLIP_FIELDS)
            except P.ProtocolError as err:
                raise P.ProtocolError(err.code, f"clip {i}: {err.message}") from None
        steps = whole_number(msg, "steps", styles.STEPS, P.LEARN_STEPS_RANGE)
        model = self.generator.model  # learning reads it on the CPU; a CUDA daemon reads the file again
        loaded = (model, self.generator.vocab) if self.generator.device.type == "cpu" else None

        def read_clips() -> list[tuple[list, float, tuple[int, int], float]]:
            """On the worker: 20 clips of 4,096 notes are half a second of Python, which on the
            network thread held every other client's answers (a ping: 749 ms)."""
            clips = []
            for i, item in enumerate(raw, 1):
                try:
                    m = meter(item, self.generator.vocab.meters)
                    notes, length = clip(item, m)
                    tempo = number(item, "tempo", 120.0, P.TEMPO_RANGE)
                except P.ProtocolError as err:  # which of up to 20 clips
                    raise P.ProtocolError(err.code, f"clip {i}: {err.message}") from None
                notes = [dataclasses.replace(n, pitch=pieces.get(n.pitch, n.pitch)) for n in notes]
                clips.append((notes, tempo, m, length))
            return clips

        def stopping(_done: int, _total: int) -> None:  # a learner still in torch when the process exits aborts it
            if self._out_of_grace():
                raise clip_ops.Abandoned

        def run(_gone: clip_ops.Gone) -> dict:  # skipped if abandoned while it waits; once learning, it finishes
            clips = read_clips()
            try:  # unless the daemon stops: the style file is written whole at the end, or not at all
                style = styles.learn_style_from_clips(name, clips, self.config.checkpoint, steps, stopping,
                                                      folder=self.generator.style_folder, replace=replace, loaded=loaded)
            except styles.StyleError as err:
                raise P.ProtocolError(P.E_BAD_REQUEST, str(err)) from None
            return {"style": style.name, "base": style.base, "drummer": style.drummer, "fit": style.fit,
                    "anchors": None if style.anchors is None else style.anchors.to_json()}
        return run

    # --- model worker ------------------------------------------------------------------------
    def _work(self) -> None:
        if self.generator.device.type == "cuda":
            # CUDA, cuBLAS, a 16-row cache and the common batch sizes' graphs, before a request waits
            try:
                for variations in (16, 8, 1):
                    self.generator.generate([GrooveRequest(bars=1, variations=variations, seed=0)])
            except Exception:  # a request will meet the same error and carry it to the client
                log.exception("warming up on %s failed", self.generator.device)
        held: Job | None = None  # a clip op met while gathering a batch; it goes next
        while not self.stopping.is_set():
            if held is not None:
                job, held = held, None
            else:
                try:
                    job = self.jobs.get(timeout=0.1)
                except queue.Empty:
                    continue
            if job.abandoned():
                replies = [(job, job.dropped_reply())]
            elif job.task is not None:
                replies = [self._run_task(job)]
            else:
                batch, rows, replies = [job], job.request.rows, []
                while rows < MAX_BATCH_ROWS:
                    try:
                        job = self.jobs.get_nowait()
                    except queue.Empty:
                        break
                    if job.abandoned():
                        replies.append((job, job.dropped_reply()))
                    elif job.task is not None:
                        held = job
                        break
                    else:
                        batch.append(job)
                        rows += job.request.rows
                replies += self._run(batch)
            self._hand_over(replies)
        if held is not None:  # taken off the queue for the next turn, which will not come
            self._hand_over([(held, self._dropped(held))])

    def _hand_over(self, replies: list[tuple[Job, dict]]) -> None:
        """Replies to the network thread, which sends them."""
        if not replies:
            return
        for job, reply in replies:
            if reply["ok"] is False and reply["error"]["code"] == P.E_CANCELLED:
                log.info("request %r dropped: %s", job.request_id, reply["error"]["message"])
            self._results.put((job, reply))
        with self._results_lock:
            if self._results_closed:  # the daemon stopped without waiting for this (work that outlived the wait)
                log.info("stopped before %d replies could be sent", len(replies))
                return
            self._results_out.send(b"")

    def _run_task(self, job: Job) -> tuple[Job, dict]:
        started = time.perf_counter()
        try:
            fields = job.task(lambda: job.abandoned() or self._out_of_grace())
            if "patterns" in fields:
                fields = {**fields, "patterns": wire_patterns(fields["patterns"], job.packed)}
        except clip_ops.Abandoned:
            return job, self._dropped(job)
        except P.ProtocolError as err:  # refused once it ran (clips without drums to learn, a rhythm without notes)
            return job, P.error_reply(job.request_id, err.code, err.message)
        except Exception:
            log.exception("a clip op failed")
            message = f"the daemon failed on this clip; details are in {log_file_hint()}"
            return job, P.error_reply(job.request_id, P.E_INTERNAL, message)
        log.info("clip op answered in %.0f ms", (time.perf_counter() - started) * 1000)
        return job, P.ok_reply(job.request_id, **fields)

    def _run(self, batch: list[Job]) -> list[tuple[Job, dict]]:
        """Sample a batch; each request is answered as soon as its own rows end (the rest of
        the batch may be sampling longer grooves), so this returns only the abandoned ones' and
        a failed batch's unanswered ones' replies."""
        started = time.perf_counter()
        answered: set[int] = set()

        def finished(i: int, patterns: list[Pattern]) -> None:
            job = batch[i]
            self._hand_over([(job, P.ok_reply(job.request_id, bars=job.request.bars, tempo=job.request.tempo,
                                              time_signature=list(job.request.meter),
                                              patterns=wire_patterns(patterns, job.packed)))])
            answered.add(i)

        try:
            self.generator.generate([job.request for job in batch],
                                    lambda i: batch[i].abandoned() or self._out_of_grace(), finished)
        except Exception:
            log.exception("generation failed for a batch of %d requests", len(batch))
            message = f"generation failed inside the daemon; details are in {log_file_hint()}"
            return [(job, P.error_reply(job.request_id, P.E_INTERNAL, message))
                    for i, job in enumerate(batch) if i not in answered]
        elapsed = time.perf_counter() - started
        log.info("generated %d requests (%d patterns) in one batch in %.1f ms%s", len(answered),
                 sum(batch[i].request.variations for i in answered), elapsed * 1000,
                 f", {len(batch) - len(answered)} dropped part-way" if len(answered) < len(batch) else "")
        return [(job, self._dropped(job)) for i, job in enumerate(batch) if i not in answered]

    def _out_of_grace(self) -> bool:
        """Stopping, and the running work had its STOP_GRACE_S to finish."""
        return time.perf_counter() > self._stop_at + STOP_GRACE_S

    def _dropped(self, job: Job) -> dict:
        if job.abandoned():
            return job.dropped_reply()
        return P.error_reply(job.request_id, P.E_BUSY, f"{P.STOPPING}; try again once it is back")

    # --- lifecycle ---------------------------------------------------------------------------
    def stop(self, *_: object) -> None:
        self._stop_at = min(self._stop_at, time.perf_counter())
        self.stopping.set()

    def close(self) -> None:
        """Stop on the network thread: the running batch (or clip op, or style being learned)
        finishes and is answered if it can within STOP_GRACE_S (else it stops and hears that the
        daemon is stopping, as requests still waiting do), and only then do the sockets close."""
        self.stop()
        if self._worker.is_alive():
            self._worker.join(timeout=STOP_GRACE_S + 3)
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            self._results.put((job, self._dropped(job)))
        self._flush_results()
        self.router.close(linger=1000)  # time for those last replies to leave
        with self._results_lock:
            self._results_closed = True
            for sock in (self._results_in, self._results_out):
                sock.close(linger=0)
        self.ctx.term()
        log.info("stopped")


def _patterns(found: list[Pattern]) -> dict:
    return {"patterns": found}


def _check_bind(config: ServeConfig) -> None:
    _refuse_a_taken_ipc_path(config.bind)
    host = config.bind.split("://", 1)[-1].rsplit(":", 1)[0]
    if config.bind.startswith("ipc://") or config.bind.startswith("inproc://") or _loopback(host):
        return
    if config.curve_secret is not None:
        return
    if not config.insecure:
        raise ValueError(
            f"refusing to bind {config.bind}: anyone on the network could use the daemon. "
            "Make keys with `drumigen keys` and pass --curve-secret, or pass --insecure"
        )
    log.warning("binding %s WITHOUT encryption or authentication (--insecure)", config.bind)


def _refuse_a_taken_ipc_path(bind: str) -> None:
    """libzmq binds an ipc:// path another daemon listens on by replacing its socket file: the
    first daemon runs on, unreachable, holding its model. (On tcp:// the bind fails.) A file
    nobody answers on is a crashed daemon's, and is taken over."""
    path = bind[len("ipc://"):] if bind.startswith("ipc://") else ""
    family = getattr(socket, "AF_UNIX", None)
    if not path or path.startswith("@") or family is None or not os.path.exists(path):  # @: Linux's abstract names
        return
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)  # a listener stopped (Ctrl-Z) with a full backlog never answers: it is there
        try:
            probe.connect(path)
        except TimeoutError:
            pass
        except OSError:
            return
    raise ValueError(f"another daemon is listening on {bind}; stop it first, or bind another path")


def _loopback(host: str) -> bool:
    """localhost, or any loopback address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name or an interface: not known to be loopback
        return False


def default_log_file() -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))
    return base / "mididrumigen" / "daemon.log"


def log_file_hint() -> str:
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and not getattr(handler, "failed", False):
            return handler.baseFilename
    return "the daemon's log"


def serve(config: ServeConfig) -> None:
    """Run until SIGINT or SIGTERM; both stop cleanly (Daemon.close says how the running batch ends)."""
    daemon = Daemon(config)
    signal.signal(signal.SIGINT, daemon.stop)
    signal.signal(signal.SIGTERM, daemon.stop)
    daemon.serve_forever()

