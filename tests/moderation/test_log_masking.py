"""Server logs keep no personal data: one filter on every handler masks each record's message, arguments
and traceback; the app installs it."""

from __future__ import annotations

import io
import logging

from fastapi.testclient import TestClient

from gptbuilder.moderation.logs import MaskingFilter, mask_logs
from gptbuilder.server import ServerConfig
from tests.server.conftest import ECHO, make_app  # noqa: F401

SECRET = "bob@example.com paid with 4111 1111 1111 1111"


def logged(emit) -> str:
    """What a handler with the filter writes for the records ``emit`` logs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(MaskingFilter())
    logger = logging.getLogger("tests.masking")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    return stream.getvalue()


def test_messages_arguments_and_tracebacks_are_masked():
    def emit(logger: logging.Logger) -> None:
        logger.warning("asked: %s", SECRET)
        logger.warning("%(who)s asked %(n)d times", {"who": "bob@example.com", "n": 3})
        logger.warning(f"inline {SECRET}")
        logger.warning("call %r failed: %s", "IBAN DE89 3704 0044 0532 0130 00", ValueError("to bob@example.com"))
        try:
            raise RuntimeError(f"could not answer {SECRET}")
        except RuntimeError:
            logger.exception("turn failed")

    text = logged(emit)
    assert "example.com" not in text and "4111" not in text and "DE89" not in text
    assert "asked: [email] paid with [card]" in text and "[email] asked 3 times" in text
    assert "call 'IBAN [iban]' failed: to [email]" in text
    assert "RuntimeError: could not answer [email] paid with [card]" in text and "Traceback" in text


def test_arguments_keep_their_types_where_nothing_is_masked():
    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5000", "GET", "/v1/models?x=1", "1.1", 200), None)
    MaskingFilter().filter(record)
    assert record.args == ("127.0.0.1:5000", "GET", "/v1/models?x=1", "1.1", 200)  # uvicorn's formatter unpacks them
    assert record.getMessage() == '127.0.0.1:5000 - "GET /v1/models?x=1 HTTP/1.1" 200'


def test_installing_twice_adds_one_filter():
    handler = logging.StreamHandler(io.StringIO())
    logging.getLogger("tests.masking.install").addHandler(handler)
    try:
        mask_logs()
        mask_logs()
        assert sum(isinstance(f, MaskingFilter) for f in handler.filters) == 1
    finally:
        logging.getLogger("tests.masking.install").removeHandler(handler)


def test_the_server_masks_what_it_logs(make_app, write_spec, caplog, monkeypatch):
    write_spec("echo", ECHO)
    client = TestClient(make_app(ServerConfig()), raise_server_exceptions=False)

    def broken(self, messages):  # an unexpected error whose message carries what the user sent
        raise RuntimeError(f"cannot check {messages[-1]['content']}")

    monkeypatch.setattr("gptbuilder.server.state.ServerState.check_messages", broken)
    with caplog.at_level(logging.ERROR):
        response = client.post("/v1/chat/completions", json={"model": "echo", "messages": [{"role": "user", "content": SECRET}]})
    assert response.status_code == 500
    assert "cannot check [email] paid with [card]" in caplog.text  # the traceback, masked
    assert "example.com" not in caplog.text and "4111" not in caplog.text
