"""Paths written in specs are relative to the spec's folder and may never leave it."""

from __future__ import annotations

import glob
import re
from pathlib import Path, PurePosixPath

from .errors import GPTBuilderError

_GLOB = re.compile(r"[*?\[]")


class PathEscapeError(GPTBuilderError, ValueError):
    """A path in a spec is absolute or leads outside the spec's folder."""


def safe_join(root: Path, relative: str) -> Path:
    """Join a spec-relative path (or glob) to ``root``, refusing absolute paths, '..' and symlink escapes."""
    if not relative or "\x00" in relative:
        raise PathEscapeError("path is empty or contains a NUL byte")
    posix = PurePosixPath(relative.replace("\\", "/"))
    if posix.is_absolute() or re.match(r"^[A-Za-z]:", relative):
        raise PathEscapeError(f"{relative!r} must be relative to the spec's folder, not absolute")
    if ".." in posix.parts:
        raise PathEscapeError(f"{relative!r} may not leave the spec's folder ('..')")
    target = root.joinpath(*posix.parts)
    fixed = []
    for part in posix.parts:
        if _GLOB.search(part):
            break
        fixed.append(part)
    if fixed and not root.joinpath(*fixed).resolve().is_relative_to(root.resolve()):
        raise PathEscapeError(f"{relative!r} leads outside the spec's folder through a symlink")
    return target


def is_within(root: Path, candidate: Path) -> bool:
    """Whether ``candidate`` (after resolving symlinks) lies inside ``root``."""
    return candidate.resolve().is_relative_to(root.resolve())


def matching_files(pattern: Path) -> list[Path]:
    """The files a spec glob (already joined with `safe_join`) matches, sorted; `**` spans folders."""
    return sorted(path for path in map(Path, glob.glob(str(pattern), recursive=True)) if path.is_file())
