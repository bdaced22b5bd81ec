"""Our stdlib msgpack codec against the real msgpack package, plus hostile input."""

from __future__ import annotations

import math
import struct
import tracemalloc

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.msgpack_codec import MAX_DEPTH, DecodeError, packb, unpackb

INT64 = st.integers(min_value=-(2**63), max_value=2**64 - 1)
SCALARS = (
    st.none()
    | st.booleans()
    | INT64
    | st.floats()
    | st.text(alphabet=st.characters(blacklist_categories=("Cs",)))
    | st.binary()
)
KEYS = st.none() | st.booleans() | INT64 | st.floats(allow_nan=False) | st.text() | st.binary()
VALUES = st.recursive(
    SCALARS,
    lambda children: (
        st.lists(children, max_size=20)
        | st.tuples(children, children)
        | st.dictionaries(KEYS, children, max_size=20)
    ),
    max_leaves=40,
)


def _boundary_ints() -> list[int]:
    near = {k + d for k in (2**b for b in range(65)) for d in (-1, 0)}
    near |= {-n for n in near} | {-n - 1 for n in near} | {-33, -32, 127, 128}
    return sorted(n for n in near if -(2**63) <= n < 2**64)


@settings(max_examples=200)
@given(VALUES)
def test_encoding_is_byte_identical_to_msgpack(value):
    assert packb(value) == msgpack.packb(value)


@settings(max_examples=200)
@given(VALUES)
def test_we_decode_msgpack_and_msgpack_decodes_us(value):
    theirs = msgpack.packb(value)
    # Re-encoding compares values even when they hold NaN, which equals nothing.
    assert msgpack.packb(unpackb(theirs)) == theirs
    assert msgpack.packb(msgpack.unpackb(packb(value), strict_map_key=False)) == theirs


@given(st.floats(width=32))
def test_float32_decodes_like_msgpack(value):
    data = msgpack.packb(value, use_single_float=True)
    assert data[0] == 0xCA
    ours, theirs = unpackb(data), msgpack.unpackb(data)
    assert struct.pack(">d", ours) == struct.pack(">d", theirs)


@pytest.mark.parametrize("n", _boundary_ints())
def test_every_int_width_boundary(n):
    assert packb(n) == msgpack.packb(n)
    assert unpackb(packb(n)) == n


@pytest.mark.parametrize("size", [0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536])
def test_length_boundaries_of_every_sized_type(size):
    for value in ("é" * (size // 2) + "a" * (size % 2), b"x" * size, [0] * size):
        assert packb(value) == msgpack.packb(value)
        assert unpackb(packb(value)) == (list(value) if isinstance(value, list) else value)
    mapping = {i: None for i in range(size)}
    assert packb(mapping) == msgpack.packb(mapping)
    assert unpackb(packb(mapping)) == mapping


def test_bytes_like_inputs_and_outputs():
    assert packb(bytearray(b"ab")) == msgpack.packb(b"ab")
    assert unpackb(bytearray(b"\x92\x01\xc4\x01z")) == [1, b"z"]
    assert unpackb(memoryview(b"\xa1a")) == "a"


@pytest.mark.parametrize("value", [2**64, -(2**63) - 1, {1, 2}, object(), 1j, {"k": [set()]}])
def test_unsupported_values_raise_type_error(value):
    with pytest.raises(TypeError):
        packb(value)


def test_encoding_refuses_what_decoding_would():
    deepest = []
    for _ in range(MAX_DEPTH - 1):
        deepest = [deepest]
    assert unpackb(packb(deepest)) == deepest
    with pytest.raises(ValueError, match="deeper"):
        packb([deepest])
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match="deeper"):
        packb(loop)


@settings(max_examples=100)
@given(VALUES)
def test_every_truncation_raises_decode_error(value):
    data = msgpack.packb(value)
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            unpackb(data[:cut])


@given(VALUES, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_raise_decode_error(value, extra):
    with pytest.raises(DecodeError, match="trailing"):
        unpackb(msgpack.packb(value) + extra)


@pytest.mark.parametrize("code", [0xDB, 0xC6, 0xDD, 0xDF])
def test_huge_declared_length_fails_without_allocating(code):
    hostile = bytes((code,)) + b"\xff\xff\xff\xff" + b"\xc0" * 100_000
    tracemalloc.start()
    try:  # refused on the declared length, before decoding (and keeping) any item
        with pytest.raises(DecodeError, match=r"4294967295 (bytes|items) declared at offset 5"):
            unpackb(hostile)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1024 * 1024


@pytest.mark.parametrize(
    "layer", [b"\x91", b"\x81\xc0", b"\xdc\x00\x01", b"\xdf\x00\x00\x00\x01\x01"]
)
def test_deep_nesting_is_a_decode_error_not_a_crash(layer):
    with pytest.raises(DecodeError, match="deeper"):
        unpackb(layer * 100_000 + b"\xc0")
    assert unpackb(b"\x91" * MAX_DEPTH + b"\xc0") is not None


@pytest.mark.parametrize(
    "ext",
    [msgpack.ExtType(5, b"abc"), msgpack.ExtType(1, b"x" * 300), msgpack.Timestamp(1, 2)]
    + [msgpack.ExtType(7, b"y" * n) for n in (1, 2, 4, 8, 16)],
)
def test_ext_types_are_refused(ext):
    with pytest.raises(DecodeError, match="ext type"):
        unpackb(msgpack.packb(ext))


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"\xc1", "not a msgpack type"),
        (b"\xa2\xff\xfe", "UTF-8"),
        (b"\x81\x91\x01\x02", "not hashable"),
        (b"\x81\x80\x01", "not hashable"),
        (b"", "truncated"),
    ],
)
def test_malformed_input(data, reason):
    with pytest.raises(DecodeError, match=reason):
        unpackb(data)


def test_decode_error_is_a_value_error():
    assert issubclass(DecodeError, ValueError)
    assert math.isnan(unpackb(msgpack.packb(float("nan"))))
