"""litellm against a live server, as `openai/<gpt id>` with `api_base`: chat, a client tool's round trip, response_format."""

from __future__ import annotations

import json
import os

import pytest

from tests.clients.conftest import KEY
from tests.server.test_openai_api import WEATHER
from tests.server.test_structured_output import ASK, CITY_JSON, City

pytestmark = pytest.mark.needs_module("litellm", extra="test")
# litellm fetches its model price list from GitHub on import unless told to use the copy it ships.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def complete(base_url: str, gpt_id: str, messages: list[dict], key: str = KEY, **options: object):
    """litellm.completion against the server, the way its docs say to reach an OpenAI-compatible one."""
    import litellm

    return litellm.completion(model=f"openai/{gpt_id}", api_base=base_url, api_key=key, messages=messages, num_retries=0, **options)


def test_chat_streamed_and_not(served):
    reply = complete(served.base_url, "city", [{"role": "user", "content": "hi"}])
    assert json.loads(reply.choices[0].message.content) == {"city": "Paris", "country": "France"}
    assert reply.usage.completion_tokens > 0
    chunks = list(complete(served.base_url, "city", [{"role": "user", "content": "hi"}], stream=True))
    assert len(chunks) > 2 and "".join(c.choices[0].delta.content or "" for c in chunks) == CITY_JSON


def test_a_client_tool_round_trip(served):
    ask = [{"role": "user", "content": "Weather in Paris?"}]
    called = complete(served.base_url, "weather", ask, tools=[WEATHER])
    assert called.choices[0].finish_reason == "tool_calls"
    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and json.loads(call.function.arguments) == {"city": "Paris"}
    result = {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"forecast": "sunny"})}
    answered = complete(served.base_url, "weather", [*ask, called.choices[0].message.model_dump(), result], tools=[WEATHER])
    assert answered.choices[0].message.content == "Sunny in Paris." and answered.choices[0].finish_reason == "stop"


def test_response_format_json_schema(served):
    reply = complete(served.base_url, "city", [{"role": "user", "content": "Capital of France?"}], response_format=City)
    assert City.model_validate_json(reply.choices[0].message.content) == City(city="Paris", country="France")
    sent = served.calls("city")[-1]["response_format"]
    assert sent["type"] == "json_schema" and set(sent["json_schema"]["schema"]["required"]) == {"city", "country"}


@pytest.mark.slow
def test_response_format_on_the_embedded_model(smol):
    """SmolLM2 held to the schema by a grammar: litellm gets JSON that validates."""
    reply = complete(smol, "smol", ASK, key="unused",
                     response_format=City, temperature=0)
    assert isinstance(City.model_validate_json(reply.choices[0].message.content), City)
