"""Bounded decoding of content codings: every coding round-trips, pieces stay small, bad data is a clear error."""

from __future__ import annotations

import gzip
import os
import sys
import zlib
from collections.abc import Callable

import brotli
import pytest
import zstandard

from gptbuilder.errors import ToolError
from gptbuilder.tools.decompress import STEP, ContentDecodingError, decoded

PAYLOAD = os.urandom(20_000) + b"the same words again " * 30_000


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def two_zstd_frames(data: bytes) -> bytes:
    return zstandard.ZstdCompressor().compress(data[:1000]) + zstandard.ZstdCompressor().compress(data[1000:])


CODINGS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "x-gzip": ("x-gzip", gzip.compress),
    "deflate (zlib)": ("deflate", zlib.compress),
    "deflate (raw, as some servers send it)": ("deflate", raw_deflate),
    "br": ("br", brotli.compress),
    "zstd, two frames": ("zstd", two_zstd_frames),
    "identity": ("identity", lambda data: data),
}


def in_chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


@pytest.mark.parametrize("chunk_size", [7, 4096, 1 << 20])
@pytest.mark.parametrize("name", CODINGS)
def test_every_coding_round_trips_in_pieces_of_at_most_a_step(name: str, chunk_size: int) -> None:
    coding, compress = CODINGS[name]
    pieces = list(decoded(in_chunks(compress(PAYLOAD), chunk_size), coding))
    assert b"".join(pieces) == PAYLOAD
    if coding != "identity":
        assert max(map(len, pieces)) <= 2 * STEP  # brotli may overshoot its output limit by one block


def test_stacked_codings_are_undone_last_first() -> None:
    body = brotli.compress(gzip.compress(PAYLOAD))
    assert b"".join(decoded(in_chunks(body, 4096), "gzip, br")) == PAYLOAD
    assert b"".join(decoded([PAYLOAD], "")) == PAYLOAD


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip"])
def test_a_bomb_is_decoded_lazily(coding: str) -> None:
    zeros = bytes(16 * 1024 * 1024)
    body = {"br": brotli.compress, "zstd": zstandard.ZstdCompressor().compress, "gzip": gzip.compress}[coding](zeros)
    pieces = decoded(in_chunks(body, 65536), coding)
    first = next(pieces)
    assert 0 < len(first) <= 2 * STEP
    assert sum(map(len, pieces)) + len(first) == len(zeros)


def test_an_unknown_coding_is_refused_before_anything_is_read() -> None:
    def never() -> list[bytes]:
        raise AssertionError("read")

    with pytest.raises(ContentDecodingError, match="'compress' content coding, which gptbuilder does not decode"):
        decoded(iter(never, None), "gzip, compress")
    assert issubclass(ContentDecodingError, ToolError)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br", "zstd"])
def test_corrupt_data_is_a_clear_error(coding: str) -> None:
    with pytest.raises(ContentDecodingError, match=f"the {coding} body is corrupt"):
        list(decoded([b"this is not compressed data at all" * 10], coding))


@pytest.mark.parametrize("module, coding, says", [("brotli", "br", "install the brotli package"),
                                                  ("zstandard", "zstd", "install the zstandard package")])
def test_a_missing_decoder_package_refuses_the_body(monkeypatch, module: str, coding: str, says: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ContentDecodingError, match=says):
        list(decoded([b"\x00" * 100], coding))


def test_a_brotli_without_an_output_limit_is_not_used(monkeypatch) -> None:
    class OldDecompressor:  # brotli < 1.2: process(data) only
        def is_finished(self) -> bool:
            return False

        def process(self, data: bytes) -> bytes:
            raise AssertionError("an unbounded decode was attempted")

    monkeypatch.setattr(brotli, "Decompressor", OldDecompressor)
    with pytest.raises(ContentDecodingError, match=r"brotli 1\.2 or later"):
        list(decoded([b"\x00" * 100], "br"))
