"""ZMTP 3.1 framing and handshake, byte by byte, including libzmq's habits and hostile peers."""

from __future__ import annotations

import struct

import pytest

from shared import zmtp
from shared.zmtp import Connection, ZmtpError

CAP = 1024


def peer_greeting(version: bytes = b"\x03\x01", mechanism: bytes = b"NULL") -> bytes:
    # libzmq's padding is not zero; it must be ignored.
    return (
        b"\xff" + b"\x00" * 7 + b"\x01" + b"\x7f" + version + mechanism.ljust(20, b"\0") + bytes(32)
    )


def peer_ready(socket_type: bytes = b"ROUTER", name: str = "Socket-Type") -> bytes:
    return zmtp.encode_command(b"READY", zmtp.encode_metadata({name: socket_type}))


def ready_connection(cap: int = CAP) -> Connection:
    conn = Connection(cap)
    conn.data_to_send()
    assert conn.receive(peer_greeting() + peer_ready()) == []
    assert conn.ready
    return conn


def test_our_greeting_and_ready():
    conn = Connection(CAP)
    out = bytes(conn.data_to_send())
    greeting, ready = out[:64], out[64:]
    assert greeting[0] == 0xFF and greeting[9] == 0x7F
    assert greeting[10:12] == b"\x03\x01"
    assert greeting[12:32] == b"NULL" + bytes(16)
    assert greeting[32] == 0 and greeting[33:] == bytes(31)
    name, data = zmtp.split_command(ready[2:])
    assert ready[0] == zmtp.FLAG_COMMAND and ready[1] == len(ready) - 2
    assert name == b"READY"
    assert zmtp.parse_metadata(data) == {"socket-type": b"DEALER"}  # and no Identity
    assert conn.data_to_send() == b""


@pytest.mark.parametrize("pieces", [(10, 1, 53), (1,) * 64, (64,)])
@pytest.mark.parametrize("version", [b"\x03\x00", b"\x03\x01", b"\x04\x00"])
def test_peer_greeting_in_any_pieces_and_versions(pieces, version):
    conn = Connection(CAP)
    data, pos = peer_greeting(version), 0
    for size in pieces:
        assert conn.receive(data[pos : pos + size]) == []
        pos += size
    assert not conn.ready
    conn.receive(peer_ready(b"REP", name="socket-type"))  # property names are case-insensitive
    assert conn.ready and conn.peer_socket_type == "REP"


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"HTTP/1.1 400 Bad Request\r\n", "not a ZeroMQ"),
        (b"\xff" + bytes(8) + b"\x01", "not a ZeroMQ"),
        (peer_greeting(version=b"\x02\x00")[:11], "ZMTP 2"),
        (peer_greeting(mechanism=b"CURVE"), "CURVE"),
        (peer_greeting() + peer_ready(b"PUB"), "PUB"),
        (peer_greeting() + zmtp.encode_command(b"READY"), "untyped"),
        (peer_greeting() + zmtp.encode_command(b"HELLO"), "expected READY"),
        (peer_greeting() + zmtp.encode_frame(b"hi"), "before its READY"),
        (peer_greeting() + zmtp.encode_command(b"ERROR", b"\x06denied"), "denied"),
        (
            peer_greeting() + zmtp.encode_command(b"READY", b"\x0bSocket-Type\x00\x00\x00\x09ROU"),
            "cut",
        ),
    ],
)
def test_bad_peers_are_refused_clearly(data, reason):
    with pytest.raises(ZmtpError, match=reason):
        Connection(CAP).receive(data)


@pytest.mark.parametrize("size", [0, 1, 255, 256, 70000])
def test_frames_round_trip_across_the_short_long_boundary(size):
    frame = zmtp.encode_frame(b"x" * size)
    assert frame[0] == (zmtp.FLAG_LONG if size > 255 else 0)
    conn = ready_connection(cap=100_000)
    assert conn.receive(frame) == [[b"x" * size]]


def test_multi_frame_messages_arrive_whole_even_byte_by_byte():
    sender = ready_connection()
    sender.send([b"", b"payload", b"tail"])
    wire = bytes(sender.data_to_send())
    assert wire[:2] == b"\x01\x00" and wire[-6:-4] == b"\x00\x04"  # MORE on all but the last
    conn = ready_connection()
    messages = [m for byte in wire for m in conn.receive(bytes((byte,)))]
    assert messages == [[b"", b"payload", b"tail"]]


def test_long_form_of_a_short_frame_is_accepted():
    conn = ready_connection()
    assert conn.receive(b"\x02" + struct.pack(">Q", 3) + b"abc") == [[b"abc"]]


def test_hostile_sizes_fail_on_the_header_alone():
    with pytest.raises(ZmtpError, match="too large"):
        ready_connection().receive(b"\x02" + struct.pack(">Q", 2**63))
    with pytest.raises(ZmtpError, match="too large"):  # the cap covers the whole message
        ready_connection().receive(
            zmtp.encode_frame(b"x" * 600, more=True) + b"\x02" + struct.pack(">Q", 600)
        )
    with pytest.raises(ZmtpError, match="command of"):
        ready_connection().receive(b"\x06" + struct.pack(">Q", 2**40))
    with pytest.raises(ZmtpError, match="frames"):
        ready_connection().receive(zmtp.encode_frame(b"", more=True) * (zmtp.MAX_FRAMES + 1))


@pytest.mark.parametrize(
    "frame, reason",
    [
        (b"\x08\x00", "reserved"),
        (b"\x05\x05\x04PING", "MORE"),
        (zmtp.encode_command(b"PING"), "PING"),
    ],
)
def test_malformed_frames(frame, reason):
    with pytest.raises(ZmtpError, match=reason):
        ready_connection().receive(frame)


def test_ping_gets_pong_with_its_context():
    conn = ready_connection()
    assert conn.receive(zmtp.encode_command(b"PING", b"\x00\x0actx-42")) == []
    assert bytes(conn.data_to_send()) == zmtp.encode_command(b"PONG", b"ctx-42")
    assert conn.pings_answered == 1
    conn.receive(zmtp.encode_command(b"PONG") + zmtp.encode_command(b"SUBSCRIBE", b"x"))
    assert conn.data_to_send() == b""  # other commands are ignored


def test_sending_before_the_handshake_is_a_bug():
    with pytest.raises(RuntimeError):
        Connection(CAP).send([b"x"])
