"""Host and origin, against a live `serve` on loopback: DNS rebinding, keyless admin, CORS, CSRF, key guessing.

The attacks (issue 12): a page on `rebind.attacker.example` whose name resolves to 127.0.0.1 was served as
admin (usage page, `save_spec`), Gradio reflected that origin in CORS with credentials, another site's page
could POST to the store's API, and wrong API keys could be tried without limit.
"""

from __future__ import annotations

import httpx
import pytest

from gptbuilder.server.config import ServerConfig
from tests.server.conftest import ECHO, live, make_app  # noqa: F401 - fixtures

EVIL = "evil.example"
SAVE = "/gradio_api/call/save_spec"
VALIDATE = "/gradio_api/call/validate_spec"
SPEC = {"data": ["planted", "name: Planted\ninstructions: x\nmodel: {provider: fake}\n", ""]}


@pytest.fixture
def store(write_spec, make_app, live):
    """A keyless store on loopback, as `gptbuilder serve` starts by default."""
    write_spec("echo", ECHO)
    return live(make_app(ServerConfig(), ui=True))


def get(server, path: str, **headers: str) -> httpx.Response:
    return httpx.get(server.url + path, headers=headers, timeout=30)


def post(server, path: str, body: dict, **headers: str) -> httpx.Response:
    return httpx.post(server.url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("path", ["/v1/models", "/admin/usage", "/", "/gradio_api/info", "/metrics", "/widget.js"])
def test_a_rebound_host_name_is_refused_on_every_route(store, path):
    refused = get(store, path, host=EVIL)
    assert refused.status_code == 400, refused.text[:200]
    error = refused.json()["error"]
    assert error["code"] == "host_not_allowed" and "--allowed-hosts" in error["message"]
    assert get(store, path, host=f"localhost:{store.port}").status_code == 200
    assert get(store, path).status_code == 200  # Host: 127.0.0.1:port


def test_a_rebound_host_cannot_save_a_spec(store, gpts_dir):
    refused = post(store, SAVE, SPEC, host=f"{EVIL}:{store.port}")
    assert refused.status_code == 400
    assert not (gpts_dir / "planted.yaml").exists()


def test_health_answers_any_host(store):
    assert get(store, "/health", host="10.0.0.7").json() == {"status": "ok"}  # orchestrators probe by address


def test_allowed_hosts_are_what_the_operator_names(write_spec, make_app, live):
    write_spec("echo", ECHO)
    key = {"authorization": "Bearer sk-1"}
    server = live(make_app(ServerConfig(api_keys=("sk-1",), allowed_hosts=("store.example", "*.shop.example"))))
    assert get(server, "/v1/models", host="store.example", **key).status_code == 200
    assert get(server, "/v1/models", host="eu.shop.example:8443", **key).status_code == 200
    assert get(server, "/v1/models", host="shop.example", **key).status_code == 400
    assert get(server, "/v1/models", **key).status_code == 400  # loopback only when listed


def test_no_keyless_admin_for_a_non_loopback_host(write_spec, make_app, live, gpts_dir):
    write_spec("echo", ECHO)
    server = live(make_app(ServerConfig(allowed_hosts=("127.0.0.1", "store.example")), ui=True))
    usage = get(server, "/admin/usage", host="store.example")
    assert usage.status_code == 403 and usage.json()["error"]["code"] == "admin_only"
    assert get(server, "/v1/usage?all=true", host="store.example").status_code == 403
    saved = post(server, SAVE, SPEC, host="store.example")
    assert saved.status_code == 403 and "GPTBUILDER_API_KEYS" in saved.json()["error"]["message"]
    upload = httpx.post(server.url + "/gradio_api/upload", headers={"host": "store.example"},
                        files={"files": ("a.md", b"# a\n", "text/markdown")}, timeout=30)
    assert upload.status_code == 403
    assert not (gpts_dir / "planted.yaml").exists()
    assert get(server, "/admin/usage").status_code == 200  # the operator on loopback is still admin
    assert get(server, "/v1/models", host="store.example").status_code == 200  # reading stays open


def test_the_store_grants_no_cors_to_another_site(write_spec, make_app, live):
    write_spec("echo", ECHO)
    server = live(make_app(ServerConfig(api_keys=("sk-1",), allowed_hosts=("store.example",)), ui=True))
    asked = {"host": "store.example", "authorization": "Bearer sk-1"}
    for path in ("/gradio_api/info", "/config", "/v1/models"):
        response = get(server, path, origin="https://attacker.example", **asked)
        assert response.status_code == 200
        assert "access-control-allow-origin" not in response.headers, path
        assert "access-control-allow-credentials" not in response.headers, path
    preflight = httpx.options(server.url + "/gradio_api/queue/join", timeout=30, headers={
        **asked, "origin": "https://attacker.example", "access-control-request-method": "POST"})
    assert "access-control-allow-origin" not in preflight.headers


def test_a_cross_site_post_to_the_store_is_refused(store, gpts_dir):
    own = f"http://127.0.0.1:{store.port}"
    for headers in ({"origin": "https://attacker.example"}, {"origin": "null"},
                    {"referer": "https://attacker.example/page.html"}, {"origin": f"http://127.0.0.1:{store.port + 1}"}):
        refused = post(store, SAVE, SPEC, **headers)
        assert refused.status_code == 403, headers
        assert refused.json()["error"]["code"] == "cross_site_request"
    assert not (gpts_dir / "planted.yaml").exists()
    assert post(store, VALIDATE, SPEC, origin=own).status_code == 200  # the store's own page
    assert post(store, VALIDATE, SPEC, referer=f"{own}/?view=create").status_code == 200
    assert post(store, VALIDATE, SPEC).status_code == 200  # no Origin, no Referer: curl, gradio_client


def test_wrong_keys_are_rate_limited_per_ip(write_spec, make_app, live):
    write_spec("echo", ECHO)
    server = live(make_app(ServerConfig(api_keys=("sk-right",), failed_auth_per_minute_per_ip=3)))
    for _ in range(5):  # right keys never count as failures
        assert get(server, "/v1/models", authorization="Bearer sk-right").status_code == 200
    for guess in ("sk-a", "sk-b"):
        assert get(server, "/v1/models", authorization=f"Bearer {guess}").status_code == 401
    assert get(server, "/v1/models").status_code == 401  # a missing key is a failure too
    blocked = get(server, "/v1/models", authorization="Bearer sk-c")
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    assert blocked.json()["error"]["type"] == "rate_limit_error"
    # Past the limit even the right key waits, so guessing cannot go on between the attacker's own good calls.
    assert get(server, "/v1/models", authorization="Bearer sk-right").status_code == 429
