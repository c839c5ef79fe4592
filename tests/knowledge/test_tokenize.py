"""BM25 terms: stemming, accent folding, identifiers kept whole and split, CJK bigrams; the fusions."""

from __future__ import annotations

import pytest

from gptbuilder.knowledge.index import LEGACY_FUSION, Fusion
from gptbuilder.knowledge.tokenize import legacy_terms, terms


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Refunds are refunded", ["refund", "are", "refund"]),  # stems meet
        ("Café RÉSUMÉ", ["cafe", "resum"]),  # accents and case folded, then stemmed
        ("ｆｕｌｌｗｉｄｔｈ", ["fullwidth"]),  # compatibility forms unified
        ("dict.setdefault", ["dict.setdefault", "dict", "setdefault"]),  # dotted name kept and split
        ("max_line_length", ["max_line_length", "max", "line", "length"]),
        ("parseHTTPResponse", ["parsehttpresponse", "pars", "http", "respons"]),  # camelCase split
        ("__enter__", ["enter"]),
        ("--max-depth=3", ["max-depth", "max", "depth", "3"]),
        ("a 8 x", ["8"]),  # single letters dropped, numbers kept
        ("生日蛋糕多少钱", ["生日", "日蛋", "蛋糕", "糕多", "多少", "少钱"]),  # CJK as overlapping bigrams
        ("茶", ["茶"]),  # a lone character stays itself
        ("8寸蛋糕", ["8", "寸蛋", "蛋糕"]),
        ("ケーキの値段", ["ケー", "ーキ", "キの", "の値", "値段"]),
    ],
)
def test_terms(text: str, expected: list[str]) -> None:
    assert terms(text) == expected


def test_a_chinese_query_shares_terms_with_the_passage_that_answers_it() -> None:
    passage = terms("6寸蛋糕适合4至6人，售价168元；8寸适合8至10人，售价238元。")
    assert {"蛋糕", "售价"} <= set(terms("8个人吃的蛋糕售价多少？")) & set(passage)
    assert legacy_terms("8个人吃的蛋糕多少钱？") == ["8个人吃的蛋糕多少钱"]  # why BM25 found nothing before


RANKED = {
    "bm25": [("a", 12.0), ("b", 2.0), ("c", 1.0)],
    "dense": [("b", 0.61), ("c", 0.60), ("d", 0.20)],
}


def test_rrf_counts_ranks_only() -> None:
    fused = dict(LEGACY_FUSION.fuse(RANKED))
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["a"] == pytest.approx(1 / 61)
    assert [i for i, _ in LEGACY_FUSION.fuse(RANKED)][:2] == ["b", "c"]  # a far-ahead BM25 hit is not rewarded


def test_minmax_keeps_how_far_ahead_a_hit_is() -> None:
    fusion = Fusion("minmax", bm25=0.5, dense=0.5)
    fused = dict(fusion.fuse(RANKED))
    assert fused["a"] == pytest.approx(0.5)  # top of BM25, missing from dense (counts as its lowest: 0)
    assert fused["b"] == pytest.approx(0.5 * (2 - 1) / (12 - 1) + 0.5 * 1.0)
    assert fused["d"] == pytest.approx(0.0)
    assert fusion.fuse({"bm25": [], "dense": [("x", 0.3)]}) == [("x", 0.5)]  # one candidate scales to 1, times its weight


def test_zscore_fills_a_missing_chunk_with_the_lists_lowest() -> None:
    fused = dict(Fusion("zscore", bm25=1.0, dense=0.0).fuse(RANKED))
    assert fused["d"] == pytest.approx(min(v for k, v in fused.items() if k != "d"))
    assert max(fused, key=fused.__getitem__) == "a"
