"""`kill -9` of serve in the middle of a streamed widget answer (issue 17): after a restart the conversation
holds the user's message and the answer as far as it had streamed, marked unfinished, once; the next
answer in the same session is stored after it."""

from __future__ import annotations

import json

import httpx

from gptbuilder.db import Database
from gptbuilder.history import History, PartialAnswer
from gptbuilder.ui.render import answer_content
from tests.server.serve_process import ServeProcess

SITE = "https://shop.example"
REPLY = " ".join(f"word{n}" for n in range(50))
SLOW = (
    "name: Shop\ninstructions: Help.\n"
    f"model: {{provider: fake, options: {{replies: [{json.dumps(REPLY)}], delay: 0.05}}}}\n"
    f"widget: {{allowed_origins: [{SITE}]}}\n"
)


def test_an_answer_cut_by_kill_9_is_kept_unfinished_and_not_duplicated(write_spec, gpts_dir, tmp_path):
    write_spec("shop", SLOW)
    data = tmp_path / "serve-data"
    serve = ServeProcess(gpts_dir, data).start()
    try:
        token = httpx.post(f"{serve.url}/widget/shop/session", headers={"Origin": SITE}, timeout=30).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        deltas = 0
        with httpx.stream("POST", f"{serve.url}/widget/shop/messages", json={"message": "Tell me everything"},
                          headers=headers, timeout=30) as stream:
            for line in stream.iter_lines():
                if line.startswith("data: ") and json.loads(line[6:])["type"] == "delta":
                    deltas += 1
                if deltas == 30:  # 1.5 s in: past the first partial write, far from the 50-word end
                    serve.kill()
                    break
    finally:
        serve.stop()

    database = Database.for_data_dir(data)
    history = History(database)
    [conversation] = history.conversations("shop")
    user, answer = history.messages(conversation.id)
    assert (user.role, user.content) == ("user", "Tell me everything")
    assert answer.role == "assistant" and answer.extra["streaming"] is True
    assert answer.content and REPLY.startswith(answer.content) and len(answer.content) < len(REPLY)
    assert answer_content(answer.content, answer.extra).endswith("⚠️ *This answer did not finish.*")

    serve.start()
    try:
        with httpx.stream("POST", f"{serve.url}/widget/shop/messages", json={"message": "Again"},
                          headers=headers, timeout=60) as stream:
            assert '"type": "done"' in "".join(stream.iter_lines())
    finally:
        serve.stop()
    stored = history.messages(conversation.id)
    assert [(m.role, m.extra.get("streaming")) for m in stored] == [
        ("user", None), ("assistant", True), ("user", None), ("assistant", False),
    ]
    assert stored[1].content == answer.content and stored[3].content == REPLY
    database.dispose()


def test_partial_answers_are_written_at_most_once_per_interval(tmp_path):
    database = Database.for_data_dir(tmp_path / "data")
    history = History(database)
    conversation = history.start("shop")
    row = history.add(conversation.id, "assistant", "", streaming=True)
    every_time = PartialAnswer(history, row.id, every=0)
    every_time.grew("Hello")
    assert history.messages(conversation.id)[0].content == "Hello"
    rarely = PartialAnswer(history, row.id, every=3600)
    rarely.grew("Hello there")
    [message] = history.messages(conversation.id)
    assert message.content == "Hello" and message.extra["streaming"] is True
    database.dispose()
