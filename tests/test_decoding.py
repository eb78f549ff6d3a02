"""Bounded decoding of response bodies: every encoding, stacked, fed in any split, at the budget."""

from __future__ import annotations

import gzip
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicefn.decoding import BodyTooLarge, BoundedDecoder, DecodeError, UnsupportedEncoding


def encode(data: bytes, encodings: list[str]) -> bytes:
    for name in encodings:  # applied in header order
        if name == "gzip":
            data = gzip.compress(data)
        elif name == "deflate":
            data = zlib.compress(data)
        elif name == "raw-deflate":
            c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
            data = c.compress(data) + c.flush()
    return data


def decode(body: bytes, header: str, limit: int, split: int = 4096) -> bytes:
    decoder = BoundedDecoder(header, limit)
    out = [decoder.feed(body[i : i + split]) for i in range(0, len(body), split)]
    out.append(decoder.finish())
    return b"".join(out)


def bomb(layers: int, size: int) -> bytes:
    """``size`` zero bytes, gzip-compressed ``layers`` times, built without holding them."""
    c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1 << 20)
    data = b"".join(c.compress(block) for _ in range(size >> 20)) + c.flush()
    for _ in range(layers - 1):
        data = gzip.compress(data, 9)
    return data


@pytest.mark.parametrize(
    ("header", "encodings"),
    [
        (None, []),
        ("identity", []),
        ("gzip", ["gzip"]),
        ("x-gzip", ["gzip"]),
        ("deflate", ["deflate"]),
        ("deflate", ["raw-deflate"]),
        ("gzip, gzip", ["gzip", "gzip"]),
        ("deflate, GZIP", ["deflate", "gzip"]),
    ],
)
def test_every_supported_encoding_round_trips(header, encodings):
    data = b'{"order": "ORD-1", "status": "shipped"}' * 500
    assert decode(encode(data, encodings), header, limit=len(data)) == data


@given(
    data=st.binary(max_size=5000),
    encodings=st.lists(st.sampled_from(["gzip", "deflate"]), max_size=3),
    split=st.integers(1, 700),
    slack=st.integers(-50, 50),
)
@settings(max_examples=150, deadline=None)
def test_any_split_decodes_the_same_or_stops_at_the_limit(data, encodings, split, slack):
    limit = max(0, len(data) + slack)
    body = encode(data, encodings)
    header = ", ".join(encodings)
    if len(data) <= limit and len(body) <= limit:
        assert decode(body, header, limit, split) == data
    else:
        with pytest.raises(BodyTooLarge):
            decode(body, header, limit, split)


@pytest.mark.parametrize("layers", [1, 2, 3])
def test_a_bomb_stops_at_the_budget_whatever_the_stacking(layers):
    body = bomb(layers, 64 << 20)  # 64 MiB of zeros in a few KB
    assert len(body) < 200_000
    decoder = BoundedDecoder(", ".join(["gzip"] * layers), 1 << 20)
    produced: list[int] = []

    def feed_all() -> None:
        for i in range(0, len(body), 1024):
            produced.append(len(decoder.feed(body[i : i + 1024])))
        decoder.finish()

    with pytest.raises(BodyTooLarge) as caught:
        feed_all()
    assert caught.value.limit == 1 << 20
    assert sum(produced) <= 1 << 20  # nothing past the budget was ever handed out


def test_raw_bytes_count_against_the_budget_too():
    # Empty stored deflate blocks decode to nothing: an endless stream of them must still stop.
    c = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    empty_blocks = c.compress(b"") + c.flush(zlib.Z_FULL_FLUSH) * 20_000
    decoder = BoundedDecoder("deflate", 50_000)
    with pytest.raises(BodyTooLarge):
        decoder.feed(empty_blocks)


@pytest.mark.parametrize(
    ("header", "match"),
    [("br", "'br'"), ("zstd", "'zstd'"), ("gzip, compress", "'compress'")],
)
def test_an_encoding_the_engine_did_not_ask_for_is_refused(header, match):
    with pytest.raises(UnsupportedEncoding, match=match):
        BoundedDecoder(header, 1000)


def test_more_than_three_stacked_encodings_are_refused():
    with pytest.raises(UnsupportedEncoding, match="stacks 4"):
        BoundedDecoder("gzip, gzip, gzip, gzip", 1000)


def test_corrupt_data_is_a_decode_error():
    with pytest.raises(DecodeError, match="not valid compressed data"):
        decode(b"\x1f\x8b this is not gzip" * 10, "gzip", 10_000)
