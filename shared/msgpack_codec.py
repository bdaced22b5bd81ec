"""A small msgpack codec for Live's embedded Python, byte-identical to msgpack-python.

Live's Python cannot load msgpack's C extension, yet the daemon speaks msgpack, so the Live
side carries its own codec. It covers the types our protocol uses (nil, bool, int, float,
str, bin, array, map), encodes exactly like `msgpack.packb(obj)` with default settings, and
decodes defensively: replies come from a socket, so every length is checked against the
bytes actually present before anything is allocated, and nesting depth is bounded.
"""

from __future__ import annotations

import struct

# Deepest nesting of arrays and maps either way; our messages need 3 or 4 levels.
MAX_DEPTH = 64

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")

# Type byte -> decoder for fixed-size scalars.
_SCALARS = {
    0xCA: struct.Struct(">f"),
    0xCB: struct.Struct(">d"),
    0xCC: _U8,
    0xCD: _U16,
    0xCE: _U32,
    0xCF: struct.Struct(">Q"),
    0xD0: struct.Struct(">b"),
    0xD1: struct.Struct(">h"),
    0xD2: struct.Struct(">i"),
    0xD3: struct.Struct(">q"),
}
# Type byte -> (length field, kind) for the variable-size types.
_SIZED = {
    0xC4: (_U8, "bin"),
    0xC5: (_U16, "bin"),
    0xC6: (_U32, "bin"),
    0xD9: (_U8, "str"),
    0xDA: (_U16, "str"),
    0xDB: (_U32, "str"),
    0xDC: (_U16, "array"),
    0xDD: (_U32, "array"),
    0xDE: (_U16, "map"),
    0xDF: (_U32, "map"),
}
_UINT_LIMITS = ((0xCC, 1 << 8), (0xCD, 1 << 16), (0xCE, 1 << 32), (0xCF, 1 << 64))
_INT_LIMITS = ((0xD0, -(1 << 7)), (0xD1, -(1 << 15)), (0xD2, -(1 << 31)), (0xD3, -(1 << 63)))
_EXT = frozenset(range(0xC7, 0xCA)) | frozenset(range(0xD4, 0xD9))


class DecodeError(ValueError):
    """Bytes that are not exactly one msgpack value of a supported type."""


def packb(obj: object) -> bytes:
    """Encode `obj` exactly as `msgpack.packb(obj)` would; TypeError for what it cannot hold."""
    out = bytearray()
    _pack(obj, out, 0)
    return bytes(out)


def unpackb(data: bytes | bytearray | memoryview) -> object:
    """Decode exactly one value; DecodeError for anything malformed, hostile or unsupported."""
    decoder = _Decoder(bytes(data))
    value = decoder.value(0)
    extra = len(decoder.data) - decoder.pos
    if extra:
        raise DecodeError(f"{extra} trailing bytes after the msgpack value")
    return value


def _pack(obj: object, out: bytearray, depth: int) -> None:
    if obj is None:
        out.append(0xC0)
    elif isinstance(obj, bool):
        out.append(0xC3 if obj else 0xC2)
    elif isinstance(obj, int):
        _pack_int(obj, out)
    elif isinstance(obj, float):
        out += b"\xcb" + _SCALARS[0xCB].pack(obj)
    elif isinstance(obj, str):
        data = obj.encode("utf-8")
        _pack_header(out, len(data), 0xA0, 31, 0xD9, 0xDA, 0xDB)
        out += data
    elif isinstance(obj, (bytes, bytearray)):
        _pack_header(out, len(obj), 0, -1, 0xC4, 0xC5, 0xC6)
        out += obj
    elif isinstance(obj, (list, tuple)):
        _check_depth(depth, ValueError)
        _pack_header(out, len(obj), 0x90, 15, None, 0xDC, 0xDD)
        for item in obj:
            _pack(item, out, depth + 1)
    elif isinstance(obj, dict):
        _check_depth(depth, ValueError)
        _pack_header(out, len(obj), 0x80, 15, None, 0xDE, 0xDF)
        for key, value in obj.items():
            _pack(key, out, depth + 1)
            _pack(value, out, depth + 1)
    else:
        raise TypeError(f"msgpack cannot encode a {type(obj).__name__}")


def _pack_int(n: int, out: bytearray) -> None:
    # The smallest form, unsigned ones for positive numbers, as msgpack-python chooses.
    if -32 <= n < 128:
        out.append(n & 0xFF)
        return
    if n > 0:
        code = next((code for code, limit in _UINT_LIMITS if n < limit), None)
    else:
        code = next((code for code, limit in _INT_LIMITS if n >= limit), None)
    if code is None:
        raise TypeError(f"integer {n} does not fit in msgpack's 64 bits")
    out.append(code)
    out += _SCALARS[code].pack(n)


def _pack_header(
    out: bytearray, n: int, fix: int, fix_max: int, c8: int | None, c16: int, c32: int
) -> None:
    if n <= fix_max:
        out.append(fix | n)
    elif c8 is not None and n <= 0xFF:
        out += bytes((c8, n))
    elif n <= 0xFFFF:
        out.append(c16)
        out += _U16.pack(n)
    elif n <= 0xFFFFFFFF:
        out.append(c32)
        out += _U32.pack(n)
    else:
        raise ValueError(f"msgpack cannot hold {n} items or bytes in one value")


def _check_depth(depth: int, error: type[Exception]) -> None:
    if depth >= MAX_DEPTH:
        raise error(f"msgpack value nested deeper than {MAX_DEPTH} arrays or maps")


class _Decoder:
    """A cursor over the input; each method consumes one value or field."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def value(self, depth: int) -> object:
        data, pos = self.data, self.pos
        if pos >= len(data):
            raise DecodeError(f"msgpack data truncated: a value is missing at offset {pos}")
        code = data[pos]
        self.pos = pos + 1
        if code <= 0x7F:
            return code
        if code >= 0xE0:
            return code - 0x100
        if code >= 0xA0 and code <= 0xBF:
            return self._str(code & 0x1F)
        if code >= 0x90 and code <= 0x9F:
            return self._array(code & 0x0F, depth)
        if code <= 0x8F:
            return self._map(code & 0x0F, depth)
        if code == 0xC0:
            return None
        if code == 0xC2 or code == 0xC3:
            return code == 0xC3
        scalar = _SCALARS.get(code)
        if scalar is not None:
            return scalar.unpack(self._take(scalar.size))[0]
        sized = _SIZED.get(code)
        if sized is not None:
            field, kind = sized
            n = field.unpack(self._take(field.size))[0]
            if kind == "bin":
                return self._take(n)
            if kind == "str":
                return self._str(n)
            if kind == "array":
                return self._array(n, depth)
            return self._map(n, depth)
        if code in _EXT:
            raise DecodeError(f"msgpack ext type 0x{code:02x} at offset {pos} is not supported")
        raise DecodeError(f"0x{code:02x} at offset {pos} is not a msgpack type")

    def _take(self, n: int) -> bytes:
        start = self.pos
        if n > len(self.data) - start:
            raise DecodeError(
                f"msgpack data truncated: {n} bytes declared at offset {start}, "
                f"{len(self.data) - start} present"
            )
        self.pos = start + n
        return self.data[start : self.pos]

    def _str(self, n: int) -> str:
        raw = self._take(n)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DecodeError(f"msgpack str is not valid UTF-8: {error}") from None

    def _array(self, n: int, depth: int) -> list:
        self._check_count(n, 1, depth)
        return [self.value(depth + 1) for _ in range(n)]

    def _map(self, n: int, depth: int) -> dict:
        self._check_count(n, 2, depth)
        result = {}
        for _ in range(n):
            key = self.value(depth + 1)
            value = self.value(depth + 1)
            try:
                result[key] = value
            except TypeError:
                raise DecodeError(
                    f"msgpack map key of type {type(key).__name__} is not hashable"
                ) from None
        return result

    def _check_count(self, n: int, bytes_per_item: int, depth: int) -> None:
        # Every item takes at least one byte: refuse counts the input cannot hold.
        _check_depth(depth, DecodeError)
        if n * bytes_per_item > len(self.data) - self.pos:
            raise DecodeError(
                f"msgpack data truncated: {n} items declared at offset {self.pos}, "
                f"{len(self.data) - self.pos} bytes present"
            )
