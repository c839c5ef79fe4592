"""Client fixtures: a live server with two fake-model GPTs every client test talks to, the way a user's serve runs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from fastapi import FastAPI

from gptbuilder.models.fake import FakeChatModel
from gptbuilder.server import ServerConfig
from tests.conftest import require  # noqa: F401 - the client tests import it from here
from tests.server.conftest import live, make_app  # noqa: F401
from tests.server.test_structured_output import CITY_JSON

KEY = "sk-client-test"
WEATHER_CALL = json.dumps({"type": "tool_call", "name": "get_weather", "arguments": {"city": "Paris"}})
SPECS = {
    # Asks for the caller's get_weather tool, then answers from its result.
    "weather": f"name: Weather\ninstructions: Help.\nmodel:\n  provider: fake\n  options:\n"
               f"    replies: [{json.dumps(WEATHER_CALL)}, 'Sunny in Paris.']\n",
    "city": f"name: City\ninstructions: Answer.\nmodel: {{provider: fake, options: {{replies: [{json.dumps(CITY_JSON)}]}}}}\n",
}


@dataclass
class Served:
    """The live server, its /v1 base URL, and its app (to read what the fake models were asked)."""

    app: FastAPI
    base_url: str

    def calls(self, gpt_id: str) -> list[dict]:
        """The sampling options each call to this GPT's fake model carried."""
        model = self.app.state.gptbuilder.store.agent(gpt_id).model
        assert isinstance(model, FakeChatModel)
        return model.calls


@pytest.fixture
def served(make_app, live, write_spec) -> Served:
    """A key-protected server with the `weather` and `city` GPTs."""
    for gpt_id, text in SPECS.items():
        write_spec(gpt_id, text)
    app = make_app(ServerConfig(api_keys=(KEY,)))
    return Served(app, f"{live(app).url}/v1")


@pytest.fixture
def smol(make_app, live, write_spec) -> str:
    """A server whose `smol` GPT runs on the embedded model (SmolLM2, real weights: slow tests only); its /v1 URL."""
    write_spec("smol", "name: Smol\ninstructions: You are a helpful assistant.\nmodel: {max_tokens: 80}\n")
    return f"{live(make_app(ServerConfig())).url}/v1"
