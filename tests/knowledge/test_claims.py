"""Checkable claims: found in text, normalised so one fact matches however it is written, and checked against sources."""

from __future__ import annotations

import pytest

from gptbuilder.knowledge.claims import Evidence, claims, states


def kinds(text: str) -> list[tuple[str, str]]:
    return [(c.kind, c.value) for c in claims(text)]


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("£42", [("money", "GBP 42")]),
        ("42 pounds", [("money", "GBP 42")]),
        ("£42.00 each", [("money", "GBP 42")]),
        ("$3.50", [("money", "USD 3.5")]),
        ("GBP 1,299", [("money", "GBP 1299")]),
        ("a 20% deposit", [("percent", "20")]),
        ("open at 7am", [("time", "07:00")]),
        ("open at 7:00", [("time", "07:00")]),
        ("closes 7 p.m.", [("time", "19:00")]),
        ("until midnight", [("time", "00:00")]),
        ("on 3 March 2025", [("date", "03-03 2025")]),
        ("on March 3rd", [("date", "03-03")]),
        ("2025-03-03", [("date", "03-03 2025")]),
        ("within 30 days", [("duration", "30 day")]),
        ("within thirty days", [("duration", "30 day")]),
        ("a 30-day window", [("duration", "30 day")]),
        ("2 weeks", [("duration", "14 day")]),
        ("3 business days", [("duration", "3 business day")]),
        ("call 0161 496 0000", [("phone", "01614960000")]),
        ("mail Help@Shop.example.", [("email", "help@shop.example")]),
        ("see https://www.shop.example/returns/.", [("url", "shop.example/returns")]),
        ("for 16 people", [("number", "16")]),
        ("two different words", [("number", "2")]),
        ("one of them, two-factor", []),
        ("files up to 256MB", [("quantity", "256 mb")]),
        ("10 megabytes", [("quantity", "10 mb")]),
        ("weighs 2 kg, 30 cm long", [("quantity", "2 kg"), ("quantity", "30 cm")]),
        ("on 03/14/2026", [("date", "03/14 2026")]),
        ("on 3.4.2026", [("date", "03/04 2026")]),
        ("The Leeds shop is run by Anna Smith.", [("name", "leeds"), ("name", "anna smith")]),
    ],
)
def test_each_kind_is_found_and_normalised(written, expected):
    assert kinds(written) == expected


def test_markers_bullets_and_sentence_openers_are_not_claims():
    assert kinds("1. Returns are free [2].") == []
    assert kinds("Thanks! Monday is fine.") == []


def test_evidence_supports_the_same_fact_written_another_way():
    evidence = Evidence(["| Size | Price |\n|---|---|\n| 16 people | £42 |", "Open 7:00 to 19:00.", "Returns: 30 days."])
    assert evidence.unsupported("A cake for 16 people is 42 pounds [1].") == []
    assert evidence.unsupported("We open at 7am and close at 7pm.") == []
    assert evidence.unsupported("You have thirty days.") == []
    assert [c.text for c in evidence.unsupported("It costs £2.40 and takes 4 weeks.")] == ["£2.40", "4 weeks"]


def test_a_bare_number_supports_an_amount_only_where_the_sources_write_no_amounts():
    assert Evidence(["Price (GBP): 42"]).unsupported("It costs £42.") == []
    assert [c.text for c in Evidence(["8 people £28", "28 days"]).unsupported("It costs £42.")] == ["£42"]
    assert Evidence(["8 people £28", "Orders 42 days ahead"]).unsupported("It costs £42.") != []


def test_a_percentage_a_size_and_a_count_need_the_same_in_the_sources():
    evidence = Evidence(["Pay in 3 instalments.", "Uploads of at most 10 MB.", "Address customers with Sie, never du."])
    assert [c.text for c in evidence.unsupported("Special offers: 3% off.")] == ["3%"]
    assert evidence.unsupported("Uploads may be 10MB.") == []
    assert [c.text for c in evidence.unsupported("Uploads may be 10 GB, or 256KB each.")] == ["10 GB", "256KB"]
    assert [c.text for c in evidence.unsupported("Sie and du are two different words.")] == ["two"]
    assert Evidence(["Two sizes."]).unsupported("There are two sizes.") == []


def test_a_numeric_date_matches_in_either_order():
    evidence = Evidence(["Closed on 4 March 2026."])
    assert evidence.unsupported("Closed on 04/03/2026.") == []
    assert evidence.unsupported("Closed on 03/04/2026.") == []
    assert [c.text for c in evidence.unsupported("Closed on 03/14/2026.")] == ["03/14/2026"]


def test_names_must_appear_in_the_sources():
    evidence = Evidence(["Our shop in Leeds is run by Anna Smith."])
    assert evidence.unsupported("Visit us in Leeds, ask for Anna Smith.") == []
    assert [c.text for c in evidence.unsupported("Visit our Manchester branch.")] == ["Manchester"]


def test_states_a_fact_however_it_is_written():
    assert states("A cake for 16 is 42 pounds.", "£42")
    assert states("You have thirty days to return it.", "30 days")
    assert states("Doors open at 7:00.", "7am")
    assert not states("It costs £24.", "£42")
    assert states("Ask at the Front Desk.", "front desk") and not states("Ask us.", "front desk")


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("售价328元", ("money", "CNY 328")),
        ("满200块免费送货", ("money", "CNY 200")),
        ("三十元", ("money", "CNY 30")),
        ("提前两天预订", ("duration", "2 day")),
        ("至少提前48小时", ("duration", "48 hour")),
        ("积分有效期为一年", ("duration", "1 year")),
        ("晚上9点打烊", ("time", "21:00")),
        ("早上七点半开门", ("time", "07:30")),
        ("早上7:30开门", ("time", "07:30")),
        ("定金50%", ("percent", "50")),
        ("电话0571-8888-6666", ("phone", "057188886666")),
    ],
)
def test_chinese_amounts_durations_and_times_are_claims(written: str, expected: tuple[str, str]) -> None:
    assert expected in [(c.kind, c.value) for c in claims(written)]


def test_chinese_years_and_idioms_are_not_durations_or_times() -> None:
    found = [(c.kind, c.value) for c in claims("本店2012年开业，请多吃一点。")]
    assert ("number", "2012") in found
    assert all(kind not in ("duration", "time") for kind, _ in found)


def test_chinese_sources_support_the_same_fact_written_another_way() -> None:
    evidence = Evidence(["周一至周五早上7:30开门，晚上21:00打烊；10寸适合12至16人，售价328元。"])
    assert evidence.unsupported("16人的蛋糕328元，晚上九点关门，早上七点半开门。") == []
    assert [c.value for c in evidence.unsupported("16人的蛋糕只要2.40元。")] == ["CNY 2.4"]


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("**Check the return window**: it is open.", []),  # a bold lead-in opens its sentence
        ("## Ask Acme", ["acme"]),  # so does a heading, whose first word is no name
        ("> Note: fine", []),
        ("Don't wait, we can't.", []),  # a contraction is no name
        ("Ask at Acme's desk in Leeds.", ["acme", "leeds"]),  # a possessive still is
    ],
)
def test_markdown_openers_and_contractions_are_not_names(text, names):
    assert [c.value for c in claims(text) if c.kind == "name"] == names
