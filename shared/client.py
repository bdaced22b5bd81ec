"""DaemonClient: the Live side's connection to the MidiDrumiGen daemon, standard library only.

Live runs its Remote Script on its main thread and calls it every ~100 ms, so nothing here may
block there: `send` only queues (and starts a non-blocking connect or write), and `poll(0)` does
one bounded round of non-blocking socket work. The client is a ZMTP 3.1 DEALER (shared.zmtp) on
`socket` + `selectors`, framing every request like a REQ socket would ([empty delimiter, msgpack
map]), so the daemon can be a plain ROUTER or REP socket. `selectors` picks kqueue on macOS (plain
select() refuses a descriptor numbered 1024 or more, which a big Live set's open files reach).

Reliability is the ZeroMQ guide's "Lazy Pirate" pattern, for what fails on one computer: when
the connection drops (the daemon stopped, crashed or restarted) or cannot be made within a
request's deadline, the socket is closed, reopened after an exponential backoff, and the
requests still pending are sent again, up to `retries` times each, before they fail with
E_UNAVAILABLE. A deadline that passes while the connection stands is not a lost request: the
daemon has it and is busy, and a resend would start its work over, so a request longer than one
timeout would never be answered. The client then waits on, a timeout per retry, and at the end
fails it with E_TIMEOUT and cancels it on the daemon. Every request carries an id unique to
the client, so replies that arrive late or twice are recognised and dropped, and how long the
client still waits for it in all (`timeout`), so the daemon drops work nobody waits for any
more; a request the client forgets is cancelled on the daemon too. CurveZMQ security is not
implemented here (the CLI's daemon commands have it): this client speaks to a daemon on the
same computer, over loopback.
"""

from __future__ import annotations

import errno
import ipaddress
import itertools
import os
import re
import selectors
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from . import zmtp
from .msgpack_codec import DecodeError, packb, unpackb
from .protocol import (
    DEFAULT_ENDPOINT,
    E_CANCELLED,
    E_MALFORMED,
    E_TIMEOUT,
    E_UNAVAILABLE,
    MAX_MESSAGE_BYTES,
    MAX_REPLY_BYTES,
    OP_CANCEL,
    TIMEOUT_RANGE,
    error_reply,
)

DEFAULT_TIMEOUT_S = 5.0  # per attempt of a request
DEFAULT_RETRIES = 3  # attempts after the first (timeouts waited through, or resends after a lost connection)
BACKOFF_INITIAL_S = 0.1  # before reconnecting; doubles per failure, reset by a handshake
BACKOFF_MAX_S = 2.0
RESTART_GRACE_S = 8.0  # after a connection drops, how long refused reconnects wait for a restarting daemon
RECV_CHUNK_BYTES = 256 * 1024
READ_BUDGET_S = 0.001  # one poll stops reading after this, so a big reply spreads over ticks

_IN_PROGRESS = {
    errno.EINPROGRESS,
    errno.EWOULDBLOCK,
    errno.EALREADY,
    getattr(errno, "WSAEWOULDBLOCK", errno.EWOULDBLOCK),  # Windows' non-blocking connect
}
NOT_RUNNING = "MidiDrumiGen daemon is not running"  # how the failure of a refused connection reads
NOT_THE_DAEMON = "is not the MidiDrumiGen daemon"  # and of one taken by something else
STOPPED = "it stopped while working on a request"  # ... and of a daemon that went away mid-request
_REFUSED = {errno.ECONNREFUSED, getattr(errno, "WSAECONNREFUSED", errno.ECONNREFUSED)}
_ENDPOINT = re.compile(r"tcp://(\[[^\]]*\]|[A-Za-z0-9.-]+):(\d{1,5})")


@dataclass(frozen=True)
class Reply:
    """A request's outcome: the daemon's reply map, or a client-side failure shaped alike."""

    id: int
    ok: bool
    data: dict
    error_code: str | None = None
    error_message: str | None = None  # for people: Live shows it in its status bar


@dataclass
class ClientStats:
    """Counters for diagnostics and tests."""

    connections: int = 0  # handshakes completed
    resent: int = 0  # requests sent again on a new connection
    dropped_replies: int = 0  # replies matching no pending request: late, duplicate, malformed
    pongs_sent: int = 0  # answers to the daemon's heartbeat PINGs
    cancels_sent: int = 0  # `cancel`s for forgotten requests the daemon had


@dataclass
class _Request:
    id: int
    payload: bytes  # its msgpack map, `timeout` packed last as a float64 (_with_timeout sets it)
    deadline: float  # of this attempt at a connection, while there is none
    give_up_at: float  # the end of the whole wait: (retries + 1) timeouts after it was sent, at most an hour
    tries: int = 0  # attempts that ended without a reply: connections that failed or dropped
    sent: bool = False


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """(host, port) of "tcp://host:port"; IPv6 addresses go in brackets: tcp://[::1]:5555."""
    match = _ENDPOINT.fullmatch(endpoint) if isinstance(endpoint, str) else None
    if match is None:
        raise ValueError(
            f"endpoint {endpoint!r} is not tcp://host:port (for IPv6: tcp://[::1]:5555)"
        )
    host, port = match.group(1), int(match.group(2))
    if host.startswith("["):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"endpoint {endpoint!r}: {host!r} is not an IPv6 address") from None
    if not 1 <= port <= 65535:
        raise ValueError(f"endpoint {endpoint!r}: port {port} is not in 1..65535")
    return host, port


class DaemonClient:
    """Requests to the daemon, answered through `poll`; see the module docstring."""

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        *,
        log: Callable[[str], None] | None = None,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        self._host, self._port = parse_endpoint(endpoint)
        if not TIMEOUT_RANGE[0] <= timeout <= TIMEOUT_RANGE[1]:
            raise ValueError(f"timeout must be {TIMEOUT_RANGE[0]:g}..{TIMEOUT_RANGE[1]:g} s, got {timeout!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries!r}")
        self.endpoint = endpoint
        self.timeout = timeout
        self.retries = retries
        self.stats = ClientStats()
        self._log = log
        self._max_reply_bytes = max_reply_bytes
        self._ids = itertools.count(1)
        self._pending: dict[int, _Request] = {}
        self._cancels: set[int] = set()  # ids of `cancel`s sent on this connection, whose replies are nobody's
        self._replies: list[Reply] = []
        self._sock: socket.socket | None = None
        self._selector = selectors.DefaultSelector()  # watches _sock for what `_watching` says
        self._watching = 0  # selectors.EVENT_* the socket is registered for
        self._conn: zmtp.Connection | None = None
        self._tcp_up = False
        self._wbuf = bytearray()
        self._addresses: list[tuple[int, tuple]] = []
        self._retry_at = 0.0
        self._backoff = BACKOFF_INITIAL_S
        self._refused = False  # the last connection attempt was refused: nobody listens
        self._dropped_at: float | None = None  # when a ready connection was last lost
        self._dropped_working = False  # and whether it carried requests then (the daemon stopped mid-request)
        self._closed = False

    @property
    def whole_wait(self) -> float:
        """How long a request is waited for in all: a timeout per attempt, at most the daemon's
        longest `timeout` (an hour), which would drop the work earlier."""
        return min(self.timeout * (self.retries + 1), TIMEOUT_RANGE[1])

    @property
    def connected(self) -> bool:
        """Handshake done and connection up: worth showing as a status light."""
        return self._conn is not None and self._conn.ready

    def pending(self) -> int:
        """Requests sent and not yet answered or failed."""
        return len(self._pending)

    def send(self, op: str, **fields: object) -> int:
        """Queue a request and return its id; never blocks. Its Reply comes from `poll`."""
        if self._closed:
            raise RuntimeError("this DaemonClient is closed")
        if "id" in fields or "timeout" in fields:
            raise ValueError("the request's id and timeout are set by the client")
        request_id = next(self._ids)
        payload = packb({"op": op, "id": request_id, **fields, "timeout": float(self.whole_wait)})
        if len(payload) > MAX_MESSAGE_BYTES:
            raise ValueError(f"request of {len(payload)} bytes exceeds {MAX_MESSAGE_BYTES}")
        now = time.monotonic()
        request = _Request(request_id, payload, now + self.timeout, now + self.whole_wait)
        self._pending[request_id] = request
        if self.connected:
            self._transmit(request)
            self._write()
        elif self._sock is None and time.monotonic() >= self._retry_at:
            self._open()
        return request_id

    def forget(self, request_id: int) -> None:
        """Stop waiting for a request (a newer press replaced it, or what it was for is gone): no
        Reply comes for it, its deadline no longer starts a Lazy Pirate reconnect, it is not
        resent, and a late answer is dropped. While connected, it is cancelled on the daemon too, which stops working on
        it: every pending request has then been sent on this connection (a new connection sends
        them all). What an earlier connection carried ends on the daemon when its timeout passes."""
        if self._pending.pop(request_id, None) is not None and self.connected:
            self._cancel_on_daemon(request_id)

    def _cancel_on_daemon(self, request_id: int) -> None:
        assert self._conn is not None
        cancel_id = next(self._ids)
        self._conn.send([b"", packb({"op": OP_CANCEL, "id": cancel_id, "ids": [request_id]})])
        self._wbuf += self._conn.data_to_send()
        self._cancels.add(cancel_id)
        self.stats.cancels_sent += 1
        self._write()

    def poll(self, timeout: float = 0.0) -> list[Reply]:
        """Do the socket work due and return the Replies completed; timeout=0 never blocks."""
        end = time.monotonic() + timeout
        while True:
            try:
                self._step(end - time.monotonic())
            except OSError as error:  # a socket call refused in a platform's own way ends the connection
                if self._sock is None:
                    raise
                self._lost(f"socket error: {error.strerror or error}")  # and Lazy Pirate goes on from there
            if self._replies or time.monotonic() >= end:
                break
        replies, self._replies = self._replies, []
        return replies

    def call(self, op: str, **fields: object) -> Reply:
        """Send and wait for this request's Reply (for the CLI and tests, never inside Live).

        Replies to other requests stay queued for the next `poll`.
        """
        request_id = self.send(op, **fields)
        while True:
            for i, reply in enumerate(self._replies):
                if reply.id == request_id:
                    return self._replies.pop(i)
            self._step(self.timeout)

    def close(self) -> None:
        """Close the connection, cancelling on the daemon what is still pending (it would work on
        until each request's timeout: Live closing a set must not leave it busy); the client cannot
        be reused. The cancels go out only as far as the socket takes them now, without waiting."""
        for request_id in list(self._pending):
            self.forget(request_id)
        self._write()
        self._close_socket()
        self._pending.clear()
        self._replies.clear()
        self._selector.close()
        self._closed = True

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # One round of work: timers, connecting, one select, reading, writing.

    def _step(self, wait: float) -> None:
        """Expiry comes after reading: a reply that arrived before its deadline, between two of
        Live's ticks, is taken, not thrown away with its connection for a resend."""
        now = time.monotonic()
        if self._sock is None:  # nothing to read: a request out of time is charged before a new connection
            self._expire(now)
        if self._sock is None and self._pending and now >= self._retry_at:
            self._open()
        wait = max(0.0, min(wait, self._next_timer() - now))
        sock = self._sock
        if sock is None:
            if wait > 0:
                time.sleep(wait)
        elif not self._tcp_up:  # a connect's outcome, made or failed, shows as writable (on Windows too)
            self._watch(selectors.EVENT_WRITE)
            if self._selector.select(wait):
                self._finish_connect()
        else:
            self._watch(selectors.EVENT_READ | (selectors.EVENT_WRITE if self._wbuf else 0))
            if any(events & selectors.EVENT_READ for _, events in self._selector.select(wait)):
                self._read()
            if self._wbuf:
                self._write()
        self._expire(time.monotonic())

    def _watch(self, events: int) -> None:
        """Watch the socket for `events` (registered anew only when they change: a system call)."""
        if events != self._watching:
            self._selector.modify(self._sock, events)
            self._watching = events

    def _next_timer(self) -> float:
        times = [r.give_up_at if self.connected else min(r.deadline, r.give_up_at) for r in self._pending.values()]
        if self._sock is None and self._pending:
            times.append(self._retry_at)
        return min(times, default=float("inf"))

    def _expire(self, now: float) -> None:
        if self.connected:  # the daemon has them and is busy: wait on (the module docstring says why)
            for request in [r for r in self._pending.values() if r.give_up_at <= now]:
                if request.id not in self._pending:  # failed meanwhile: a cancel's write found the connection gone
                    continue
                self._fail(request, E_TIMEOUT, self._timed_out())
                if self.connected:
                    self._cancel_on_daemon(request.id)
            return
        expired = [r for r in self._pending.values() if min(r.deadline, r.give_up_at) <= now]
        if not expired:
            return
        message = self._unavailable(f"no connection within {self.whole_wait:g} s", self._tcp_up)
        for request in expired:
            self._charge(request, now, E_UNAVAILABLE, message)
        if self._sock is not None and any(r.id in self._pending for r in expired):
            # Lazy Pirate: start over on a fresh connection; everything pending is resent.
            self._close_socket()

    def _charge(self, request: _Request, now: float, code: str, message: str) -> None:
        """An attempt at a connection ended without a reply: try again later, or fail for good."""
        request.tries += 1
        if request.tries <= self.retries and now < request.give_up_at:
            request.deadline = now + self.timeout
            return
        self._fail(request, code, message)

    def _fail(self, request: _Request, code: str, message: str) -> None:
        del self._pending[request.id]
        wire = error_reply(request.id, code, message)
        self._replies.append(Reply(request.id, False, wire, code, message))

    def _timed_out(self) -> str:
        return (
            f"The MidiDrumiGen daemon at {self.endpoint} did not answer within "
            f"{self.whole_wait:g} s — it is busy with long work (fewer bars or variations, "
            "or a longer timeout, would help) or stuck; try again, or restart `drumigen serve`"
        )

    def _unavailable(self, reason: str, answered: bool = False) -> str:
        """Why there is no daemon to talk to; `answered`: something took the connection but
        never finished the ZeroMQ handshake (another program, or a daemon that wants CurveZMQ)."""
        if self._refused and self._dropped_working:  # it was there, working for us, and went: crashed, or stopped
            return (f"{NOT_RUNNING} at {self.endpoint}: {STOPPED} (its log says why) — start it again "
                    "with `drumigen serve`")
        if self._refused:
            return f"{NOT_RUNNING} at {self.endpoint} — start it with `drumigen serve`"
        if answered:
            return (
                f"Something at {self.endpoint} {NOT_THE_DAEMON} ({reason}): another program "
                "on that port, or a daemon that needs CurveZMQ — run `drumigen serve` here without --curve-secret "
                "(a `drumigen` command can pass --server-key instead)"
            )
        return (
            f"Cannot reach the MidiDrumiGen daemon at {self.endpoint} ({reason}) — "
            "is `drumigen serve` running there?"
        )

    # Connection life cycle.

    def _open(self) -> None:
        """Start a connection attempt. IP literals resolve without blocking and `localhost` is
        not asked of the resolver at all (on macOS a lookup goes through a system service that
        can stall); other host names may block."""
        if self._host.lower() == "localhost":
            self._addresses = [(socket.AF_INET6, ("::1", self._port, 0, 0)), (socket.AF_INET, ("127.0.0.1", self._port))]
            self._try_next_address()
            return
        try:
            infos = socket.getaddrinfo(self._host, self._port, type=socket.SOCK_STREAM)
        except OSError as error:
            self._refused = False
            self._lost(f"cannot resolve {self._host}: {error}")
            return
        self._addresses = [(info[0], info[4]) for info in infos]
        self._try_next_address()

    def _try_next_address(self) -> None:
        family, address = self._addresses.pop(0)
        try:  # out of file descriptors (a set with many plug-ins), or IPv6 turned off
            sock = socket.socket(family, socket.SOCK_STREAM)
        except OSError as error:
            if self._addresses:  # ::1 first where IPv6 is off: the daemon may be on 127.0.0.1
                self._try_next_address()
                return
            self._refused = False
            self._lost(f"cannot open a socket: {error.strerror or error}", attempt=True)
            return
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_WRITE)
        self._sock, self._tcp_up, self._watching = sock, False, selectors.EVENT_WRITE
        self._conn = zmtp.Connection(self._max_reply_bytes)
        self._wbuf = self._conn.data_to_send()
        code = sock.connect_ex(address)
        if code == 0:
            self._on_tcp_up()
        elif code not in _IN_PROGRESS:
            self._connect_failed(code)

    def _finish_connect(self) -> None:
        assert self._sock is not None
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._connect_failed(code)
        else:
            self._on_tcp_up()

    def _connect_failed(self, code: int) -> None:
        self._refused = code in _REFUSED
        if self._addresses:  # e.g. "localhost" gave ::1 first, and the daemon is on 127.0.0.1
            self._forget_socket()
            self._try_next_address()
        else:
            self._lost("connection refused" if self._refused else os.strerror(code), attempt=True)

    def _on_tcp_up(self) -> None:
        assert self._sock is not None
        try:  # macOS refuses it (EINVAL) on a connection the peer has already shut: reading says so next
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        self._tcp_up = True
        self._refused = False
        self._write()

    def _on_ready(self) -> None:
        assert self._conn is not None
        self.stats.connections += 1
        self._backoff = BACKOFF_INITIAL_S
        self._refused = False
        self._dropped_at, self._dropped_working = None, False
        for request in self._pending.values():
            self._transmit(request)

    def _lost(self, reason: str, attempt: bool = False) -> None:
        """The connection ended by itself: each pending request loses an attempt. When only an
        `attempt` to connect failed, requests never sent lose one (with no daemon running, a
        press fails at once), while those a dropped connection carried lose none for
        RESTART_GRACE_S: a daemon that restarts takes seconds to listen again."""
        if self._log is not None:
            self._log(f"connection to {self.endpoint}: {reason}")
        now = time.monotonic()
        if not attempt and self.connected:
            self._dropped_at = now
            self._dropped_working = any(request.sent for request in self._pending.values())
        answered = self._tcp_up and not self.connected  # it took the connection, then no handshake
        self._close_socket()
        message = self._unavailable(reason, answered)
        waiting = attempt and self._dropped_at is not None and now - self._dropped_at < RESTART_GRACE_S
        for request in list(self._pending.values()):
            if not (waiting and request.sent):
                self._charge(request, now, E_UNAVAILABLE, message)

    def _close_socket(self) -> None:
        """Close the connection, if any, and hold off the next attempt by the backoff."""
        self._forget_socket()
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        self._sock, self._conn, self._tcp_up = None, None, False
        self._wbuf = bytearray()
        self._cancels.clear()
        self._addresses = []

    def _forget_socket(self) -> None:
        if self._sock is not None:
            self._selector.unregister(self._sock)
            self._sock.close()
            self._sock = None

    # Bytes in and out.

    def _transmit(self, request: _Request) -> None:
        assert self._conn is not None
        remaining = max(request.give_up_at - time.monotonic(), TIMEOUT_RANGE[0])
        self._conn.send([b"", _with_timeout(request.payload, remaining)])
        self._wbuf += self._conn.data_to_send()
        if request.sent:
            self.stats.resent += 1
        request.sent = True

    def _write(self) -> None:
        while self._wbuf and self._sock is not None and self._tcp_up:
            try:
                sent = self._sock.send(self._wbuf)
            except BlockingIOError:
                return
            except OSError as error:
                self._lost(f"sending failed: {error.strerror or error}")
                return
            del self._wbuf[:sent]

    def _read(self) -> None:
        conn, sock = self._conn, self._sock
        assert conn is not None and sock is not None
        budget_end = time.monotonic() + READ_BUDGET_S
        while True:
            try:
                chunk = sock.recv(RECV_CHUNK_BYTES)
            except BlockingIOError:
                return
            except OSError as error:
                self._lost(f"receiving failed: {error.strerror or error}")
                return
            if not chunk:
                self._lost("the daemon closed the connection")
                return
            was_ready, pings = conn.ready, conn.pings_answered
            try:
                messages = conn.receive(chunk)
            except zmtp.ZmtpError as error:
                self._lost(str(error))
                return
            self.stats.pongs_sent += conn.pings_answered - pings
            self._wbuf += conn.data_to_send()
            if conn.ready and not was_ready:
                self._on_ready()
            for frames in messages:
                self._on_message(frames)
            if len(chunk) < RECV_CHUNK_BYTES or time.monotonic() >= budget_end:
                return

    def _on_message(self, frames: list[bytes]) -> None:
        if len(frames) != 2 or frames[0]:
            self._drop(f"a reply of {len(frames)} frames not framed as [empty, payload]")
            return
        try:
            data = unpackb(frames[1])
        except DecodeError as error:
            self._drop(f"an undecodable reply ({error})")
            return
        request_id = data.get("id") if isinstance(data, dict) else None
        if type(request_id) is int and request_id in self._cancels:  # a cancel's answer: nobody asked for it
            self._cancels.discard(request_id)
            return
        request = self._pending.get(request_id) if type(request_id) is int else None
        if request is None:
            self._drop(f"a reply for id {request_id!r}, which is not pending (late or duplicate)")
            return
        reply = _reply_from(request.id, data)
        if reply.error_code == E_CANCELLED:
            # The daemon gave up as the wait it was told of passed (this client cancels only
            # requests it forgot): the client's own clock fails it, or retries one a lost connection resent late.
            self._drop(f"the daemon's {E_CANCELLED} for attempt {request.tries + 1} of request {request_id}")
            return
        del self._pending[request_id]
        self._replies.append(reply)

    def _drop(self, what: str) -> None:
        self.stats.dropped_replies += 1
        if self._log is not None:
            self._log(f"dropped {what}")


def _with_timeout(payload: bytes, seconds: float) -> bytes:
    """The request with its `timeout` set to `seconds`: how long the client still waits for it
    (the time spent connecting, or before a daemon restarted, is not the daemon's to spend)."""
    return payload[:-8] + struct.pack(">d", seconds)


def _reply_from(request_id: int, data: dict) -> Reply:
    if data.get("ok") is True:
        return Reply(request_id, True, data)
    error = data.get("error")
    code = error.get("code") if isinstance(error, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    if not isinstance(code, str):
        code, message = E_MALFORMED, "the daemon sent a failure without an error code"
    if not isinstance(message, str):
        message = f"the daemon reported {code}"
    return Reply(request_id, False, data, code, message)
