"""The usage ledger's write-ahead journal: each request's usage reaches a file before the ledger buffers it.

The ledger writes its sums to the database once a second, so a process killed in between (`kill -9`, the
OOM killer, a lost container) took that second's requests with it. Each process now appends every count to
a journal of its own (one `write` of one line: the operating system keeps it once the call returns, whatever
then happens to the process) and records in the database, in the transaction that adds the sums, how far
into its journal those sums reach. A journal whose process is gone (its lock is free) is replayed from that
point by the next process to start, so every request is counted once.

Journals live on one host's disk: replicas on several hosts each replay their own.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from ..events import Usage

Key = tuple[date, str, str]  # day, key id, GPT id
Sums = dict[Key, list[int]]  # requests, prompt tokens, completion tokens


class UsageJournal:
    """This process's journal: an append-only file it holds locked while it lives."""

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        self.offset = 0  # bytes written: the position the ledger's sums reach once flushed

    @property
    def name(self) -> str:
        """The journal's name in the database's record of how far it was applied."""
        return self.path.name

    def append(self, key: Key, usage: Usage) -> int:
        """Write one request's count; the offset just after it."""
        day, key_id, gpt_id = key
        line = json.dumps([day.isoformat(), key_id, gpt_id, usage.prompt_tokens, usage.completion_tokens]) + "\n"
        data = line.encode()
        written = os.write(self._fd, data)
        if written != len(data):  # a full disk: say so rather than leave half a line
            raise OSError(f"usage journal {self.path}: wrote {written} of {len(data)} bytes")
        self.offset += written
        return self.offset

    def close(self, *, delete: bool) -> None:
        """Release the lock; with ``delete``, remove the file (everything in it is in the database)."""
        if delete:
            with suppress(FileNotFoundError):
                self.path.unlink()
        os.close(self._fd)


@dataclass
class Orphan:
    """A journal whose process is gone, locked by this one while it is replayed."""

    path: Path
    fd: int

    @property
    def name(self) -> str:
        """The journal's name in the database's record of how far it was applied."""
        return self.path.name

    def read(self, start: int) -> tuple[Sums, int]:
        """The sums of the whole lines from byte ``start`` on, and the offset after the last whole line."""
        with open(self.path, "rb") as file:
            file.seek(start)
            data = file.read()
        end = data.rfind(b"\n") + 1  # a line cut by the crash was never counted as sent
        sums: Sums = {}
        for line in data[:end].splitlines():
            try:
                day, key_id, gpt_id, prompt, completion = json.loads(line)
                key = (date.fromisoformat(day), str(key_id), str(gpt_id))
            except (ValueError, TypeError):
                continue  # not ours to count (a damaged line); the rest still is
            entry = sums.setdefault(key, [0, 0, 0])
            entry[0] += 1
            entry[1] += int(prompt)
            entry[2] += int(completion)
        return sums, start + end

    def remove(self) -> None:
        """Delete the replayed journal and release it."""
        with suppress(FileNotFoundError):
            self.path.unlink()
        os.close(self.fd)

    def release(self) -> None:
        """Leave the journal for a later start (replaying failed)."""
        os.close(self.fd)


def orphans(folder: Path) -> Iterator[Orphan]:
    """The journals in ``folder`` that no living process holds, each locked for the caller."""
    if not folder.is_dir():
        return
    for path in sorted(folder.glob("*.jsonl")):
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue  # another process replayed and removed it meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)  # its process is alive
            continue
        if os.fstat(fd).st_nlink == 0:  # replayed and removed by another process while this one waited
            os.close(fd)
            continue
        yield Orphan(path, fd)
