"""Source sentences and the extractive choice among them, in English and in Chinese."""

from __future__ import annotations

from gptbuilder.knowledge.extract import extract, source_sentences, words
from gptbuilder.knowledge.retriever import Source

SHOP_ZH = """# 晨光面包坊

## 生日蛋糕价格
6寸蛋糕适合4至6人，售价168元；10寸适合12至16人，售价328元。加写祝福语免费。

## 营业时间
周一至周五早上7:30开门，晚上20:00打烊。
"""

SHOP_EN = """# Prices

A 6-inch cake serves 6 and costs £24.
A 10-inch cake
serves 16 and costs £42.
"""


def test_chinese_sentences_split_without_spaces_after_their_stops() -> None:
    texts = [s.text for s in source_sentences([Source(1, "shop.md", SHOP_ZH, {}, 1.0)])]
    assert texts == [
        "6寸蛋糕适合4至6人，售价168元；", "10寸适合12至16人，售价328元。", "加写祝福语免费。", "周一至周五早上7:30开门，晚上20:00打烊。"
    ]


def test_chinese_words_are_bigrams_not_single_characters() -> None:
    assert {"蛋糕", "价格"} <= words("蛋糕价格")
    assert "蛋" not in words("蛋糕价格")


def test_extract_picks_the_sentence_that_answers_in_each_language() -> None:
    zh = extract("16人份的蛋糕多少钱？", [Source(1, "shop.md", SHOP_ZH, {}, 1.0)], most=1)
    assert [s.cited() for s in zh] == ["10寸适合12至16人，售价328元。 [1]"]
    en = extract("How much is a cake for 16 people?", [Source(1, "shop.md", SHOP_EN, {}, 1.0)], most=1)
    assert [s.text for s in en] == ["A 10-inch cake serves 16 and costs £42."]
