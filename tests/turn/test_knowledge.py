"""Curated answers, retrieval with its refusal policy, and citations, each as a stage on its own."""

from __future__ import annotations

from types import SimpleNamespace

from langchain_core.messages import AIMessage, HumanMessage

from gptbuilder.events import Citation, Curated, Done, TextDelta
from gptbuilder.knowledge.retriever import NO_MATCH_MESSAGE, Retrieval, Source
from gptbuilder.models.tool_routing import Route
from gptbuilder.turn import Turn
from gptbuilder.turn.knowledge import AnswerCurated, Cite, Retrieve, RoutedTools
from tests.turn.test_guards import drive


class Knowledge:
    """A knowledge base that finds the given sources and records what it was asked."""

    def __init__(self, *sources: Source, on_no_match: str = "refuse"):
        self.sources = sources
        self.config = SimpleNamespace(on_no_match=on_no_match)
        self.asked: list[str] = []

    def retrieve(self, query: str) -> Retrieval:
        self.asked.append(query)
        return Retrieval(self.sources)


class Router:
    def __init__(self, pick: str | None):
        self.pick = pick
        self.calls: list[tuple[list[str], str, float]] = []

    def route(self, tools, request, threshold=0.3):
        self.calls.append(([t["function"]["name"] for t in tools], request, threshold))
        return Route(self.pick, 0.9 if self.pick else 0.1)


RETURNS = Source(1, "knowledge/returns.md", "Shoes can be returned within 30 days.", {}, 0.8)
CALCULATOR = {"type": "function", "function": {"name": "calculator", "description": "Arithmetic."}}


def turn(text: str = "can I return shoes?", **fields) -> Turn:
    return Turn("shop", [HumanMessage(text)], **fields)


def test_found_sources_stay_on_the_turn_for_the_prompt():
    knowledge = Knowledge(RETURNS)
    t = turn()
    assert drive(Retrieve(knowledge), t) == ([], None)
    assert t.retrieval.sources == (RETURNS,) and knowledge.asked == ["can I return shoes?"]


def test_nothing_found_refuses_without_the_model():
    events, answer = drive(Retrieve(Knowledge()), turn("airspeed of a swallow?"))
    assert [e.text for e in events] == [NO_MATCH_MESSAGE]
    assert isinstance(answer, Done) and answer.text == NO_MATCH_MESSAGE and answer.usage.total_tokens == 0


def test_nothing_found_goes_on_when_the_gpt_answers_anyway():
    t = turn("airspeed of a swallow?")
    assert drive(Retrieve(Knowledge(on_no_match="answer")), t) == ([], None)
    assert t.retrieval is not None and t.retrieval.sources == ()


def test_policy_a_tool_the_router_picks_waives_the_refusal():
    router = Router("calculator")
    t = turn("What is 1299 * 0.8?")
    stage = Retrieve(Knowledge(), tool_applies=RoutedTools([CALCULATOR], threshold=0.4, router=router))
    assert drive(stage, t) == ([], None)
    assert t.retrieval is None, "no 'nothing found' block: the tool answers"
    assert router.calls == [(["calculator"], "What is 1299 * 0.8?", 0.4)]


def test_policy_tools_the_router_does_not_pick_leave_the_refusal():
    stage = Retrieve(Knowledge(), tool_applies=RoutedTools([CALCULATOR], threshold=0.3, router=Router(None)))
    _, answer = drive(stage, turn("airspeed of a swallow?"))
    assert answer is not None and answer.text == NO_MATCH_MESSAGE


def test_policy_the_router_is_asked_only_when_nothing_matched_and_counts_the_callers_tools():
    router = Router("lookup")
    tools = RoutedTools([], threshold=0.3, router=router)
    drive(Retrieve(Knowledge(RETURNS), tool_applies=tools), turn())
    assert router.calls == []
    client = {"type": "function", "function": {"name": "lookup", "description": "Look up a word."}}
    assert tools(turn("define cobbler", client_tools=[client])) is True
    assert router.calls[-1][0] == ["lookup"]
    assert RoutedTools([], threshold=0.3, router=router)(turn()) is False, "no tools: nothing to route to"


class Curation:
    def __init__(self, match):
        self.result = match
        self.asked: list[str] = []

    def match(self, text):
        self.asked.append(text)
        return self.result


def test_a_curated_match_answers_with_its_text_and_no_usage():
    match = SimpleNamespace(question="When are you open?", answer="Tuesday to Saturday.", score=0.93)
    events, answer = drive(AnswerCurated(Curation(match)), turn("when do you open?"))
    assert events == [Curated("When are you open?", 0.93), TextDelta("Tuesday to Saturday.")]
    assert answer == Done("Tuesday to Saturday.", finish_reason="stop")


def test_no_curated_match_goes_on_and_tool_results_are_not_questions():
    curation = Curation(None)
    assert drive(AnswerCurated(curation), turn("anything")) == ([], None)
    resumed = Turn("shop", [HumanMessage("cancel it"), AIMessage("", tool_calls=[])])
    resumed.history.append(AIMessage("not a question"))
    assert drive(AnswerCurated(curation), resumed) == ([], None)
    assert curation.asked == ["anything"]


def test_citations_drop_unknown_markers_and_list_every_source_at_the_end():
    other = Source(2, "knowledge/shipping.md", "Delivery takes 3 days.", {"page": 2}, 0.5)
    cite = Cite(Retrieval((RETURNS, other)))
    shown = [e for piece in ("Within 30 days [", "1] or [9", "] ever [2") for e in cite.feed(TextDelta(piece))]
    tail = list(cite.finish())
    text = "".join(e.text for e in [*shown, *tail] if isinstance(e, TextDelta))
    assert text == "Within 30 days [1] or  ever [2"
    citations = [e for e in tail if isinstance(e, Citation)]
    assert [(c.number, c.cited) for c in citations] == [(1, True), (2, False)]
    assert citations[1].locator == {"page": 2}
