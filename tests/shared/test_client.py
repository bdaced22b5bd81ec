"""DaemonClient against a real libzmq ROUTER (pyzmq) in a background thread."""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Callable

import msgpack
import pytest
import zmq

from shared import zmtp
from shared.client import NOT_RUNNING, DaemonClient, Reply, parse_endpoint
from shared.protocol import E_BAD_REQUEST, E_CANCELLED, E_TIMEOUT, E_UNAVAILABLE, error_reply

MIB = 1024 * 1024


class Router:
    """A ROUTER answering like the daemon: it echoes each request map back with ok=True.

    Ops with special behaviour: "slow" (answer after `delay` s), "stale" (first send replies
    no client is waiting for), "fail" (an error reply), "give_up" (`cancelled` at once, as the
    daemon answers when a request's timeout passes). With hold=True it never answers.
    """

    def __init__(self, port: int = 0, *, hold: bool = False, heartbeat_ms: int = 0) -> None:
        self.port = port
        self.hold = hold
        self.heartbeat_ms = heartbeat_ms
        self.requests: list[dict] = []
        self.request_sizes: list[int] = []
        self.reply_sizes: list[int] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._bound = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> Router:
        self._thread.start()
        assert self._bound.wait(10), "the ROUTER did not bind"
        assert not self.errors, self.errors
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()

    def _run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(zmq.ROUTER)
        sock.linger = 0
        if self.heartbeat_ms:
            sock.setsockopt(zmq.HEARTBEAT_IVL, self.heartbeat_ms)
            sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 10 * self.heartbeat_ms)
        delayed: list[tuple[float, list[bytes]]] = []
        try:
            if self.port:
                sock.bind(self.endpoint)
            else:
                self.port = sock.bind_to_random_port("tcp://127.0.0.1")
            self._bound.set()
            while not self._stop.is_set():
                if sock.poll(5):
                    self._answer(sock, sock.recv_multipart(), delayed)
                for item in [item for item in delayed if item[0] <= time.monotonic()]:
                    delayed.remove(item)
                    sock.send_multipart(item[1])
        except Exception as error:  # surfaced by start() or the fixture's teardown
            self.errors.append(repr(error))
            self._bound.set()
        finally:
            sock.close(0)
            ctx.term()

    def _answer(self, sock: zmq.Socket, frames: list[bytes], delayed: list) -> None:
        if len(frames) != 3 or frames[1] != b"":
            self.errors.append(f"not REQ-style framing: {len(frames)} frames")
            return
        identity, _, payload = frames
        request = msgpack.unpackb(payload)
        self.requests.append(request)
        self.request_sizes.append(len(payload))
        if self.hold:
            return
        op = request["op"]
        if op == "stale":
            sock.send_multipart([identity, b"", msgpack.packb({"id": 10**6, "ok": True})])
            sock.send_multipart([identity, b"", b"\xc1"])
            sock.send_multipart([identity, b"", b"\x01", b"\x02"])
        if op == "fail":
            reply = msgpack.packb(error_reply(request["id"], E_BAD_REQUEST, "no such style: polka"))
        elif op == "give_up":
            reply = msgpack.packb(error_reply(request["id"], E_CANCELLED, "dropped unfinished: its timeout passed"))
        else:
            reply = msgpack.packb({**request, "ok": True})
        self.reply_sizes.append(len(reply))
        frames = [identity, b"", reply]
        if op == "slow":
            delayed.append((time.monotonic() + request["delay"], frames))
        else:
            sock.send_multipart(frames)


@pytest.fixture
def router():
    server = Router().start()
    yield server
    server.stop()
    assert not server.errors, server.errors


def pump(
    client: DaemonClient, until: Callable[[list[Reply]], bool], within: float = 10.0
) -> list[Reply]:
    """Poll until `until(replies so far)` holds; fail after `within` seconds."""
    replies: list[Reply] = []
    deadline = time.monotonic() + within
    while not until(replies):
        assert time.monotonic() < deadline, f"condition not met within {within} s"
        replies += client.poll(0.01)
    return replies


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def padding_for(frame_size: int) -> bytes:
    """Padding that makes the first request of a fresh client (timeout 10) exactly `frame_size` bytes."""
    for n in range(frame_size):
        pad = b"p" * n
        if len(msgpack.packb({"op": "echo", "id": 1, "pad": pad, "timeout": 10.0})) == frame_size:
            return pad
    raise AssertionError(f"no padding gives {frame_size} bytes")


@pytest.mark.parametrize(
    "side, size",
    [("request", 255), ("request", 256), ("reply", 255), ("reply", 256), ("request", None)],
)
def test_round_trip_across_frame_size_boundaries(router, side, size):
    reply_extra = len(msgpack.packb({"ok": True})) - 1  # the echo adds one key to the map
    pad = b"" if size is None else padding_for(size if side == "request" else size - reply_extra)
    with DaemonClient(router.endpoint, timeout=10) as client:
        reply = client.call("echo", pad=pad)
    assert reply.ok and reply.id == 1 and reply.data["pad"] == pad
    if size is not None:
        sizes = router.request_sizes if side == "request" else router.reply_sizes
        assert sizes == [size]


def test_a_five_mib_reply_arrives_through_polls_that_never_wait(router, client_waits):
    pad = os.urandom(5 * MIB)
    with DaemonClient(router.endpoint, timeout=10) as client:
        assert client.call("echo", pad=b"warm-up").ok  # call() may wait: it is never used inside Live
        client_waits.clear()
        started = time.monotonic()
        request_id = client.send("echo", pad=pad)
        replies = []
        while not replies:
            assert time.monotonic() - started < 10, "no reply"
            replies = client.poll(0)
    assert [r.id for r in replies] == [request_id]
    assert replies[0].data["pad"] == pad
    assert client_waits and set(client_waits) == {0.0}  # the socket was watched, never waited on


def test_idle_poll_never_waits(router, client_waits):
    with DaemonClient(router.endpoint) as client:
        assert client.call("ping").ok
        client_waits.clear()
        assert all(client.poll(0) == [] for _ in range(200))
    assert len(client_waits) == 200 and set(client_waits) == {0.0}


def test_a_socket_numbered_past_1024_works(router):
    """select() refuses a descriptor numbered 1024 or more (FD_SETSIZE), which a big Live set's
    open sample files reach: the script logged a traceback on every tick and never answered."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = 1100
    if max(soft, hard) < needed:  # RLIM_INFINITY is -1
        pytest.skip(f"this process may open only {hard} files")
    if 0 <= soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
    held = []
    try:
        while len(held) < needed - 64 and (not held or held[-1].fileno() < 1024):
            held.append(open(os.devnull, "rb"))  # noqa: SIM115  (closed below)
        with DaemonClient(router.endpoint, timeout=10) as client:
            request_id = client.send("echo", n=7)
            replies = pump(client, lambda got: len(got) >= 1)
            assert client._sock.fileno() >= 1024
    finally:
        for f in held:
            f.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [(r.id, r.ok, r.data["n"]) for r in replies] == [(request_id, True, 7)]


def test_thousand_pipelined_requests_each_answered_once(router):
    with DaemonClient(router.endpoint, timeout=10) as client:
        started = time.perf_counter()
        sent = {client.send("echo", n=n): n for n in range(1000)}
        assert client.pending() == 1000
        replies = pump(client, lambda got: len(got) >= 1000)
        elapsed = time.perf_counter() - started
        assert client.pending() == 0 and client.stats.resent == 0
    assert sorted(r.id for r in replies) == sorted(sent)
    assert all(r.ok and r.data["n"] == sent[r.id] for r in replies)
    assert len(router.requests) == 1000
    print(f"\n1,000 pipelined requests: {elapsed * 1000:.0f} ms, {1000 / elapsed:,.0f} requests/s")


def test_call_leaves_other_replies_for_poll(router):
    with DaemonClient(router.endpoint) as client:
        first = client.send("echo", n=1)
        second = client.call("echo", n=2)
        assert second.data["n"] == 2
        rest = pump(client, lambda got: len(got) >= 1)
    assert [(r.id, r.data["n"]) for r in rest] == [(first, 1)]


def test_error_replies_carry_code_and_message(router):
    with DaemonClient(router.endpoint) as client:
        reply = client.call("fail")
    assert not reply.ok
    assert (reply.error_code, reply.error_message) == (E_BAD_REQUEST, "no such style: polka")


def test_server_restart_mid_request_is_survived_lazy_pirate():
    first = Router(hold=True).start()
    log: list[str] = []
    with DaemonClient(first.endpoint, timeout=10, retries=5, log=log.append) as client:
        request_id = client.send("generate", bars=4)
        pump(client, lambda _: len(first.requests) == 1)
        first.stop()
        second = Router(first.port).start()
        try:
            replies = pump(client, lambda got: len(got) >= 1)
            assert client.call("ping").id > request_id  # ids stay unique across reconnects
        finally:
            second.stop()
        assert client.stats.connections == 2 and client.stats.resent == 1
    assert [(r.id, r.ok, r.data["bars"]) for r in replies] == [(request_id, True, 4)]
    assert second.requests[0]["id"] == request_id
    assert any("closed" in line or "failed" in line for line in log)


def test_one_retry_outlasts_a_daemon_that_takes_seconds_to_restart():
    """The connection drops mid-request and every reconnect is refused for a second: the
    request, sent once already, waits for the daemon within its deadline and is answered."""
    first = Router(hold=True).start()
    with DaemonClient(first.endpoint, timeout=5.0, retries=1) as client:
        request_id = client.send("generate", bars=2)
        pump(client, lambda _: len(first.requests) == 1)
        first.stop()
        client.poll(1.0)  # refused, again and again
        second = Router(first.port).start()
        try:
            replies = pump(client, lambda got: len(got) >= 1)
        finally:
            second.stop()
    assert [(r.id, r.ok) for r in replies] == [(request_id, True)]


def test_a_daemon_that_goes_away_mid_request_is_said_to_have_stopped_not_to_be_not_running():
    """Killed while it worked on a request, it was reported as "not running — start it", as if
    it had never been started; the user should look at its log."""
    first = Router(hold=True).start()
    with DaemonClient(first.endpoint, timeout=2.0, retries=1) as client:
        client.send("generate", bars=16)
        pump(client, lambda _: len(first.requests) == 1)
        first.stop()
        (reply,) = pump(client, lambda got: len(got) >= 1)
    assert not reply.ok and reply.error_code == E_UNAVAILABLE
    assert reply.error_message == (f"MidiDrumiGen daemon is not running at {first.endpoint}: it stopped while "
                                   "working on a request (its log says why) — start it again with `drumigen serve`")
    idle = Router().start()
    with DaemonClient(idle.endpoint, timeout=2.0, retries=1) as client:
        assert client.call("ping").ok
        idle.stop()  # gone while nothing was asked of it, and seen to go on a poll (Live polls on every tick)
        client.poll(0.5)
        reply = client.call("ping")
    assert reply.error_message == f"MidiDrumiGen daemon is not running at {idle.endpoint} — start it with `drumigen serve`"


def test_daemon_not_running_fails_fast_and_readably():
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    with DaemonClient(endpoint, timeout=3.0, retries=3) as client:
        started = time.monotonic()
        client.send("ping")
        assert time.monotonic() - started < 0.05  # send never waits for the connection
        reply = client.call("ping")
        elapsed = time.monotonic() - started
        assert client.pending() == 0
    assert not reply.ok and reply.error_code == E_UNAVAILABLE
    assert reply.error_message == (
        f"MidiDrumiGen daemon is not running at {endpoint} — start it with `drumigen serve`"
    )
    assert reply.data["error"]["code"] == E_UNAVAILABLE
    assert elapsed < 3.0
    print(f"\nnot running: E_UNAVAILABLE after {elapsed * 1000:.0f} ms")


def test_a_request_unanswered_on_a_standing_connection_is_waited_for_then_cancelled():
    """The daemon has it and is busy: resent on a new connection, its work would start over (a
    request longer than one timeout was never answered). Each retry waits one timeout more on
    the same connection; then the request fails and the daemon is told to drop it."""
    server = Router(hold=True).start()
    try:
        with DaemonClient(server.endpoint, timeout=0.3, retries=1) as client:
            started = time.monotonic()
            reply = client.call("generate")
            elapsed = time.monotonic() - started
            assert client.stats.connections == 1 and client.stats.resent == 0
            pump(client, lambda _: len(server.requests) == 2)
    finally:
        server.stop()
    assert reply.error_code == E_TIMEOUT and "did not answer within 0.6 s" in reply.error_message
    assert [(r["op"], r["id"]) for r in server.requests] == [("generate", reply.id), ("cancel", reply.id + 1)]
    assert server.requests[1]["ids"] == [reply.id]
    assert 0.6 <= elapsed < 5


def test_a_request_slower_than_one_timeout_is_answered_within_its_retries(router):
    """The Remote Script's 16-bar, 8-variation, focus-2 request took 12 s against a timeout_s of
    8 and one retry: resent at 8 s, started over and dropped again, it failed after 16 s."""
    with DaemonClient(router.endpoint, timeout=0.3, retries=2) as client:
        reply = client.call("slow", delay=0.7)
        assert reply.ok and client.stats.resent == 0 and client.stats.connections == 1
    assert [r["op"] for r in router.requests] == ["slow"]
    assert 0.8 < router.requests[0]["timeout"] <= 0.9  # the daemon may work on it for the whole wait


def test_a_forgotten_request_is_neither_waited_for_nor_resent(router):
    """A slow request forgotten (a newer press replaced it) must not, when its deadline passes,
    reconnect and resend the one that replaced it, nor come back as a Reply."""
    log: list[str] = []
    with DaemonClient(router.endpoint, timeout=0.3, retries=1, log=log.append) as client:
        hello = client.call("ping").id  # connected: what is sent now goes out at once
        old = client.send("slow", delay=1.0)
        client.forget(old)
        assert client.pending() == 0
        replies = client.poll(0.6)  # past the old request's deadline
        new = client.send("ping")
        replies += pump(client, lambda got: any(r.id == new for r in got))
        assert [r.id for r in replies] == [new] and replies[0].ok
        pump(client, lambda got: client.stats.dropped_replies == 1)  # the old answer, when it comes: dropped
        assert client.stats.connections == 1 and client.stats.cancels_sent == 1
    # Nothing resent; the daemon was told to drop the forgotten one, and the cancel's own answer
    # (this router echoes it) was no Reply and no dropped reply either: the one dropped is the old answer.
    assert [(r["op"], r["id"]) for r in router.requests] == [("ping", hello), ("slow", old), ("cancel", old + 1),
                                                              ("ping", new)]
    assert router.requests[2]["ids"] == [old]
    assert [line for line in log if line.startswith("dropped")] == [
        f"dropped a reply for id {old}, which is not pending (late or duplicate)"]


def test_every_request_carries_how_long_the_client_still_waits_for_it(router):
    """So the daemon can drop what the client stopped waiting for; the client's own keys win."""
    with DaemonClient(router.endpoint, timeout=2.5, retries=1) as client:
        assert client.call("ping").ok
        with pytest.raises(ValueError, match="timeout"):
            client.send("generate", timeout=100)
    assert 4.5 < router.requests[0]["timeout"] <= 5.0  # an attempt and its retry
    with pytest.raises(ValueError, match="timeout must be"):
        DaemonClient(router.endpoint, timeout=7200)


def test_a_resent_request_carries_what_is_left_of_the_wait():
    """The time a reconnect takes (a backoff, a handshake) is not the daemon's to spend."""
    first = Router(hold=True).start()
    with DaemonClient(first.endpoint, timeout=2.0, retries=1) as client:
        client.send("generate")
        pump(client, lambda _: len(first.requests) == 1)
        first.stop()  # the connection drops: Lazy Pirate resends on a new one
        second = Router(first.port, hold=True).start()
        try:
            pump(client, lambda _: len(second.requests) == 1)
        finally:
            second.stop()
    sent, resent = first.requests[0]["timeout"], second.requests[0]["timeout"]
    assert 3.5 < sent <= 4.0 and resent < sent - 0.1  # after at least the 0.1 s backoff


def test_a_connection_that_drops_late_in_the_wait_resends_with_what_is_left_of_it():
    """Waited through one timeout, a drop left no retry (it failed at once, with a second of the
    wait left), and a drop early in it told the daemon a timeout's share, not what was left."""
    first = Router(hold=True).start()
    with DaemonClient(first.endpoint, timeout=1.0, retries=1) as client:
        request_id = client.send("generate")
        pump(client, lambda _: len(first.requests) == 1)
        client.poll(1.3)  # past the first timeout, waiting on
        first.stop()  # the daemon restarts
        second = Router(first.port).start()
        try:
            [reply] = pump(client, lambda got: len(got) == 1)
        finally:
            second.stop()
    assert reply.ok and reply.id == request_id
    assert 1.9 < first.requests[0]["timeout"] <= 2.0 and 0.2 < second.requests[0]["timeout"] < 0.7


def test_requests_failing_together_while_the_connection_goes_are_each_answered_once(monkeypatch):
    """Two requests at the end of their wait; the first one's cancel finds the connection reset,
    which fails the second (a KeyError when the expiry went on with its list)."""
    server = Router(hold=True).start()
    try:
        client = DaemonClient(server.endpoint, timeout=0.3, retries=0)
        ids = [client.send("generate"), client.send("generate")]
        pump(client, lambda _: len(server.requests) == 2)
        time.sleep(0.4)

        def reset() -> None:
            if client._wbuf:
                client._lost("sending failed: Connection reset by peer")

        monkeypatch.setattr(client, "_write", reset)
        replies = client.poll(0)
        client.close()
    finally:
        server.stop()
    assert sorted(r.id for r in replies) == ids and not any(r.ok for r in replies)


def test_the_whole_wait_is_at_most_the_hour_the_daemon_waits(router):
    """timeout_s 600 with 10 retries waited 6,600 s for a daemon that dropped the work at 3,600."""
    with DaemonClient(router.endpoint, timeout=600, retries=10) as client:
        assert client.whole_wait == 3600 and client.call("ping").ok
    assert 3599 < router.requests[0]["timeout"] <= 3600


def test_the_daemons_cancelled_for_a_pending_request_is_not_its_answer(router):
    """`cancelled` for a request the client still waits for can only mean the daemon's end of
    its timeout (it reads the request after the client sent it): the client's own clock
    decides, failing it as it would after silence."""
    with DaemonClient(router.endpoint, timeout=0.3, retries=1) as client:
        reply = client.call("give_up")
        assert reply.error_code == E_TIMEOUT
        assert client.stats.resent == 0 and client.stats.dropped_replies == 1
        pump(client, lambda _: len(router.requests) == 2)
    assert [r["op"] for r in router.requests] == ["give_up", "cancel"]


def test_a_request_forgotten_before_it_was_sent_is_not_cancelled():
    """Nothing to cancel on a daemon that never got it (no connection yet)."""
    server = Router().start()
    try:
        client = DaemonClient(server.endpoint, timeout=1)
        old = client.send("slow", delay=0.5)  # connecting: not sent yet
        client.forget(old)
        new = client.send("ping")
        assert pump(client, lambda got: any(r.id == new for r in got))[0].ok
        assert client.stats.cancels_sent == 0
        client.close()
    finally:
        server.stop()
    assert [r["op"] for r in server.requests] == ["ping"]


def test_replies_for_no_pending_request_are_dropped(router):
    log: list[str] = []
    with DaemonClient(router.endpoint, log=log.append) as client:
        reply = client.call("stale")
        assert reply.ok and reply.data["op"] == "stale"
        assert client.stats.dropped_replies == 3
    assert any("1000000" in line and "not pending" in line for line in log)
    assert any("undecodable" in line for line in log)


def test_late_reply_after_timeout_is_dropped(router):
    with DaemonClient(router.endpoint, timeout=0.15, retries=0) as client:
        late = client.call("slow", delay=0.6)
        assert late.error_code == E_TIMEOUT
        replies = pump(client, lambda got: client.stats.dropped_replies == 1)
        assert replies == [] and client.connected
    assert [r["op"] for r in router.requests] == ["slow", "cancel"]  # not resent; dropped on the daemon


def test_a_reply_that_came_in_time_between_two_polls_is_taken(router):
    """Live polls once a tick: the reply landed before the deadline, the next poll comes after it."""
    with DaemonClient(router.endpoint, timeout=0.5, retries=0) as client:
        assert client.call("ping").ok  # connected
        request_id = client.send("slow", delay=0.15)
        assert client.poll(0) == []
        time.sleep(0.7)
        [reply] = client.poll(0)
        assert client.stats.connections == 1
    assert reply.ok and reply.id == request_id
    assert len(router.requests) == 2  # not resent


def test_a_socket_that_cannot_be_opened_is_a_failed_attempt_never_an_exception(monkeypatch):
    def out_of_descriptors(*args, **kwargs):
        raise OSError(errno.EMFILE, "Too many open files")

    endpoint = f"tcp://127.0.0.1:{free_port()}"
    monkeypatch.setattr(socket, "socket", out_of_descriptors)
    with DaemonClient(endpoint, timeout=1.0, retries=1) as client:
        client.send("ping")
        [reply] = pump(client, lambda got: len(got) == 1)
    assert reply.error_code == E_UNAVAILABLE and "cannot open a socket: Too many open files" in reply.error_message


def test_a_refused_tcp_nodelay_is_no_failure(router, monkeypatch):
    """macOS answers EINVAL to TCP_NODELAY on a connection the peer has already shut: raised out
    of poll, it escaped on every tick of Live's and the press in flight never ended."""
    real_socket = socket.socket

    class MacSocket(real_socket):
        def setsockopt(self, level, option, value):
            if option == socket.TCP_NODELAY:
                raise OSError(errno.EINVAL, "Invalid argument")
            return super().setsockopt(level, option, value)

    monkeypatch.setattr(socket, "socket", MacSocket)
    with DaemonClient(router.endpoint, timeout=2.0, retries=0) as client:
        assert client.call("ping").ok


def test_a_socket_call_refused_mid_request_ends_the_connection_and_lazy_pirate_goes_on(router, monkeypatch):
    with DaemonClient(router.endpoint, timeout=2.0, retries=1) as client:
        assert client.call("ping").ok
        refusals = []

        def refused(*args):
            refusals.append(args)
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(client._selector, "select", refused)
        request_id = client.send("ping")
        assert client.poll(0) == [] and refusals and not client.connected  # no exception
        monkeypatch.undo()
        [reply] = pump(client, lambda got: len(got) == 1)
        assert reply.ok and reply.id == request_id and client.stats.connections == 2


def test_an_address_family_the_system_lacks_falls_back_to_the_next_address(router, monkeypatch):
    real_socket = socket.socket

    def no_ipv6(family=socket.AF_INET, *args, **kwargs):
        if family == socket.AF_INET6:
            raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")
        return real_socket(family, *args, **kwargs)

    def no_lookup(*args, **kwargs):
        raise AssertionError("localhost was looked up on the caller's (Live's) thread")

    monkeypatch.setattr(socket, "socket", no_ipv6)
    monkeypatch.setattr(socket, "getaddrinfo", no_lookup)
    with DaemonClient(f"tcp://localhost:{router.port}", retries=0) as client:  # ::1 first, then 127.0.0.1
        assert client.call("ping").ok


def test_oversized_reply_closes_the_connection(router):
    with DaemonClient(router.endpoint, retries=0, max_reply_bytes=1000) as client:
        reply = client.call("echo", pad=b"x" * 2000)
    assert reply.error_code == E_UNAVAILABLE and "too large" in reply.error_message


def test_a_daemon_that_requires_curvezmq_is_not_reported_as_not_running():
    """`drumigen serve --curve-secret` takes the connection and drops it at the handshake: the
    musician must not be told to start a daemon that runs."""
    ctx = zmq.Context()
    router = ctx.socket(zmq.ROUTER)
    public, secret = zmq.curve_keypair()
    router.curve_server, router.curve_secretkey, router.curve_publickey = True, secret, public
    try:
        port = router.bind_to_random_port("tcp://127.0.0.1")
        with DaemonClient(f"tcp://127.0.0.1:{port}", timeout=2.0, retries=0) as client:
            reply = client.call("ping")
    finally:
        router.close(0)
        ctx.term()
    assert reply.error_code == E_UNAVAILABLE and not reply.error_message.startswith(NOT_RUNNING)
    assert "is not the MidiDrumiGen daemon" in reply.error_message and "CurveZMQ" in reply.error_message


def test_a_pub_socket_is_not_taken_for_the_daemon():
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    try:
        port = pub.bind_to_random_port("tcp://127.0.0.1")
        with DaemonClient(f"tcp://127.0.0.1:{port}", retries=0) as client:
            reply = client.call("ping")
            assert client.stats.connections == 0
    finally:
        pub.close(0)
        ctx.term()
    assert reply.error_code == E_UNAVAILABLE and "not running" not in reply.error_message
    # libzmq usually drops us first (DEALER-PUB is invalid), before we read its READY.
    assert "PUB socket" in reply.error_message or "closed" in reply.error_message


def test_a_non_zeromq_server_is_reported_as_such():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        with DaemonClient(f"tcp://127.0.0.1:{port}", retries=0) as client:
            client.send("ping")

            def answer_like_http(replies: list[Reply]) -> bool:
                try:
                    peer, _ = listener.accept()
                except BlockingIOError:
                    return bool(replies)
                with peer:
                    peer.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                return False

            replies = pump(client, answer_like_http)
    assert replies[0].error_code == E_UNAVAILABLE
    assert "not a ZeroMQ socket" in replies[0].error_message
    assert "is not the MidiDrumiGen daemon" in replies[0].error_message  # and not told to start one


def test_heartbeat_pings_are_answered_and_the_connection_stays_up():
    server = Router(heartbeat_ms=50).start()
    try:
        with DaemonClient(server.endpoint) as client:
            assert client.call("ping").ok
            pump(client, lambda _: client.stats.pongs_sent >= 10)  # ~0.5 s, 10 heartbeat periods
            assert client.connected and client.stats.connections == 1
            assert client.call("ping").ok and client.stats.connections == 1
    finally:
        server.stop()


def test_without_pongs_libzmq_would_drop_us(monkeypatch):
    """The control for the test above: it shows the heartbeat timeout is really armed."""
    answer = zmtp.Connection._on_command

    def deaf(self: zmtp.Connection, body: bytes) -> None:
        if zmtp.split_command(body)[0] != b"PING":
            answer(self, body)

    monkeypatch.setattr(zmtp.Connection, "_on_command", deaf)
    server = Router(heartbeat_ms=50).start()
    try:
        with DaemonClient(server.endpoint) as client:
            assert client.call("ping").ok
            pump(client, lambda _: not client.connected)
    finally:
        server.stop()


def test_hostname_endpoints_resolve(router):
    with DaemonClient(f"tcp://localhost:{router.port}") as client:
        assert client.call("ping").ok  # also when localhost means ::1 first


@pytest.mark.parametrize(
    "endpoint, expected",
    [
        ("tcp://127.0.0.1:5555", ("127.0.0.1", 5555)),
        ("tcp://[::1]:5555", ("::1", 5555)),
        ("tcp://[fe80::1%eth0]:1", ("fe80::1%eth0", 1)),
        ("tcp://studio-mac.local:65535", ("studio-mac.local", 65535)),
    ],
)
def test_endpoints_parse(endpoint, expected):
    assert parse_endpoint(endpoint) == expected


@pytest.mark.parametrize(
    "endpoint",
    [
        "127.0.0.1:5555",
        "tcp://127.0.0.1",
        "tcp://*:5555",
        "ipc:///tmp/drumigen",
        "tcp://::1:5555",
        "tcp://[::1:5555",
        "tcp://[not-ipv6]:5555",
        "tcp://host:0",
        "tcp://host:70000",
        "tcp://host:55a",
        "",
    ],
)
def test_bad_endpoints_are_value_errors(endpoint):
    with pytest.raises(ValueError, match="endpoint"):
        DaemonClient(endpoint)
