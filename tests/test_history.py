import pytest

from gptbuilder.db import Database
from gptbuilder.errors import InputError
from gptbuilder.history import History


@pytest.fixture
def history(tmp_path):
    return History(Database.for_data_dir(tmp_path))


def test_conversation_round_trip_titles_from_first_user_message(history):
    conv = history.start("assistant")
    history.add(conv.id, "user", "  Where is   my order A1001?  ")
    answer = history.add(conv.id, "assistant", "It shipped.", citations=[{"number": 1, "source": "faq.md"}])
    assert history.get(conv.id).title == "Where is my order A1001?"
    assert [(m.role, m.content) for m in history.messages(conv.id)] == [
        ("user", "  Where is   my order A1001?  "),
        ("assistant", "It shipped."),
    ]
    assert history.messages(conv.id)[1].extra == {"citations": [{"number": 1, "source": "faq.md"}]}
    history.update(answer.id, "It shipped yesterday.", error="stopped")
    assert history.messages(conv.id)[1].content == "It shipped yesterday."
    assert history.messages(conv.id)[1].extra["error"] == "stopped"


def test_list_rename_delete(history):
    first = history.start("a")
    second = history.start("b", owner="tab-1")
    history.add(first.id, "user", "later")  # touching a conversation moves it to the top
    assert [c.id for c in history.conversations()] == [first.id, second.id]
    assert [c.id for c in history.conversations("b")] == [second.id]
    assert [c.id for c in history.conversations(owner="tab-1")] == [second.id]
    history.rename(second.id, "  Shipping   question ")
    assert history.get(second.id).title == "Shipping question"
    history.delete(first.id)
    assert [c.id for c in history.conversations()] == [second.id]
    with pytest.raises(InputError):
        history.messages(first.id) or history.get(first.id)


@pytest.mark.parametrize("title", ["", "   "])
def test_rename_refuses_empty_title(history, title):
    conv = history.start("a", title="kept")
    with pytest.raises(InputError, match="empty"):
        history.rename(conv.id, title)
    assert history.get(conv.id).title == "kept"


def test_unknown_conversation_is_a_clear_error(history):
    with pytest.raises(InputError, match="no conversation"):
        history.add("nope", "user", "hi")


def test_feedback_and_ratings_feed_stats(history):
    conv = history.start("a")
    user = history.add(conv.id, "user", "hi")
    answer = history.add(conv.id, "assistant", "hello")
    history.feedback(answer.id, 1)
    history.feedback(answer.id, -1, "too short")  # replaces the earlier thumbs up
    history.rate("a", 4, owner="u1")
    history.rate("a", 2, owner="u2")
    history.rate("a", 5, owner="u2")  # latest rating per user counts
    stats = history.stats()["a"]
    assert (stats.conversations, stats.rating, stats.ratings) == (1, 4.5, 2)
    assert (stats.thumbs_up, stats.thumbs_down) == (0, 1)
    with pytest.raises(InputError):
        history.feedback(user.id, 1)  # only answers get feedback
    history.delete(conv.id)
    assert history.stats()["a"].thumbs_down == 0


@pytest.mark.parametrize("stars", [0, 6, 3.5, True, "5"])
def test_rating_must_be_one_to_five(history, stars):
    with pytest.raises(InputError, match="1 to 5"):
        history.rate("a", stars)


@pytest.mark.parametrize("value,comment", [(0, ""), (2, ""), (1, "x" * 2001)])
def test_bad_feedback_is_refused(history, value, comment):
    conv = history.start("a")
    answer = history.add(conv.id, "assistant", "hello")
    with pytest.raises(InputError):
        history.feedback(answer.id, value, comment)


def test_database_url_from_environment(monkeypatch, tmp_path):
    from gptbuilder.db import database_url

    monkeypatch.delenv("GPTBUILDER_DATABASE_URL", raising=False)  # CI's PostgreSQL run sets it for every test
    assert database_url(tmp_path) == f"sqlite:///{tmp_path / 'gptbuilder.db'}"
    monkeypatch.setenv("GPTBUILDER_DATABASE_URL", "postgresql://u@localhost/db")
    assert database_url(tmp_path) == "postgresql+psycopg://u@localhost/db"


def test_an_owners_own_rating_is_remembered(history):
    assert history.rating("poet", owner="ann") is None
    history.rate("poet", 4, owner="ann")
    history.rate("poet", 2, owner="bob")
    history.rate("poet", 5, owner="ann")
    assert (history.rating("poet", owner="ann"), history.rating("poet", owner="bob")) == (5, 2)
    assert history.rating("other", owner="ann") is None


# ----- tool calls held for approval ------------------------------------------------------------------

from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from datetime import UTC, datetime, timedelta  # noqa: E402

from gptbuilder.history import DatabasePendingCalls, PendingCallRow  # noqa: E402
from gptbuilder.pending import MemoryPendingCalls  # noqa: E402

CANCEL = {"id": "c1", "name": "cancelOrder", "args": {"order_id": "A1002"}, "type": "tool_call"}
LOOK = {"id": "c2", "name": "getOrder", "args": {"order_id": "A1001"}}


@pytest.fixture(params=["database", "memory"])
def held(request, tmp_path):
    if request.param == "memory":
        return MemoryPendingCalls()
    return DatabasePendingCalls(Database.for_data_dir(tmp_path))


def test_held_calls_are_taken_once_by_their_owner_only(held):
    held.hold("key:a", "shop", [CANCEL, LOOK])
    assert held.take("key:b", "shop", ["c1"]) == [] and held.take("key:a", "other", ["c1"]) == []
    assert held.take("key:a", "shop", ["c1", "zz"]) == [{"id": "c1", "name": "cancelOrder", "args": {"order_id": "A1002"}}]
    assert held.take("key:a", "shop", ["c1"]) == [], "taken: it cannot run twice"
    assert held.take("key:a", "shop", ["c2"]) == [{"id": "c2", "name": "getOrder", "args": {"order_id": "A1001"}}]
    assert held.take("key:a", "shop", []) == []


def test_holding_a_call_again_replaces_it(held):
    held.hold("key:a", "shop", [CANCEL])
    held.hold("key:a", "shop", [{**CANCEL, "args": {"order_id": "B9"}}])
    assert held.take("key:a", "shop", ["c1"])[0]["args"] == {"order_id": "B9"}


def test_a_call_held_in_the_database_is_taken_by_one_of_many_concurrent_requests(tmp_path):
    db = Database.for_data_dir(tmp_path)
    DatabasePendingCalls(db).hold("key:a", "shop", [CANCEL])
    stores = [DatabasePendingCalls(db) for _ in range(8)]  # as many replicas racing to approve it
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda store: store.take("key:a", "shop", ["c1"]), stores))
    assert sum(len(r) for r in results) == 1


def test_expired_held_calls_are_not_returned_and_are_cleared(tmp_path):
    db = Database.for_data_dir(tmp_path)
    store = DatabasePendingCalls(db)
    store.hold("key:a", "shop", [CANCEL])
    with db.session() as session:
        session.query(PendingCallRow).update({"created_at": datetime.now(UTC) - timedelta(days=2)})
    assert store.take("key:a", "shop", ["c1"]) == []
    store.hold("key:a", "shop", [LOOK])  # holding also sweeps what expired
    with db.session() as session:
        assert [row.call_id for row in session.query(PendingCallRow)] == ["c2"]
