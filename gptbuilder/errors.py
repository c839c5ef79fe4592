"""One error hierarchy for gptbuilder; each edge (CLI, UI, HTTP) translates it once."""

from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable, Sequence
from dataclasses import dataclass


class GPTBuilderError(Exception):
    """Base class of every error gptbuilder raises on purpose."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a spec file: where it is and what is wrong."""

    file: str
    field: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}: " if self.field else f"{self.file}: "
        suffix = f" (line {self.line})" if self.line else ""
        return f"{where}{self.message}{suffix}"


class SpecError(GPTBuilderError):
    """A spec file is invalid; carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[SpecProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class UnknownGPTError(GPTBuilderError):
    """No valid GPT has the requested id."""

    def __init__(self, gpt_id: str, known: Iterable[str]):
        self.gpt_id = gpt_id
        super().__init__(f"unknown GPT {gpt_id!r}{did_you_mean(gpt_id, known)}")


class ModelError(GPTBuilderError):
    """A model could not be loaded or failed while generating."""


class InputError(GPTBuilderError):
    """A request (message, options) is unusable as given; the caller must change it."""


class DatabaseError(GPTBuilderError):
    """The database could not be reached or refused an operation."""


class StorageError(GPTBuilderError):
    """A file or index could not be written: the disk is full, read-only or refuses; what was there is intact."""


_STORAGE_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EROFS: "the disk is read-only",
    errno.EACCES: "permission denied",
}


def storage_error(exc: BaseException, what: str, *, kept: str = "nothing was changed") -> StorageError | None:
    """``exc`` as a StorageError about writing ``what`` when the disk ran out or refused, else None.

    SQLite (and Chroma over it) say "database or disk is full" rather than raising an OSError.
    """
    if isinstance(exc, OSError) and exc.errno in _STORAGE_REASONS:
        reason = _STORAGE_REASONS[exc.errno]
    elif "disk is full" in str(exc) or "No space left on device" in str(exc):
        reason = "the disk is full"
    else:
        return None
    return StorageError(f"could not write {what}: {reason}; {kept}")


class ToolError(GPTBuilderError):
    """A tool or action failed; reported back to the model, not to the user."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """Return "; did you mean 'x'?" for the closest choice, or "" when nothing is close."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
