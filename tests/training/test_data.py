"""Training data: reading, deduplication, the split, chat rendering with assistant-only labels, blocks."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from gptbuilder.training.data import IGNORE, DataError, Document, chat_records, dedupe, encode, paragraphs, prepare, read_paths, split

from .conftest import FIXTURES


def test_text_is_cut_into_paragraphs_and_blank_ones_are_dropped():
    corpus = paragraphs("One.\n\nTwo.\n\n   \n\nThree.", "a.txt")
    assert [d.text for d in corpus.documents] == ["One.", "Two.", "Three."]


def test_exact_duplicates_are_dropped_and_counted():
    dropped: Counter[str] = Counter()
    docs = [Document("a", text="same"), Document("b", text="other"), Document("c", text="same")]
    assert [d.source for d in dedupe(docs, dropped)] == ["a", "b"]
    assert dropped == {"exact duplicate": 1}


def test_the_split_is_deterministic_order_free_and_never_leaves_a_side_empty():
    docs = [Document("x", text=f"paragraph {i}") for i in range(40)]
    train, validation = split(docs)
    _, again_validation = split(list(reversed(docs)))
    assert {d.key for d in validation} == {d.key for d in again_validation}
    assert {d.key for d in train} | {d.key for d in validation} == {d.key for d in docs}
    two = docs[:2]
    train, validation = split(two)
    assert len(train) == 1 and len(validation) == 1


def test_a_line_that_is_not_json_names_its_line():
    text = '{"messages": [{"role": "assistant", "content": "hi"}]}\n{oops\n'
    with pytest.raises(DataError, match=r"c.jsonl:2: is not JSON .*--skip-bad"):
        chat_records(text, "c.jsonl", skip_bad=False)


def test_a_record_without_messages_names_its_line_and_skip_bad_continues():
    good = json.dumps({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]})
    text = f'{good}\n\n{{"text": "no messages"}}\n{good}\n'
    with pytest.raises(DataError, match=r"c.jsonl:3: lacks \"messages\""):
        chat_records(text, "c.jsonl", skip_bad=False)
    corpus = chat_records(text, "c.jsonl", skip_bad=True)
    assert [d.source for d in corpus.documents] == ["c.jsonl:1", "c.jsonl:4"]
    assert corpus.dropped == {"bad JSONL line": 1}
    assert corpus.notes == ['c.jsonl:3: lacks "messages" (each line must be {"messages": [{"role": ..., "content": ...}, ...]})']


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "message 1 must be"),
        ({"messages": [{"role": "user", "content": "only a question"}]}, "no assistant message"),
    ],
)
def test_malformed_conversations_are_refused(record, problem):
    with pytest.raises(DataError, match=problem):
        chat_records(json.dumps(record), "c.jsonl", skip_bad=False)


def test_chats_are_trained_on_assistant_turns_only(tokenizer):
    corpus = read_paths([FIXTURES / "chats.jsonl"])
    ids, labels = encode(corpus.documents[1], tokenizer)
    assert len(ids) == len(labels)
    rendered = tokenizer.decode(ids)
    assert rendered.startswith("<|im_start|>system\nYou answer for Brindlewood")
    trained = tokenizer.decode([i for i, label in zip(ids, labels) if label != IGNORE])
    assert trained == "Ninety-five crowns.<|im_end|>\nThirty crowns.<|im_end|>\n"


def test_blocks_have_the_block_size_and_padding_is_not_trained(tokenizer):
    prepared = prepare(read_paths([FIXTURES / "shop.md"]), tokenizer, block_size=64)
    assert prepared.stats.problem is None
    for block in prepared.train + prepared.validation:
        assert len(block["input_ids"]) == len(block["labels"]) == len(block["attention_mask"]) == 64
    last = prepared.train[-1]
    padded = [label for label, mask in zip(last["labels"], last["attention_mask"]) if mask == 0]
    assert all(label == IGNORE for label in padded)
    stats = prepared.stats
    assert stats.train_blocks == len(prepared.train) and stats.train_tokens > stats.validation_tokens > 0
    assert stats.kept == stats.train_documents + stats.validation_documents == stats.documents


def test_a_tiny_dataset_says_what_the_minimum_is(tmp_path, tokenizer):
    (tmp_path / "tiny.txt").write_text("Only one short paragraph.\n\nOnly one short paragraph.\n", encoding="utf-8")
    prepared = prepare(read_paths([tmp_path / "tiny.txt"]), tokenizer, block_size=256)
    assert prepared.stats.dropped == {"exact duplicate": 1}
    with pytest.raises(DataError, match=r"too little data: 1 distinct document.*at least 2 distinct documents.*256 trainable tokens"):
        prepared.require_enough()


def test_missing_unsupported_and_non_utf8_files_are_named(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_paths([tmp_path / "nope.txt"])
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"unsupported type '\.csv'"):
        read_paths([tmp_path / "data.csv"])
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_paths([tmp_path / "latin.txt"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \.txt, \.md or \.jsonl file"):
        read_paths([tmp_path / "empty"])
