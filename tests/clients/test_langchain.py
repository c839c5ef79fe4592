"""LangChain's ChatOpenAI against a live server: `bind_tools` with a tool the caller runs, there and back.

(with_structured_output is in tests/server/test_structured_output.py; a single tool call in test_openai_api.py.)
"""

from __future__ import annotations

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool

from tests.clients.conftest import KEY


@tool
def get_weather(city: str) -> str:
    """Current weather in a city."""
    return f"Sunny in {city}."


def test_bind_tools_round_trip_streamed(served):
    from langchain_openai import ChatOpenAI

    llm = ChatOpenAI(model="weather", base_url=served.base_url, api_key=KEY, max_retries=0, streaming=True)
    bound = llm.bind_tools([get_weather])
    messages = [HumanMessage("Weather in Paris?")]
    called = bound.invoke(messages)
    assert [(c["name"], c["args"]) for c in called.tool_calls] == [("get_weather", {"city": "Paris"})]
    assert called.response_metadata["finish_reason"] == "tool_calls"
    messages += [called, get_weather.invoke(called.tool_calls[0])]  # a ToolMessage answering that call id
    answer = bound.invoke(messages)
    assert answer.content == "Sunny in Paris." and not answer.tool_calls
