"""Answers held to their sources: the faithfulness guard (`verified`) and the extractive runner (`extractive`).

The guard reads the answer sentence by sentence as it streams. Each sentence's checkable claims (amounts,
times, dates, durations, contacts, names: `knowledge.claims`) must be stated by the retrieved passages,
the question, the GPT's instructions or a tool result of this turn. A sentence that passes is released at
once, so the answer still arrives sentence by sentence; one that does not is dropped, replaced by the
source sentence that best supports it (`quote`), or marked, per `knowledge.unsupported`. With
`knowledge.entailment`, a sentence whose claims pass (or that has none but states something about what the
sources cover) must also be entailed, per an NLI model, by its best-matching source sentences; below the
threshold it is treated as unsupported too. Code blocks pass unchecked. At the end a Grounding event says
what was checked and changed.
"""

from __future__ import annotations

import re
from collections.abc import Generator, Iterable
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.messages import BaseMessage

from ..events import Event, Grounding, TextDelta, ToolResult, Usage
from ..knowledge.claims import Claim, Evidence, claims
from ..knowledge.extract import Embed, SourceSentence, extract, rank, source_sentences, stems
from ..knowledge.retriever import Source
from .base import RunResult, Turn

if TYPE_CHECKING:
    from ..knowledge.entailment import EntailmentCheck

Unsupported = Literal["drop", "quote", "mark"]
MARK = " *(not confirmed by the sources)*"
_FENCE = "```"
# A sentence is complete at . ! ? followed by white space, or at a line end.
_BOUNDARY = re.compile(r"(?<=[.!?。！？])\s+|\n+")
# "1. " opening a list item ends no sentence: the item is checked, and kept, whole.
_LIST_NUMBER = re.compile(r"\s*\d{1,3}\.")
PREMISES = 3  # source sentences an entailment check reads a sentence against: each alone, then together


class Verify:
    """Output guard factory: for each turn that found sources, a VerifyGuard over them."""

    def __init__(
        self,
        *,
        unsupported: Unsupported = "quote",
        also_known: str = "",
        private: bool = False,
        entailment: EntailmentCheck | None = None,
    ):
        self.unsupported: Unsupported = "drop" if private and unsupported == "quote" else unsupported
        self.also_known = also_known  # the instructions: what the operator wrote is not an invention
        self.entailment = entailment

    def warm(self) -> None:
        """Load the entailment model now (and run it once), so the first checked answer does not wait for it."""
        if self.entailment is not None:
            self.entailment.probability(["We open at 7am."], "We open at 7am.")

    def __call__(self, turn: Turn) -> VerifyGuard | PassThrough:
        if turn.retrieval is None or not turn.retrieval.sources or turn.options.structured:
            return PassThrough()  # a structured answer is JSON, not sentences: fixing one would break the document
        return VerifyGuard(
            turn.retrieval.sources, turn.request, unsupported=self.unsupported, also_known=self.also_known,
            entailment=self.entailment,
        )


class PassThrough:
    """Output stage that changes nothing (a turn with no sources has nothing to check against)."""

    halted: str | None = None

    def feed(self, event: Event) -> Iterable[Event]:
        return (event,)

    def finish(self) -> Iterable[Event]:
        return ()


class VerifyGuard:
    """Output stage: releases each sentence once its claims are found in the sources; fixes the rest."""

    halted: str | None = None

    def __init__(
        self,
        sources: Iterable[Source],
        question: str,
        *,
        unsupported: Unsupported,
        also_known: str = "",
        entailment: EntailmentCheck | None = None,
    ):
        self.sources = tuple(sources)
        self.question = question
        self.unsupported = unsupported
        self.entailment = entailment
        self._known = [question, also_known]  # stated outright: true wherever the answer repeats it
        self._evidence = Evidence(self._known)
        self._candidates = source_sentences(self.sources)
        self._asked = stems(question)
        # Each source sentence, with what it is about: a claim counts only where the sentence stating it is
        # about what the answer's sentence (or the question) is about, so "2 working days" for replies to
        # warranty claims does not back "a refund takes 2 working days".
        self._stated = [(stems(f"{c.heading} {c.text}"), Evidence([c.text])) for c in self._candidates]
        self._covered = set().union(*(subject for subject, _ in self._stated))  # what the sources are about
        self._premises: list[SourceSentence] | None = None  # what an entailment check may read: sources, instructions, tools
        self._quoted: set[str] = set()
        self._buffer = ""
        self._released = ""
        self._sentences = 0
        self._claims = 0
        self._changes: list[dict[str, Any]] = []

    def feed(self, event: Event) -> Iterable[Event]:
        """Text comes out a checked sentence at a time; a tool's result becomes evidence; the rest passes."""
        if isinstance(event, ToolResult):
            self._known.append(event.content)
            self._covered |= stems(event.content)
            self._premises = None
            self._evidence = Evidence(self._known)
            return (event,)
        if not isinstance(event, TextDelta):
            return (event,)
        self._buffer += event.text
        out = self._drain(final=False)
        return (TextDelta(out),) if out else ()

    def finish(self) -> Iterable[Event]:
        """The last sentence, a quote of the sources if nothing survived, and the report."""
        out = self._drain(final=True)
        if self._changes and not (self._released + out).strip():
            out += self._replace_all()
        if out:
            yield TextDelta(out)
        yield Grounding("verified", self._sentences, self._claims, tuple(self._changes))

    def _drain(self, *, final: bool) -> str:
        out: list[str] = []
        while self._buffer:
            code = self._buffer.lstrip(" ").startswith(_FENCE)
            piece = self._code_block(final) if code else self._sentence(final)
            if piece is None:
                break
            out.append(piece)
        shown = "".join(out)
        self._released += shown
        return shown

    def _code_block(self, final: bool) -> str | None:
        """A whole fenced block, unchecked (code states no facts about the sources); None until it closes."""
        start = self._buffer.index(_FENCE)
        close = self._buffer.find(_FENCE, start + len(_FENCE))
        if close == -1:
            if not final:
                return None
            piece, self._buffer = self._buffer, ""
            return piece
        end = self._buffer.find("\n", close)
        end = len(self._buffer) if end == -1 else end + 1
        if end == len(self._buffer) and not final and not self._buffer.endswith("\n"):
            return None  # the closing fence's line may still be arriving
        piece, self._buffer = self._buffer[:end], self._buffer[end:]
        return piece

    def _sentence(self, final: bool) -> str | None:
        """The next complete sentence, checked (with the white space after it); None until one is complete."""
        fence = self._buffer.find(_FENCE)
        scope = self._buffer if fence == -1 else self._buffer[:fence]
        boundary = next(
            (
                m
                for m in _BOUNDARY.finditer(scope)
                if (m.end() < len(self._buffer) or final) and not _LIST_NUMBER.fullmatch(scope[: m.start()].rsplit("\n", 1)[-1])
            ),
            None,
        )
        if boundary is None:
            if fence > 0:
                end = fence
            elif final:
                end = len(self._buffer)
            else:
                return None
            sentence, space = self._buffer[:end], ""
        else:
            sentence, space = self._buffer[: boundary.start()], self._buffer[boundary.start() : boundary.end()]
            end = boundary.end()
        self._buffer = self._buffer[end:]
        return self._checked(sentence) + space

    def _checked(self, sentence: str) -> str:
        found = claims(_without_inline_code(sentence, values=True))
        if sentence.strip():
            self._sentences += 1
        self._claims += len(found)
        missing = [c for c in found if not self._supported(c, sentence)]
        entailed = None
        if not missing and self.entailment is not None and self._states_something(sentence, found):
            entailed = self._entailed(sentence)
        threshold = self.entailment.threshold if self.entailment is not None else 0.0
        if not missing and (entailed is None or entailed >= threshold):
            return sentence
        action, replacement = self._fix(sentence, missing)
        change: dict[str, Any] = {
            "sentence": sentence.strip(),
            "unsupported": [c.text for c in missing],
            "action": action,
            "replacement": replacement,
        }
        if entailed is not None:
            change["entailment"] = round(entailed, 3)
        self._changes.append(change)
        return replacement

    def _states_something(self, sentence: str, found: list[Claim]) -> bool:
        """Whether an entailment check applies: a statement (no question) with claims, or on what the sources cover.

        "Hope this helps!" shares no word with the sources and is not held to them; "Refunds are not possible" is.
        """
        plain = _without_inline_code(sentence).strip()
        if not plain or plain.rstrip("*_ )").endswith(("?", "？")):
            return False
        return bool(found) or bool(stems(plain) & self._covered)

    def _entailed(self, sentence: str) -> float:
        """The NLI model's probability that the best-matching source sentences (or a tool's result) entail this one."""
        assert self.entailment is not None
        if self._premises is None:
            known = (Source(0, "", text, {}, 1.0) for text in self._known[1:] if text)  # not the question: it asserts nothing
            self._premises = self._candidates + source_sentences(known)
        ranked = [c for _, c in rank(sentence, self._premises)[:PREMISES]]
        premises = [f"{c.heading}: {c.text}" if c.heading else c.text for c in ranked]
        if len(premises) > 1:
            premises.append(" ".join(premises))
        return self.entailment.probability(premises, _without_inline_code(sentence).strip()) if premises else 0.0

    def _supported(self, claim: Claim, sentence: str) -> bool:
        """Stated by the question, instructions or a tool result, or by a source sentence on the same subject."""
        if self._evidence.supports(claim):
            return True
        about = (stems(sentence) | self._asked) - stems(claim.text)
        return any(subject & about and evidence.supports(claim) for subject, evidence in self._stated)

    def _fix(self, sentence: str, missing: list[Claim]) -> tuple[str, str]:
        if self.unsupported == "mark":
            return "marked", sentence.rstrip() + MARK
        if self.unsupported == "quote":
            quote = self._best_quote(sentence, missing)
            if quote is not None:
                self._quoted.add(quote.text)
                return "quoted", quote.cited()
        return "dropped", ""

    def _best_quote(self, sentence: str, missing: list[Claim]) -> SourceSentence | None:
        """The source sentence that says what this sentence tried to: most words shared, and claims of its kinds."""
        kinds = {c.kind for c in missing}
        usable = [
            c for c in self._candidates
            if c.text not in self._quoted and (not kinds or {k.kind for k in claims(c.text)} & kinds)
        ]
        for about in (self.question, sentence):  # what was asked first: the wrong sentence may be off the subject
            ranked = rank(about, usable)
            if ranked and ranked[0][0] > 0:
                return ranked[0][1]
        return None

    def _replace_all(self) -> str:
        """Nothing the model said held up: the sources' own best sentences for the question instead."""
        chosen = [c for c in extract(self.question, self.sources) if c.text not in self._quoted]
        if not chosen:
            return ""
        text = " ".join(c.cited() for c in chosen)
        self._changes.append({"sentence": "", "unsupported": [], "action": "replaced", "replacement": text})
        return text


class Extract:
    """Runner for `answer_mode: extractive`: the sources' best-matching sentences, with their markers; no model."""

    def __init__(self, embed: Embed | None = None, *, most: int = 2):
        self.embed = embed
        self.most = most

    def __call__(self, turn: Turn, prompt: list[BaseMessage]) -> Generator[Event, None, RunResult]:
        sources = turn.retrieval.sources if turn.retrieval is not None else ()
        chosen = extract(turn.request, sources, embed=self.embed, most=self.most)
        text = " ".join(c.cited() for c in chosen)
        if text:
            yield TextDelta(text)
        yield Grounding("extractive", len(chosen), sum(len(claims(c.text)) for c in chosen))
        return RunResult("stop", Usage(0, 0))


def _without_inline_code(text: str, *, values: bool = False) -> str:
    """The text without its `code` spans; with ``values``, a span that only holds a value (`0.3`, `10 MB`,
    `http://127.0.0.1:7860`) stays as plain text, since a value in backticks is still a claim."""
    if not values:
        return _INLINE_CODE.sub(" ", text)
    return _INLINE_CODE.sub(lambda m: m.group(1) if _VALUE.fullmatch(m.group(1).strip()) else " ", text)


_INLINE_CODE = re.compile(r"`([^`]*)`")
_VALUE = re.compile(r"(?:https?://|www\.)\S+|[£$€¥]?\d[\d.,:/]*\s?(?:%|[A-Za-z]{1,3})?")
