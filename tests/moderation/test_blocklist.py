"""The blocklist check: whole words and phrases, any case, any spacing."""

from __future__ import annotations

from gptbuilder.moderation import Blocklist


def test_words_are_found_whole_and_in_any_case():
    check = Blocklist(["ass", "idiot"])
    assert check.check("a classic class assignment") is None
    found = check.check("You ASS!")
    assert found is not None and (found.check, found.category, found.start, found.end) == ("blocklist", "blocklist", 4, 7)
    assert [f.start for f in check.findings("idiot, idiot")] == [0, 7]


def test_phrases_match_across_any_white_space_and_the_longest_wins():
    check = Blocklist(["kill", "kill yourself"])
    found = check.check("just KILL \n yourself")
    assert found is not None and found.end == len("just KILL \n yourself")


def test_phrases_in_scripts_without_spaces_are_found_inside_words():
    assert Blocklist(["傻瓜"]).check("你是傻瓜吗") is not None


def test_phrases_ending_in_punctuation_and_an_empty_list():
    assert Blocklist(["f***"]).check("what the f*** is this") is not None
    empty = Blocklist([" ", ""])
    assert empty.check("anything") is None and empty.longest == 0


def test_longest_is_the_longest_phrase():
    assert Blocklist(["a", "kill yourself"]).longest == len("kill yourself")
