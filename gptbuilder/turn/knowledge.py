"""The stages that answer from what the GPT knows: curated answers, retrieval (with its refusal), citations."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from langchain_core.messages import HumanMessage

from ..events import Citation, Curated, Done, Event, TextDelta, Usage
from .base import Turn

if TYPE_CHECKING:
    from ..curated import CuratedAnswers
    from ..knowledge.retriever import KnowledgeBase, Retrieval
    from ..models.tool_routing import Route


class AnswerCurated:
    """Stage: a curated answer close enough to the user's latest message answers it — no retrieval, no model."""

    def __init__(self, curated: CuratedAnswers):
        self.curated = curated

    def __call__(self, turn: Turn) -> Generator[Event, None, Done | None]:
        last = turn.history[-1]
        match = self.curated.match(last.text) if isinstance(last, HumanMessage) else None
        if match is None:
            return None
        yield Curated(match.question, match.score)
        yield TextDelta(match.answer)
        return Done(match.answer, finish_reason="stop", usage=Usage())


class Router(Protocol):
    """Picks the tool (or none) a request calls for; `models.tool_routing.ToolRouter` is the real one."""

    def route(self, tools: Sequence[Any], request: str, threshold: float = ...) -> Route: ...


class Retrieve:
    """Stage: the knowledge passages for the user's latest message, kept on the turn for the prompt.

    Policy when nothing matches and the GPT is set to refuse (`on_no_match: refuse`): refuse without the
    model, unless a tool offered this turn would answer the request (``tool_applies``) — then the turn
    goes on with no sources, for the tool to answer (a calculator question to a shop GPT, say).
    """

    def __init__(self, knowledge: KnowledgeBase, *, tool_applies: Callable[[Turn], bool] = lambda turn: False):
        self.knowledge = knowledge
        self.tool_applies = tool_applies

    def __call__(self, turn: Turn) -> Generator[Event, None, Done | None]:
        from ..knowledge.query import retrieval_query
        from ..knowledge.retriever import NO_MATCH_MESSAGE

        turn.retrieval = self.knowledge.retrieve(retrieval_query(turn.history))  # a follow-up keeps its context
        if turn.retrieval.sources or self.knowledge.config.on_no_match != "refuse":
            return None
        if self.tool_applies(turn):
            turn.retrieval = None  # no "nothing found, say so" block: the tool's answer is the answer
            return None
        yield TextDelta(NO_MATCH_MESSAGE)
        return Done(NO_MATCH_MESSAGE, finish_reason="stop", usage=Usage())


class RoutedTools:
    """Whether a tool offered this turn (the GPT's own or the caller's) would answer its request, per the router."""

    def __init__(self, tools: Sequence[dict[str, Any]], *, threshold: float, router: Router | None = None):
        self.tools = list(tools)
        self.threshold = threshold
        self._router = router

    def __call__(self, turn: Turn) -> bool:
        offered = [*self.tools, *turn.client_tools]
        if not offered:
            return False
        if self._router is None:
            from ..models.tool_routing import default_router

            self._router = default_router()
        return self._router.route(offered, turn.request, self.threshold).tool is not None


class Cite:
    """Output stage: drops citation markers that name no source, then lists every source as a Citation.

    With ``markers=False`` the text passes unchanged (a structured answer's "[3]" may be a JSON array).
    """

    halted: str | None = None

    def __init__(self, retrieval: Retrieval, *, private: bool = False, markers: bool = True):
        from ..knowledge.retriever import CitationFilter

        self.sources = retrieval.sources
        self.private = private  # private knowledge: name the sources, never hand out their text
        self.markers = markers
        self.filter = CitationFilter({s.number for s in self.sources})

    def feed(self, event: Event) -> Iterable[Event]:
        """Text with unknown markers removed (a marker split across pieces is held until it closes)."""
        if not isinstance(event, TextDelta):
            return (event,)
        text = self.filter.feed(event.text)  # also notes which sources the text cites
        if not self.markers:
            return (event,)
        return (TextDelta(text),) if text else ()

    def finish(self) -> Iterator[Event]:
        """The held-back tail, then the sources, marked `cited` when the answer referred to them."""
        tail = self.filter.flush()
        if tail and self.markers:
            yield TextDelta(tail)
        for s in self.sources:
            yield Citation(s.number, s.source, "" if self.private else s.text, s.locator, s.number in self.filter.cited)
