"""Bounded decoding of HTTP content codings: a compressed body never expands by more than STEP bytes at a time.

httpx hands a whole network chunk to its decoder at once, so a 1.6 KB brotli body becomes gigabytes before any
size cap sees it. Here every decoder is fed incrementally and asked for at most STEP bytes per step, so a
reader that stops at its cap has held at most cap + STEP decoded bytes. gzip and deflate use the standard
library; br needs the `brotli` package (1.2 or later) and zstd the `zstandard` package, and a body in a coding
that cannot be decoded this way is refused rather than passed on undecoded or decoded whole.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import IO, cast

from ..errors import ToolError

STEP = 64 * 1024
# RFC 9659: an HTTP zstd decoder limits the window to 8 MB (a frame may otherwise ask for a 2 GB buffer)
ZSTD_MAX_WINDOW = 8 * 1024 * 1024


class ContentDecodingError(ToolError):
    """A body's content coding is unsupported, or its data is corrupt."""


def decoded(raw: Iterable[bytes], content_encoding: str) -> Iterator[bytes]:
    """`raw` with the codings named by a Content-Encoding header undone (last applied first), STEP bytes at most per piece.

    An unsupported coding raises ContentDecodingError here, before anything is read.
    """
    stream: Iterator[bytes] = iter(raw)
    for coding in reversed([c.strip().lower() for c in content_encoding.split(",") if c.strip()]):
        if coding == "identity":
            continue
        decoder = _DECODERS.get(coding)
        if decoder is None:
            raise ContentDecodingError(
                f"the body is in the {coding!r} content coding, which gptbuilder does not decode "
                f"(it reads {', '.join(sorted(_DECODERS))} and asks servers for none)"
            )
        stream = decoder(stream)
    return stream


def _zlib(raw: Iterator[bytes], wbits: int, coding: str) -> Iterator[bytes]:
    decompressor = zlib.decompressobj(wbits)
    produced = False
    try:
        for chunk in raw:
            data = chunk
            while data and not decompressor.eof:
                try:
                    piece = decompressor.decompress(data, STEP)
                except zlib.error:
                    if coding != "deflate" or produced or wbits < 0:
                        raise
                    # "deflate" is zlib-wrapped by the standard, but some servers send raw deflate
                    wbits = -zlib.MAX_WBITS
                    decompressor = zlib.decompressobj(wbits)
                    continue
                produced = True
                if piece:
                    yield piece
                data = decompressor.unconsumed_tail
        while not decompressor.eof:  # output still held inside zlib after the last input
            piece = decompressor.decompress(b"", STEP)
            if not piece:
                break
            yield piece
    except zlib.error as exc:
        raise ContentDecodingError(f"the {coding} body is corrupt: {exc}") from None


def _gzip(raw: Iterator[bytes]) -> Iterator[bytes]:
    return _zlib(raw, 16 + zlib.MAX_WBITS, "gzip")


def _deflate(raw: Iterator[bytes]) -> Iterator[bytes]:
    return _zlib(raw, zlib.MAX_WBITS, "deflate")


def _brotli(raw: Iterator[bytes]) -> Iterator[bytes]:
    try:
        import brotli
    except ImportError:
        raise ContentDecodingError("the body is brotli-compressed (br); install the brotli package to read it") from None
    decompressor = brotli.Decompressor()
    try:
        for chunk in raw:
            data = chunk
            while not decompressor.is_finished():
                try:
                    piece = decompressor.process(data, output_buffer_limit=STEP)
                except TypeError:  # brotli < 1.2 can only decode a chunk whole, however large it grows
                    raise ContentDecodingError(
                        "the body is brotli-compressed (br); brotli 1.2 or later is needed to decode it safely"
                    ) from None
                if not piece:  # it needs more input
                    break
                yield piece
                data = b""  # until the output held inside is drained, brotli takes no new input
    except brotli.error as exc:
        raise ContentDecodingError(f"the br body is corrupt: {exc}") from None


class _ChunkReader:
    """A file-like `read(n)` over an iterator of chunks, for zstandard's pull-based decoder."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._pending = b""

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes; b"" at the end."""
        while not self._pending:
            chunk = next(self._chunks, None)
            if chunk is None:
                return b""
            self._pending = chunk
        size = len(self._pending) if size is None or size < 0 else size
        piece, self._pending = self._pending[:size], self._pending[size:]
        return piece


def _zstd(raw: Iterator[bytes]) -> Iterator[bytes]:
    try:
        import zstandard
    except ImportError:
        raise ContentDecodingError("the body is zstd-compressed; install the zstandard package to read it") from None
    decompressor = zstandard.ZstdDecompressor(max_window_size=ZSTD_MAX_WINDOW)
    source = cast("IO[bytes]", _ChunkReader(raw))  # zstandard only calls read()
    reader = decompressor.stream_reader(source, read_size=STEP, read_across_frames=True)
    try:
        while piece := reader.read(STEP):
            yield piece
    except zstandard.ZstdError as exc:
        raise ContentDecodingError(f"the zstd body is corrupt: {exc}") from None


_DECODERS: dict[str, Callable[[Iterator[bytes]], Iterator[bytes]]] = {
    "gzip": _gzip,
    "x-gzip": _gzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}
