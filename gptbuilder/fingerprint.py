"""Noticing file changes, in one place: stat stamps, content hashes, and a GPT's spec version.

The store compares `stamps` to know when to re-read a spec; `gptbuilder test` keys its results by
`spec_version`; the builder compares `content_hash` to notice a spec edited elsewhere. (The knowledge
index keeps its own per-file manifest: it must survive restarts, so it lives in its index folder.)
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from pathlib import Path

from .loader import LoadedSpec, matching_files
from .paths import PathEscapeError, safe_join
from .spec import ActionTool

Stamp = tuple[str, int, int]
MISSING = (-1, -1)


def stamps(paths: Iterable[Path]) -> tuple[Stamp, ...]:
    """(path, mtime_ns, size) of each file, (path, -1, -1) when it is missing or unreadable; one stat each."""
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), *MISSING))
    return tuple(out)


def digest(path: Path) -> bytes:
    """A file's SHA-256, read again only when its modification time or size changed; OSError when unreadable."""
    _, mtime_ns, size = stamps((path,))[0]
    if (mtime_ns, size) == MISSING:
        raise FileNotFoundError(f"cannot read {path}")
    return _digest(str(path), mtime_ns, size)


@functools.lru_cache(maxsize=4096)
def _digest(path: str, mtime_ns: int, size: int) -> bytes:
    # The stamp is part of the cache key: the store asks for every GPT's version on each Discover render.
    return hashlib.sha256(Path(path).read_bytes()).digest()


def content_hash(path: str | Path) -> str | None:
    """The SHA-256 of a file's bytes as they are now (None when it does not exist).

    Read every time, not cached by stamp: a rewrite of the same size within the file system's timestamp
    resolution must still count as an edit made elsewhere.
    """
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def spec_version(loaded: LoadedSpec) -> str:
    """A short hash of everything a GPT's answers depend on: spec, instructions, knowledge and action files."""
    version = hashlib.sha256()
    for path in sorted(set(_version_files(loaded))):
        try:
            content = digest(path)
        except OSError:
            content = hashlib.sha256(b"<unreadable>").digest()
        relative = path.relative_to(loaded.folder).as_posix() if path.is_relative_to(loaded.folder) else path.name
        version.update(relative.encode() + b"\0" + content)
    return version.hexdigest()[:16]


def _version_files(loaded: LoadedSpec) -> Iterable[Path]:
    yield from loaded.sources
    patterns = list(loaded.spec.knowledge.files) if loaded.spec.knowledge else []
    patterns += [tool.action.openapi for tool in loaded.spec.tools if isinstance(tool, ActionTool)]
    for pattern in patterns:
        try:
            joined = safe_join(loaded.folder, pattern)
        except PathEscapeError:
            continue
        yield from matching_files(joined)
