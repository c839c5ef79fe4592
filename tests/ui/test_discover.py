"""The home page: cards, featured first, search and the category filter."""

from __future__ import annotations

import pytest

from gptbuilder.catalog import Catalog, Shelf
from gptbuilder.store import Store
from gptbuilder.ui.discover import Card, card_html, shelves

SPECS = {
    "poet": "name: Haiku Poet\ndescription: Turns topics into haiku.\ncategory: content\ntags: [poetry]\n"
            "avatar: '🌸'\nauthor: Ann\ninstructions: x\nmodel: {provider: fake}\n"
            "tests:\n  - {ask: rain, expect: {contains: [rain]}}\n",
    "coder": "name: Code Helper\ndescription: Explains Python.\ncategory: coding\ninstructions: x\nmodel: {provider: fake}\n",
    "desk": "name: Help Desk\ndescription: Orders and returns.\ncategory: customer-service\ntags: [retail]\n"
            "instructions: x\nmodel: {provider: fake}\n",
}


@pytest.fixture
def cards_client(write_spec, gpts_dir, tmp_path, launch):
    for gpt_id, text in SPECS.items():
        write_spec(gpt_id, text)
    catalog = Catalog(categories=[Shelf(id="customer-service", title="Customer service"), Shelf(id="content", title="Content"),
                                  Shelf(id="coding", title="Coding")], featured=["coder"])
    _, client = launch(Store(gpts_dir, data_dir=tmp_path / "data", catalog=catalog), pass_rates={"poet": 0.75}.get)
    return client


def ids(client, query="", category="all"):
    return [c["id"] for c in client.predict(query, category, api_name="/gpts")]


def test_featured_first_then_by_shelf(cards_client):
    assert ids(cards_client) == ["coder", "desk", "poet"]


def test_search_covers_name_description_and_tags(cards_client):
    assert ids(cards_client, "haiku") == ["poet"]
    assert ids(cards_client, "python") == ["coder"]
    assert ids(cards_client, "RETAIL") == ["desk"]
    assert ids(cards_client, "orders retail") == ["desk"]
    assert ids(cards_client, "nothing-like-this") == []


def test_the_category_filter(cards_client):
    assert ids(cards_client, "", "content") == ["poet"]
    assert ids(cards_client, "haiku", "coding") == []
    with pytest.raises(Exception, match="unknown category 'poems'"):
        ids(cards_client, "", "poems")


def test_cards_carry_stats_author_and_the_eval_badge(cards_client):
    list(cards_client.submit("hi", "poet", api_name="/chat"))
    cards_client.predict("poet", 5, api_name="/rate")
    poet = cards_client.predict("poet", api_name="/gpt")
    assert (poet["conversations"], poet["rating"], poet["author"], poet["avatar"]) == (1, 5.0, "Ann", "🌸")
    assert poet["has_tests"] and poet["pass_rate"] == 0.75 and poet["shelf"] == "Content"
    coder = cards_client.predict("coder", api_name="/gpt")
    assert not coder["has_tests"] and coder["pass_rate"] is None


def _card(**changes):
    base = {"id": "x", "name": "X", "description": "", "category": "qa", "shelf": "Q&A", "avatar": "X", "author": "",
            "tags": (), "featured": False, "conversations": 0, "rating": None, "ratings": 0, "has_tests": False,
            "pass_rate": None}
    return Card(**{**base, **changes})


def test_card_html_escapes_every_spec_text():
    html = card_html(_card(name="<img src=x onerror=alert(1)>", description="<script>x()</script>", author='"><b>',
                           has_tests=True, pass_rate=0.5))
    assert "<script>" not in html and "<img" not in html and "<b>" not in html
    assert "&lt;script&gt;x()&lt;/script&gt;" in html and "tests 50%" in html


def test_shelves_put_featured_first_and_skip_empty_ones(gpts_dir):
    store = Store(gpts_dir)
    found = [_card(id="a", category="coding", featured=True), _card(id="b", category="qa")]
    assert [(title, [c.id for c in cards]) for title, cards in shelves(found, store)] == [("Featured", ["a"]), ("Q&A", ["b"])]


def test_cards_show_the_pass_rate_gptbuilder_test_stored_for_this_spec_version(write_spec, gpts_dir, tmp_path, launch):
    from gptbuilder.testing import run_tests

    write_spec("poet", "name: Poet\ninstructions: x\nmodel: {provider: fake}\ntests:\n"
                       "  - {ask: rain, expect: {contains: [rain]}}\n  - {ask: sun, expect: {contains: [snow]}}\n")
    store = Store(gpts_dir, data_dir=tmp_path / "data")
    _, client = launch(store)
    assert client.predict("poet", api_name="/gpt")["pass_rate"] is None  # never tested
    run_tests(store, data_dir=tmp_path / "data")
    assert client.predict("poet", api_name="/gpt")["pass_rate"] == 0.5
    write_spec("poet", (gpts_dir / "poet.yaml").read_text().replace("name: Poet", "name: Poet 2"))
    assert client.predict("poet", api_name="/gpt")["pass_rate"] is None  # results of an older version do not count
