"""ZMTP 3.1 with the NULL mechanism, as a DEALER, without I/O: bytes in, messages and bytes out.

Live's Python has no pyzmq, so the Live side speaks the ZeroMQ wire protocol itself
(rfc.zeromq.org specs 23 and 37). Keeping this module free of sockets makes it testable byte by
byte and leaves all socket handling to shared.client. libzmq's habits it copes with: the
greeting arrives in pieces (10, 1, 53 octets), its signature padding is not zero, it may answer
3.1 to a 3.0 greeting, and it may send PING commands that must be answered with PONG.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

GREETING_SIZE = 64
MECHANISM = b"NULL"
SOCKET_TYPE = "DEALER"
# Peers a DEALER may talk to (spec 28).
PEER_SOCKET_TYPES = ("ROUTER", "REP", "DEALER")

FLAG_MORE = 0x01
FLAG_LONG = 0x02
FLAG_COMMAND = 0x04

# Hostile-peer caps: commands are tiny (READY, PING), messages have a few frames.
MAX_COMMAND_BYTES = 64 * 1024
MAX_FRAMES = 64
MAX_PING_CONTEXT = 16

_SIZE64 = struct.Struct(">Q")
_SIZE32 = struct.Struct(">I")


class ZmtpError(Exception):
    """The peer broke the protocol or refused us; the connection must be closed."""


def greeting() -> bytes:
    """Our 64-octet greeting: signature, version 3.1, mechanism NULL, as-server 0, filler."""
    return b"\xff" + bytes(8) + b"\x7f" + b"\x03\x01" + MECHANISM.ljust(20, b"\0") + bytes(32)


def encode_frame(body: bytes, *, more: bool = False, command: bool = False) -> bytes:
    """One frame; the short form up to 255 octets, the LONG form above, as the spec requires."""
    flags = (FLAG_MORE if more else 0) | (FLAG_COMMAND if command else 0)
    if len(body) <= 0xFF:
        return bytes((flags, len(body))) + body
    return bytes((flags | FLAG_LONG,)) + _SIZE64.pack(len(body)) + body


def encode_command(name: bytes, data: bytes = b"") -> bytes:
    return encode_frame(bytes((len(name),)) + name + data, command=True)


def encode_ready(socket_type: str = SOCKET_TYPE) -> bytes:
    """READY with only Socket-Type: no Identity, so a ROUTER assigns each connection its own."""
    return encode_command(b"READY", encode_metadata({"Socket-Type": socket_type.encode()}))


def encode_metadata(properties: dict[str, bytes]) -> bytes:
    out = bytearray()
    for name, value in properties.items():
        raw = name.encode("ascii")
        out += bytes((len(raw),)) + raw + _SIZE32.pack(len(value)) + value
    return bytes(out)


def parse_metadata(data: bytes) -> dict[str, bytes]:
    """READY properties, names lower-cased (the spec makes them case-insensitive)."""
    properties = {}
    pos = 0
    while pos < len(data):
        name_end = pos + 1 + data[pos]
        if name_end + 4 > len(data):
            raise ZmtpError("malformed READY metadata: a property name is cut short")
        name = data[pos + 1 : name_end].decode("ascii", "replace").lower()
        value_end = name_end + 4 + _SIZE32.unpack_from(data, name_end)[0]
        if value_end > len(data):
            raise ZmtpError(f"malformed READY metadata: property {name!r} is cut short")
        properties[name] = data[name_end + 4 : value_end]
        pos = value_end
    return properties


def split_command(body: bytes) -> tuple[bytes, bytes]:
    """(name, data) of a command frame's body."""
    if not body or 1 + body[0] > len(body):
        raise ZmtpError("malformed command frame: its name is cut short")
    return body[1 : 1 + body[0]], body[1 + body[0] :]


class Connection:
    """One ZMTP connection's state: feed `receive` what the socket read, write `data_to_send`.

    The greeting and READY are queued at once (libzmq waits for our greeting before finishing
    its own, so sending ours whole avoids a deadlock). Messages may be sent only once the peer's
    READY has been checked (`ready`).
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self.ready = False
        self.peer_socket_type: str | None = None
        self.pings_answered = 0
        self._in = bytearray()
        self._out = bytearray(greeting() + encode_ready())
        self._greeted = False
        self._frames: list[bytes] = []  # of the message being received
        self._message_bytes = 0

    def data_to_send(self) -> bytearray:
        """Hand over the bytes queued for the peer (the caller writes them in order)."""
        out, self._out = self._out, bytearray()
        return out

    def send(self, frames: Sequence[bytes]) -> None:
        """Queue one multi-frame message."""
        if not self.ready:
            raise RuntimeError("ZMTP handshake not finished: cannot send messages yet")
        for i, body in enumerate(frames):
            self._out += encode_frame(body, more=i < len(frames) - 1)

    def receive(self, data: bytes) -> list[list[bytes]]:
        """Take bytes from the peer; return the messages they complete. Raises ZmtpError."""
        self._in += data
        if not self._greeted:
            self._check_greeting()
            if not self._greeted:
                return []
        messages: list[list[bytes]] = []
        buf, pos = self._in, 0
        while len(buf) - pos >= 2:
            flags = buf[pos]
            if flags & ~(FLAG_MORE | FLAG_LONG | FLAG_COMMAND):
                raise ZmtpError(f"frame with reserved flag bits set (0x{flags:02x})")
            if flags & FLAG_LONG:
                if len(buf) - pos < 9:
                    break
                size, header = _SIZE64.unpack_from(buf, pos + 1)[0], 9
            else:
                size, header = buf[pos + 1], 2
            self._check_size(flags, size)
            if len(buf) - pos < header + size:
                break
            with memoryview(buf) as view:  # one copy of the body, not two
                body = view[pos + header : pos + header + size].tobytes()
            pos += header + size
            if flags & FLAG_COMMAND:
                self._on_command(body)
            else:
                message = self._on_frame(body, flags & FLAG_MORE)
                if message is not None:
                    messages.append(message)
        del buf[:pos]
        return messages

    def _check_greeting(self) -> None:
        buf = self._in
        if buf[:1] not in (b"", b"\xff") or (len(buf) >= 10 and buf[9] != 0x7F):
            raise ZmtpError("the peer is not a ZeroMQ socket (bad greeting signature)")
        if len(buf) >= 11 and buf[10] < 3:
            raise ZmtpError(f"the peer speaks ZMTP {buf[10]}, this client needs 3.x")
        if len(buf) < GREETING_SIZE:
            return
        mechanism = bytes(buf[12:32]).rstrip(b"\0")
        if mechanism != MECHANISM:
            name = mechanism.decode("ascii", "replace")
            raise ZmtpError(f"the peer wants security mechanism {name}; only NULL is supported")
        del buf[:GREETING_SIZE]
        self._greeted = True

    def _check_size(self, flags: int, size: int) -> None:
        # Checked on the header, before the body is buffered.
        if flags & FLAG_COMMAND:
            if flags & FLAG_MORE:
                raise ZmtpError("command frame with the MORE flag set")
            if size > MAX_COMMAND_BYTES:
                raise ZmtpError(f"command of {size} bytes exceeds {MAX_COMMAND_BYTES}")
        elif not self.ready:
            raise ZmtpError("the peer sent a message before its READY command")
        elif self._message_bytes + size > self.max_message_bytes:
            raise ZmtpError(
                f"message too large: {self._message_bytes + size} bytes or more, "
                f"the limit is {self.max_message_bytes}"
            )

    def _on_frame(self, body: bytes, more: int) -> list[bytes] | None:
        self._frames.append(body)
        self._message_bytes += len(body)
        if len(self._frames) > MAX_FRAMES:
            raise ZmtpError(f"message of more than {MAX_FRAMES} frames")
        if more:
            return None
        message, self._frames, self._message_bytes = self._frames, [], 0
        return message

    def _on_command(self, body: bytes) -> None:
        name, data = split_command(body)
        if name == b"ERROR":
            reason = data[1 : 1 + data[0]].decode("utf-8", "replace") if data else ""
            raise ZmtpError(f"the peer closed the connection with ERROR: {reason or '?'}")
        if not self.ready:
            self._on_ready(name, data)
        elif name == b"PING":
            if len(data) < 2:
                raise ZmtpError("malformed PING command")
            self._out += encode_command(b"PONG", data[2 : 2 + MAX_PING_CONTEXT])
            self.pings_answered += 1
        # Anything else (PONG, unknown commands) is ignored.

    def _on_ready(self, name: bytes, data: bytes) -> None:
        if name != b"READY":
            raise ZmtpError(f"expected READY from the peer, got {name!r}")
        socket_type = parse_metadata(data).get("socket-type", b"").decode("ascii", "replace")
        if socket_type not in PEER_SOCKET_TYPES:
            raise ZmtpError(
                f"the peer is a {socket_type or 'untyped'} socket; a DEALER needs one of "
                + ", ".join(PEER_SOCKET_TYPES)
            )
        self.peer_socket_type = socket_type
        self.ready = True
