"""events: the typed events and the one fold of a stream into a Transcript."""

from __future__ import annotations

from gptbuilder.events import (
    Citation,
    ConfirmationRequest,
    Curated,
    Done,
    TextDelta,
    ToolCall,
    ToolResult,
    Transcript,
    Usage,
)


def test_an_empty_transcript_is_unfinished():
    transcript = Transcript()
    assert transcript.text == ""
    assert transcript.done is None
    assert transcript.finish_reason is None
    assert transcript.usage == Usage(0, 0)
    assert transcript.citations == transcript.steps == transcript.calls == transcript.pending_calls() == []
    assert transcript.curated is None


def test_text_deltas_join_in_order_and_done_gives_finish_reason_and_usage():
    events = [TextDelta("Thirty "), TextDelta("days"), TextDelta("."), Done("Thirty days.", "length", Usage(12, 3))]
    transcript = Transcript.from_events(events)
    assert transcript.text == "Thirty days."
    assert transcript.done == events[-1]
    assert transcript.finish_reason == "length"
    assert transcript.usage == Usage(12, 3)
    assert transcript.usage.to_dict() == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}


def test_the_text_so_far_is_readable_before_done():
    transcript = Transcript()
    transcript.add(TextDelta("Hel"))
    assert transcript.text == "Hel"
    transcript.add(TextDelta("lo"))
    assert transcript.text == "Hello"
    assert transcript.finish_reason is None


def test_citations_keep_their_order_and_cited_flag():
    first = Citation(1, "acme/returns.md", "Returns within 30 days.", {"headings": ["Returns"]}, cited=True)
    second = Citation(2, "acme/shipping.md", "Ships in 2 days.", {}, cited=False)
    transcript = Transcript.from_events([TextDelta("30 days [1]."), first, second, Done("30 days [1].")])
    assert transcript.citations == [first, second]
    assert [c.cited for c in transcript.citations] == [True, False]
    assert transcript.steps == []


def test_tool_steps_in_stream_order_split_into_calls_and_results():
    call = ToolCall("c1", "calculator", {"expression": "1299 * 0.8"})
    result = ToolResult("c1", "calculator", "1039.2")
    failed_call = ToolCall("c2", "lookup", {"order": "A1"})
    failed = ToolResult("c2", "lookup", "not found", error=True)
    events = [call, result, failed_call, failed, TextDelta("1039.2"), Done("1039.2", "stop", Usage(30, 4))]
    transcript = Transcript.from_events(events)
    assert transcript.steps == [call, result, failed_call, failed]
    assert transcript.tool_calls == [call, failed_call]
    assert transcript.tool_results == [result, failed]
    assert transcript.calls == [call, failed_call]
    assert transcript.pending_calls() == []
    assert transcript.confirmations == []
    assert transcript.text == "1039.2"


def test_client_tool_calls_end_the_answer_with_tool_calls_pending():
    call = ToolCall("call_1", "get_weather", {"city": "Paris"})
    transcript = Transcript.from_events([call, Done("", "tool_calls", Usage(20, 8))])
    assert transcript.tool_calls == [call]
    assert transcript.pending_calls() == [call]
    assert transcript.finish_reason == "tool_calls"
    assert transcript.text == ""


def test_a_confirmation_request_is_a_pending_call_held_with_its_step():
    lookup = ToolCall("c1", "get_order", {"id": "A1"})
    looked_up = ToolResult("c1", "get_order", '{"status": "shipped"}')
    held = ToolCall("c2", "calculator", {"expression": "2+2"})
    ask = ConfirmationRequest("c3", "cancel_order", {"id": "A1"})
    events = [lookup, looked_up, held, ask, TextDelta("I need your approval."), Done("I need your approval.", "confirmation_required")]
    transcript = Transcript.from_events(events)
    assert transcript.confirmations == [ask]
    assert transcript.steps == [lookup, looked_up, held, ask]
    assert transcript.calls == [lookup, held, ask]
    assert transcript.pending_calls() == [held, ask]  # the held call waits with the one needing approval
    assert transcript.finish_reason == "confirmation_required"


def test_a_curated_answer_is_marked_and_uses_no_tokens():
    mark = Curated("What is your return window?", 0.93)
    transcript = Transcript.from_events([mark, TextDelta("30 days from delivery."), Done("30 days from delivery.")])
    assert transcript.curated == mark
    assert transcript.text == "30 days from delivery."
    assert transcript.usage.total_tokens == 0
    assert transcript.finish_reason == "stop"


def test_a_model_answer_is_not_curated():
    assert Transcript.from_events([TextDelta("hi"), Done("hi")]).curated is None


def test_every_finish_reason_passes_through_unchanged():
    for reason in ("stop", "length", "tool_calls", "confirmation_required", "content_filter"):
        assert Transcript.from_events([Done("", reason)]).finish_reason == reason


def test_from_events_consumes_a_generator_once():
    def stream():
        yield TextDelta("a")
        yield TextDelta("b")
        yield Done("ab", usage=Usage(1, 2))

    transcript = Transcript.from_events(stream())
    assert (transcript.text, transcript.usage.completion_tokens) == ("ab", 2)


def test_events_serialise_with_their_type():
    assert ToolCall("c1", "calculator", {"expression": "1+1"}).to_dict() == {
        "type": "tool_call", "id": "c1", "name": "calculator", "arguments": {"expression": "1+1"}
    }
    assert Curated("Q?", 0.9).to_dict() == {"type": "curated", "question": "Q?", "score": 0.9}
    assert Done("x", "length", Usage(2, 1)).to_dict() == {
        "type": "done", "text": "x", "finish_reason": "length",
        "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
    }
