"""A GPT's moderation as it runs: the checks its config turns on, what blocks, what is masked, and the refusal."""

from __future__ import annotations

from dataclasses import dataclass

from ..spec import DEFAULT_REFUSAL, ModerationConfig
from .base import Action, Check, Verdict
from .blocklist import Blocklist
from .patterns import Patterns
from .pii import PII, replace
from .remote import RemoteCheck


@dataclass(frozen=True)
class Moderation:
    """The checks of one `moderation:` config: those that block a turn, the PII that is masked, the refusal."""

    blocking: tuple[Check, ...]
    masking: PII | None = None  # pii: mask
    refusal: str = DEFAULT_REFUSAL
    input: bool = True
    output: bool = True
    remote: RemoteCheck | None = None  # an endpoint that judges what the local checks let through
    remote_every: int = 500  # characters of a streamed answer per remote call

    @classmethod
    def from_config(cls, config: ModerationConfig, *, allow_private: bool = False) -> Moderation:
        """The checks a config turns on, each compiled once (``allow_private``: the GPT's allow_private_network)."""
        blocking: list[Check] = []
        if config.blocklist:
            blocking.append(Blocklist(config.blocklist))
        if config.patterns:
            blocking.append(Patterns(config.patterns))
        if config.pii == "block":
            blocking.append(PII())
        masking = PII() if config.pii == "mask" else None
        remote = RemoteCheck(config.remote, allow_private=allow_private) if config.remote else None
        every = config.remote.every if config.remote else 500
        return cls(tuple(blocking), masking, config.refusal, config.input, config.output, remote, every)

    @property
    def active(self) -> bool:
        """Whether anything is checked at all."""
        return bool(self.blocking or self.masking or self.remote) and (self.input or self.output)

    @property
    def holdback(self) -> int:
        """Characters a streamed answer is held back so that every finding is seen whole (and what follows it)."""
        checks: list[Check] = [*self.blocking, *([self.masking] if self.masking else [])]
        return max((check.longest for check in checks), default=0) + 1

    def blocked(self, text: str) -> Verdict | None:
        """The first finding of a blocking check, or None."""
        return min((f for f in (check.check(text) for check in self.blocking) if f), key=lambda f: f.start, default=None)

    def blocking_findings(self, text: str) -> list[Verdict]:
        """Every finding of the blocking checks, in text order."""
        return sorted((f for check in self.blocking for f in check.findings(text)), key=lambda f: (f.start, f.end))

    def masked(self, text: str) -> tuple[str, list[Verdict]]:
        """The text with its PII masked (when `pii: mask`), and what was masked."""
        if self.masking is None:
            return text, []
        found = self.masking.findings(text)
        return replace(text, found), found

    def scan(self, text: str) -> list[tuple[Verdict, Action]]:
        """Everything any check finds, with what it would do (blocked or masked), in text order (for /v1/moderations)."""
        found: list[tuple[Verdict, Action]] = [(f, "blocked") for f in self.blocking_findings(text)]
        found += [(f, "masked") for f in (self.masking.findings(text) if self.masking else [])]
        return sorted(found, key=lambda pair: (pair[0].start, pair[0].end))
