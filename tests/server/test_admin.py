"""The admin usage page: everyone's usage per GPT, key and day, for admin keys only."""

from __future__ import annotations

from datetime import date

from fastapi.testclient import TestClient

from gptbuilder.server import ServerConfig
from gptbuilder.server.admin import render_usage
from gptbuilder.server.auth import key_id
from gptbuilder.server.usage import Price, UsageLine

CHAT = {"model": "echo", "messages": [{"role": "user", "content": "hi"}]}


def test_admins_see_everyones_usage_with_costs(make_app, echo):
    config = ServerConfig(api_keys=("sk-user",), admin_keys=("sk-admin",), prices={"*": Price(completion_per_1k=1000)})
    client = TestClient(make_app(config))
    for _ in range(2):
        client.post("/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer sk-user"})
    page = client.get("/admin/usage", auth=("admin", "sk-admin"))  # the browser's Basic prompt, as on the store
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert key_id("sk-user") in page.text and "sk-user" not in page.text.replace(key_id("sk-user"), "")
    assert "<td>echo</td><td class=n>2</td>" in page.text
    assert "6.0000" in page.text  # 2 answers x 3 completion tokens at 1000 per 1k


def test_the_usage_page_refuses_users_and_strangers(make_app, echo):
    client = TestClient(make_app(ServerConfig(api_keys=("sk-user",), admin_keys=("sk-admin",))))
    assert client.get("/admin/usage").status_code == 401
    assert client.get("/admin/usage", auth=("x", "wrong")).status_code == 401
    refused = client.get("/admin/usage", headers={"Authorization": "Bearer sk-user"})
    assert refused.status_code == 403 and "admin" in refused.json()["error"]["message"]
    assert client.get("/admin/usage?days=0", auth=("a", "sk-admin")).status_code == 400


def test_names_are_escaped_and_an_empty_period_says_so():
    hostile = UsageLine(date(2026, 11, 28), "key_<b>", "<script>x</script>", 1, 2, 3, None)
    page = render_usage([hostile], date(2026, 11, 1), date(2026, 11, 28))
    assert "<script>x</script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "key_&lt;b&gt;" in page and "—" in page
    assert render_usage([], date(2026, 11, 1), date(2026, 11, 28)).count("No usage in this period.") == 3
