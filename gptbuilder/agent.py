"""Compile a loaded spec into an agent whose turn is an ordered list of stages streaming typed events."""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, SystemMessage

from .errors import InputError, ModelError
from .events import Done, Event, Usage
from .models.base import DEFAULT_MAX_TOKENS, context_window_of, count_text_tokens, count_tokens
from .models.structured import answer_schema
from .pending import MemoryPendingCalls, PendingCalls
from .turn import Options, OutputStage, Runner, RunResult, Stage, Turn, normal_finish_reason, through
from .turn.approvals import ResolveApprovals, needing_confirmation
from .turn.grounding import Extract
from .turn.guards import GuardInput, InputGuard
from .turn.knowledge import AnswerCurated, Cite, Retrieve, RoutedTools, Router
from .turn.prompt import MAX_MESSAGE_CHARS, MessagesLike, fit, to_messages
from .turn.runners import Answer, ClientTools, ToolLoop

if TYPE_CHECKING:
    from langchain_core.tools import BaseTool

    from .curated import CuratedAnswers
    from .knowledge.retriever import KnowledgeBase, Retrieval
    from .loader import LoadedSpec
    from .moderation import Moderation

__all__ = ["MAX_MESSAGE_CHARS", "Agent", "Reply", "compile_agent"]

TOOL_PROTOCOL_TOKENS = 300  # a local model's tool protocol adds instructions and worked-example turns


@dataclass(frozen=True)
class Reply:
    """A complete answer: what `Agent.chat` returns."""

    text: str
    finish_reason: str
    usage: Usage


class Agent:
    """One GPT ready to chat: its spec, its model, and the stages a turn goes through."""

    def __init__(
        self,
        loaded: LoadedSpec,
        model: BaseChatModel,
        *,
        knowledge: KnowledgeBase | None = None,
        tools: Sequence[BaseTool] = (),
        context_window: int | None = None,
        curated: CuratedAnswers | None = None,
        input_guards: Sequence[InputGuard] = (),
        output_guards: Sequence[Callable[[Turn], OutputStage]] = (),
        router: Router | None = None,
        moderation: Moderation | None = None,
    ):
        self.loaded = loaded
        self.model = model
        self.knowledge = knowledge
        self.tools = list(tools)
        self.curated = curated
        self.output_guards = list(output_guards)
        self.moderation = moderation
        self.router = router  # None: the packaged default router, when one is needed
        self.needs_confirmation = needing_confirmation(self.tools)
        self.pending: PendingCalls = MemoryPendingCalls()  # where paused calls wait when the caller keeps none
        self._context_window = context_window
        self._tool_tokens: int | None = None
        # The order is the policy: a decision already taken (an approval) first, then refusals, then the
        # cheapest answers (curated, no model) before retrieval; see ARCHITECTURE.md "The turn".
        self.stages: list[Stage] = [ResolveApprovals(self.tools), GuardInput(input_guards)]
        if moderation is not None:
            from .turn.moderation import ModerateInput, ModerateOutput

            if moderation.input:
                self.stages.append(ModerateInput(moderation))
            if moderation.output:  # the last guard: it checks the text exactly as the user would see it
                self.output_guards.append(ModerateOutput(moderation))
        if curated is not None:
            self.stages.append(AnswerCurated(curated))
        if knowledge is not None:
            self.stages.append(Retrieve(knowledge, tool_applies=self._routed_tools(router)))

    @property
    def id(self) -> str:
        """The GPT's id (its file stem)."""
        return self.loaded.id

    @property
    def context_window(self) -> int:
        """Tokens the model sees; asked of the model only when needed, since that may load its weights."""
        if self._context_window is None:
            self._context_window = context_window_of(self.model, self.loaded.spec.model)
        return self._context_window

    def system_prompt(self, retrieval: Retrieval | None = None) -> str:
        """The system prompt: the GPT's instructions, then the knowledge sources found for the question."""
        if retrieval is None:
            return self.loaded.instructions
        from .knowledge.retriever import context_block

        return f"{self.loaded.instructions}\n\n{context_block(retrieval)}"

    def warm(self) -> None:
        """Load now what a first turn would load lazily, so that it costs what a later one does.

        The model's weights (a token decoded, under each tool's grammar), the tokenizer, the knowledge index
        (stale files indexed) and its embedder, the curated questions' and the tools' vectors, the tool
        loop's imports; an output guard with a `warm()` of its own (a model it loads) is asked too.
        Blocking and idempotent: `gptbuilder serve` runs it for every GPT before /ready says ready.
        """
        from .models.tool_calling import openai_tools

        probe = next(iter(self.loaded.spec.conversation_starters), None) or self.loaded.spec.name  # a question it expects
        tools = openai_tools(self.tools)
        prompt = self.prepare([{"role": "user", "content": probe}])  # the tokenizer, and the tool definitions' tokens
        warm_model = getattr(self.model, "warm", None)
        if callable(warm_model):
            warm_model(prompt, tools)
        if self.knowledge is not None:
            self.knowledge.retrieve(probe)  # indexes stale files, opens the index, loads the embedder
            if tools and self.knowledge.config.on_no_match == "refuse":  # where nothing matches, Retrieve asks the router
                from .models.tool_routing import default_router

                (self.router or default_router()).route(tools, probe)
        if self.curated is not None:
            self.curated.scores(probe)
        if self.tools:
            import langchain.agents  # noqa: F401 - the tool loop's create_agent
        for guard in self.output_guards:
            warm_guard = getattr(guard, "warm", None)
            if callable(warm_guard):
                warm_guard()

    def prepare(
        self, messages: MessagesLike, *, max_tokens: int | None = None, retrieval: Retrieval | None = None
    ) -> list[BaseMessage]:
        """Validate a conversation and fit it, with the system prompt, into the model's context."""
        return self._fit(to_messages(messages), max_tokens, retrieval)

    def stream(
        self,
        messages: MessagesLike,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        max_tokens: int | None = None,
        stop: Sequence[str] | None = None,
        seed: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        logit_bias: Mapping[int, float] | None = None,
        top_k: int | None = None,
        min_p: float | None = None,
        repeat_penalty: float | None = None,
        logprobs: bool = False,
        top_logprobs: int | None = None,
        response_format: Mapping[str, Any] | None = None,
        approvals: Mapping[str, bool] | None = None,
        client_tools: Sequence[dict[str, Any]] | None = None,
        tool_choice: Any = None,
        owner: str = "local",
        pending: PendingCalls | None = None,
    ) -> Generator[Event, None, None]:
        """Answer the conversation: text deltas (and tool steps), then the sources as citations, then Done.

        ``client_tools`` (OpenAI tool dicts) are tools the caller runs: a call of one ends the answer with
        ToolCall events and finish_reason "tool_calls"; the caller sends the results back as tool messages.
        A GPT with tools of its own offers both: its own run inside, as always; one of the caller's with the
        same name as one of the GPT's is not offered (see `shadowed_tools`). ``tool_choice`` is the caller's
        and applies to the caller's tools; naming one of the GPT's is an InputError.
        A call to a tool that needs confirmation is not run: the answer ends with a ConfirmationRequest and
        finish_reason "confirmation_required"; the server holds those calls for ``owner`` (in ``pending``,
        else this agent's memory) and the next turn settles them with ``approvals`` {call id: True/False}.
        Tool calls that only appear in ``messages`` are never run (see turn.approvals.ResolveApprovals).
        With ``logprobs``, TokenLogprobs events come before the text they describe.
        ``response_format`` (OpenAI's: json_object, or json_schema with its schema) makes the answer that JSON:
        tools run as usual and only the answer is held to the schema; sources still inform it and come as
        citations, but nothing rewrites its text (no marker clean-up, faithfulness fixes or extractive answer).
        """
        options = Options(
            temperature, top_p, max_tokens, tuple(stop or ()), seed,
            presence_penalty=presence_penalty, frequency_penalty=frequency_penalty, logit_bias=logit_bias,
            top_k=top_k, min_p=min_p, repeat_penalty=repeat_penalty,
            logprobs=logprobs, top_logprobs=top_logprobs, response_format=response_format,
        )
        answer_schema(response_format)  # InputError now for a format no backend could follow
        offered = self.offered_tools(client_tools or (), tool_choice)
        turn = Turn(
            self.id, to_messages(messages), options, approvals or {}, offered, tool_choice if offered else None,
            owner=owner, pending=pending or self.pending,
        )
        runner = self._runner(turn)
        for stage in self.stages:
            answer = yield from stage(turn)
            if answer is not None:
                yield answer
                return
        if self._extractive(turn):
            runner = Extract(self.knowledge.index.embedder.embed if self.knowledge else None)
        prompt = self._fit(turn.history, max_tokens, turn.retrieval, turn.client_tools)
        after = [guard(turn) for guard in self.output_guards]
        if turn.retrieval and turn.retrieval.sources:
            after.append(Cite(
                turn.retrieval, private=self.knowledge is not None and self.knowledge.config.private, markers=not options.structured
            ))
        result, text = yield from through(runner(turn, prompt), after)
        yield Done(text, finish_reason=normal_finish_reason(result.finish_reason), usage=self._usage(result, prompt, text))

    def chat(self, messages: MessagesLike, **options: Any) -> Reply:
        """Answer the conversation and return the whole reply."""
        for event in self.stream(messages, **options):
            if isinstance(event, Done):
                return Reply(event.text, event.finish_reason, event.usage)
        raise ModelError(f"{self.id}: the answer ended without finishing")  # pragma: no cover

    def _usage(self, result: RunResult, prompt: list[BaseMessage], text: str) -> Usage:
        """Token usage: the prompt of every model call, and the tokens of the answer as the caller gets it.

        A GPT's own tool calls (a local model's routing JSON included) are generated but never returned, so
        completion_tokens leaves them out: they counted 12-14 tokens of JSON into a 98-token answer. The
        prompts of those calls stay in prompt_tokens: the model did read them. Calls returned to the caller
        (client-side tools) are in the last message, so they count. The backend's own count of the last call
        is used when it produced exactly the text returned; otherwise (an output guard changed it, or the
        backend reports nothing) the returned text is counted with the model's tokenizer.
        """
        prompt_tokens = result.usage.prompt_tokens if result.usage else count_tokens(self.model, prompt)
        last = result.message
        if result.usage and last is not None and last.usage_metadata and last.text == text:
            return Usage(prompt_tokens, last.usage_metadata["output_tokens"])
        return Usage(prompt_tokens, count_text_tokens(self.model, text))

    def shadowed_tools(self, client_tools: Sequence[Mapping[str, Any]]) -> list[str]:
        """Names of the caller's tools that one of the GPT's own tools shadows: the GPT's runs, the caller's is not offered."""
        from .models.tool_calling import tool_name

        own = {tool.name for tool in self.tools}
        return list(dict.fromkeys(name for name in map(tool_name, client_tools) if name in own))

    def offered_tools(self, client_tools: Sequence[Mapping[str, Any]], tool_choice: Any = None) -> list[dict[str, Any]]:
        """The caller's tools the model is offered: all but the shadowed ones; InputError for a tool_choice that cannot apply.

        The caller's tool_choice applies to the caller's tools: it may not name one of the GPT's (those
        are the GPT's to call or not), "required" needs at least one of the caller's on offer, and "none"
        offers none of them.
        """
        from .models.tool_calling import tool_name

        if tool_choice == "none":
            return []  # none of the caller's; the GPT's own tools are the GPT's, offered as always
        shadowed = set(self.shadowed_tools(client_tools))
        offered = [dict(tool) for tool in client_tools if tool_name(tool) not in shadowed]
        if not client_tools or tool_choice in (None, "auto"):
            return offered
        named = tool_choice.get("function", {}).get("name") if isinstance(tool_choice, dict) else None
        if named in shadowed or (named and named in {tool.name for tool in self.tools}):
            raise InputError(
                f"tool_choice names {named!r}, one of {self.id}'s own tools: those run on the server and are not yours "
                "to force; name one of the tools you send (a tool you send with the name of one of the GPT's is not offered)"
            )
        if named and named not in {tool_name(tool) for tool in offered}:
            raise InputError(f"tool_choice names {named!r}, which is not among the tools sent")
        if not offered:
            raise InputError(
                f"tool_choice {tool_choice!r} needs one of your tools, but every tool sent has the name of one of {self.id}'s "
                f"own ({', '.join(sorted(shadowed))}) and is not offered; rename yours"
            )
        return offered

    def _runner(self, turn: Turn) -> Runner:
        """Who answers: the GPT's own tool loop (the caller's tools offered in it), else the caller's tools, else the model."""
        if self.tools:
            return ToolLoop(self.model, self.tools, max_calls=self.loaded.spec.max_tool_calls)
        if turn.client_tools:
            return ClientTools(self.model)
        return Answer(self.model)

    def _extractive(self, turn: Turn) -> bool:
        """Whether this turn is answered with the sources' own sentences (`answer_mode: extractive`, sources found)."""
        return (
            self.knowledge is not None
            and self.knowledge.config.answer_mode == "extractive"
            and turn.retrieval is not None
            and bool(turn.retrieval.sources)
            and not turn.client_tools
            and not turn.options.structured
        )

    def _fit(
        self, history: list[BaseMessage], max_tokens: int | None, retrieval: Retrieval | None, client_tools: Sequence[Any] = ()
    ) -> list[BaseMessage]:
        return fit(
            history,
            self.system_prompt(retrieval),
            model=self.model,
            gpt_id=self.id,
            context_window=self.context_window,
            answer_budget=max_tokens or self.loaded.spec.model.max_tokens or DEFAULT_MAX_TOKENS,
            reserved=self._tool_overhead(client_tools),
        )

    def _tool_overhead(self, client_tools: Sequence[Any] = ()) -> int:
        """Tokens the tool definitions add to every model call (schemas, or a local model's tool protocol).

        The GPT's own are counted once; the caller's, which change from request to request, every time.
        """
        if not self.tools and not client_tools:
            return 0
        if self._tool_tokens is None:
            self._tool_tokens = self._schema_tokens(self.tools)
        return self._tool_tokens + self._schema_tokens(client_tools) + TOOL_PROTOCOL_TOKENS

    def _schema_tokens(self, tools: Sequence[Any]) -> int:
        if not tools:
            return 0
        from .models.tool_calling import openai_tools

        return count_tokens(self.model, [SystemMessage(json.dumps(openai_tools(tools)))])

    def _routed_tools(self, router: Router | None) -> RoutedTools:
        from .models.tool_calling import openai_tools
        from .models.tool_routing import DEFAULT_THRESHOLD

        threshold = self.loaded.spec.model.options.get("tool_route_threshold", DEFAULT_THRESHOLD)
        return RoutedTools(openai_tools(self.tools), threshold=threshold, router=router)


def compile_agent(
    loaded: LoadedSpec,
    *,
    model: BaseChatModel | None = None,
    data_dir: str | Path | None = None,
    embedder: Any | None = None,
) -> Agent:
    """Build the agent for a spec: its model (through the provider registry unless given) and its knowledge.

    The knowledge index lives under ``data_dir`` (default: the configured data folder) and is built
    on first use; ``embedder`` overrides the spec's embedding model and the tool router's (tests pass
    the fake one).
    """
    from .models.registry import create_model

    tools: list[Any] = []
    if loaded.spec.tools:
        from .tools.compile import build_tools

        tools = build_tools(loaded)
    if model is None:
        model = create_model(loaded.spec.model, base_dir=loaded.folder)
    knowledge = None
    if loaded.spec.knowledge is not None:
        from .knowledge.index import KnowledgeIndex
        from .knowledge.rerank import reranker_for
        from .knowledge.retriever import KnowledgeBase
        from .settings import Settings

        folder = Path(data_dir) if data_dir is not None else Settings.from_env().data_dir
        index = KnowledgeIndex(loaded.id, loaded.spec.knowledge, loaded.folder, folder, embedder=embedder)
        knowledge = KnowledgeBase(index, loaded.spec.knowledge, reranker=reranker_for(loaded, model))  # the judge is the model
    curated = None
    if loaded.spec.curated_answers:
        from .curated import curated_answers_for

        curated = curated_answers_for(loaded, knowledge.index.embedder if knowledge else embedder)
    router = None
    if embedder is not None:
        from .models.tool_routing import ToolRouter

        router = ToolRouter(embedder.embed)
    guards: list[Callable[[Turn], OutputStage]] = []
    private = knowledge is not None and knowledge.config.private
    if knowledge is not None and knowledge.config.answer_mode == "verified":
        from .knowledge.entailment import entailment_for
        from .turn.grounding import Verify

        guards.append(Verify(unsupported=knowledge.config.unsupported, also_known=loaded.instructions, private=private,
                             entailment=entailment_for(loaded)))
    if loaded.spec.protect_instructions or private:
        from .turn.guards import ProtectEcho

        guards.append(ProtectEcho(loaded.instructions if loaded.spec.protect_instructions else "", private_knowledge=private))
    from .moderation import moderation_for

    return Agent(
        loaded, model, knowledge=knowledge, tools=tools, curated=curated, output_guards=guards, router=router,
        moderation=moderation_for(loaded),
    )
