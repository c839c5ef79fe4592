"""One chat turn in the store, UI-free: stream a GPT's answer and keep the conversation in History."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..access import AccessError
from ..errors import GPTBuilderError, InputError
from ..events import ConfirmationRequest, Done, Event, Step, Transcript
from ..history import DatabasePendingCalls, History, Message, PartialAnswer, as_sent
from ..store import Store


@dataclass
class Answer:
    """An answer as it streams in, as the store shows and keeps it: its transcript plus how it ended."""

    prior_pending: set[str] = field(default_factory=set)  # calls the previous answer left for a decision
    transcript: Transcript = field(default_factory=Transcript)
    error: str | None = None
    stopped: bool = False

    def feed(self, event: Event) -> None:
        """Take one agent event."""
        self.transcript.add(event)

    @property
    def text(self) -> str:
        """The answer's text so far."""
        return self.transcript.text

    def _resolves(self, step: Step) -> bool:
        """A call or result that settles the previous answer's pending calls (shown with the user's decision)."""
        return not isinstance(step, ConfirmationRequest) and step.id in self.prior_pending

    @property
    def steps(self) -> list[dict[str, Any]]:
        """This answer's own tool steps."""
        return [step.to_dict() for step in self.transcript.steps if not self._resolves(step)]

    @property
    def resolved(self) -> list[dict[str, Any]]:
        """The decisions on the previous answer's calls: their calls and results."""
        return [step.to_dict() for step in self.transcript.steps if self._resolves(step)]

    @property
    def sources(self) -> list[dict[str, Any]]:
        """The knowledge passages given to the model."""
        return [citation.to_dict() for citation in self.transcript.citations]

    @property
    def asks(self) -> list[dict[str, Any]]:
        """The calls waiting for the user's approval."""
        return [ask.to_dict() for ask in self.transcript.confirmations]

    def pending_calls(self) -> list[dict[str, Any]]:
        """The calls this answer left waiting for a decision (as LangChain tool calls), if it paused."""
        if not self.transcript.confirmations:
            return []
        return [
            {"name": call.name, "args": call.arguments, "id": call.id, "type": "tool_call"}
            for call in self.transcript.pending_calls()
            if not self._resolves(call)
        ]

    def extra(self) -> dict[str, Any]:
        """Everything stored beside the text (every key, so a regenerated answer replaces them all)."""
        return {
            "steps": self.steps,
            "sources": self.sources,
            "pending_calls": self.pending_calls(),
            "asks": self.asks,
            "finish_reason": self.transcript.finish_reason,
            "error": self.error,
            "stopped": self.stopped,
            "curated": self.transcript.curated.to_dict() if self.transcript.curated else None,
            "grounding": self.transcript.grounding.to_dict() if self.transcript.grounding else None,
            "streaming": False,
        }


def model_messages(stored: list[Message]) -> list[Any]:
    """The stored conversation as LangChain messages: paused tool calls and their results included."""
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

    out: list[Any] = []
    for message in stored:
        extra = message.extra or {}
        if message.role == "user":
            for result in extra.get("tool_results") or []:
                if result.get("type") == "tool_result":
                    status = "error" if result.get("error") else "success"
                    out.append(ToolMessage(result["content"], tool_call_id=result["id"], name=result["name"], status=status))
            out.append(HumanMessage(message.content))
        elif message.role == "assistant":
            calls = extra.get("pending_calls") or []
            if message.content or calls:
                out.append(AIMessage(message.content, tool_calls=calls))
    return out


def pending_asks(stored: list[Message]) -> list[dict[str, Any]]:
    """The approval requests of the last answer, when the conversation waits on them."""
    if stored and stored[-1].role == "assistant":
        return list((stored[-1].extra or {}).get("asks") or [])
    return []


@dataclass
class Snapshot:
    """The conversation as it should be shown now."""

    conversation_id: str
    messages: list[Message]
    asks: list[dict[str, Any]]
    done: bool = False


class ChatTurns:
    """Runs chat turns for the store: the user's message, regenerate, approve/deny, all persisted."""

    def __init__(self, store: Store, history: History):
        self.store = store
        self.history = history
        self.pending = DatabasePendingCalls(history.db)  # paused tool calls survive a restart of the store

    def send(
        self,
        gpt_id: str,
        conversation_id: str | None,
        text: str,
        *,
        owner: str = "",
        approvals: Mapping[str, bool] | None = None,
    ) -> Iterator[Snapshot]:
        """Add the user's message and stream the answer; GPTBuilderError before anything is stored."""
        if not text.strip():
            raise InputError("the message is empty; type a question or request")
        agent = self.store.agent(gpt_id)  # an invalid or unknown GPT fails here, before anything is stored
        conversation = self._conversation(gpt_id, conversation_id, owner)
        extra = {"approvals": dict(approvals)} if approvals else {}
        user = self.history.add(conversation, "user", text, **extra)
        stored = as_sent(self.history.messages(conversation), user, text)  # stored masked, answered as written
        answer = self.history.add(conversation, "assistant", "", streaming=True)
        yield from self._stream(agent, conversation, stored, user, answer, approvals)

    def regenerate(self, gpt_id: str, conversation_id: str, *, owner: str = "") -> Iterator[Snapshot]:
        """Answer the last user message again, replacing the answer after it."""
        agent = self.store.agent(gpt_id)
        self.check_own(conversation_id, owner)
        stored = self.history.messages(conversation_id)
        last_user = max((i for i, m in enumerate(stored) if m.role == "user"), default=None)
        if last_user is None:
            raise InputError("nothing to regenerate yet: send a message first")
        after = [m for m in stored[last_user + 1 :] if m.role == "assistant"]
        answer = after[0] if after else self.history.add(conversation_id, "assistant", "")
        yield from self._stream(agent, conversation_id, stored[: last_user + 1], stored[last_user], answer, None)

    def check_own(self, conversation_id: str, owner: str) -> None:
        """AccessError unless ``owner`` had this conversation (only they may add to, rename or delete it)."""
        if self.history.get(conversation_id).owner != owner:
            raise AccessError("this conversation belongs to someone else; start a new chat")

    def _conversation(self, gpt_id: str, conversation_id: str | None, owner: str) -> str:
        if conversation_id:
            try:
                found = self.history.get(conversation_id)
            except InputError:
                found = None  # deleted meanwhile: start a new one
            if found is not None and found.gpt_id == gpt_id:
                self.check_own(conversation_id, owner)
                return conversation_id
        return self.history.start(gpt_id, owner=owner, channel="store").id

    def _stream(
        self,
        agent: Any,
        conversation: str,
        stored: list[Message],
        user: Message,
        answer_row: Message,
        approvals: Mapping[str, bool] | None,
    ) -> Iterator[Snapshot]:
        previous = stored[:-1]
        prior = {c["id"] for m in previous[-1:] if m.role == "assistant" for c in (m.extra or {}).get("pending_calls") or []}
        answer = Answer(prior_pending=prior)

        def snapshot(done: bool = False) -> Snapshot:
            shown_user = Message(user.id, user.role, user.content, {**(user.extra or {}), "tool_results": answer.resolved})
            current = Message(answer_row.id, "assistant", answer.text, answer.extra())
            return Snapshot(conversation, [*previous, shown_user, current], answer.asks if done else [], done)

        finished = False
        partial = PartialAnswer(self.history, answer_row.id)
        try:
            turn = agent.stream(model_messages(stored), approvals=approvals, owner=f"conversation:{conversation}", pending=self.pending)
            for event in turn:
                answer.feed(event)
                if not isinstance(event, Done):
                    partial.grew(answer.text)
                    yield snapshot()
            finished = True
        except GPTBuilderError as exc:
            answer.error = str(exc)  # the partial answer stays; the note says why it stopped
            finished = True
        finally:
            answer.stopped = not finished
            self.history.update(answer_row.id, answer.text, **answer.extra())
            if answer.resolved:
                self.history.update(user.id, user.content, tool_results=answer.resolved)
        yield snapshot(done=True)
