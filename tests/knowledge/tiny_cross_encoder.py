"""A real, tiny cross-encoder saved to a folder: a one-layer BERT whose weights are set, not trained, so its score is
known in advance — it rises with the share of the pair's words that are "marker" words.

No cross-encoder or NLI weights ship on PyPI, and tests never download; this model goes through exactly the
path a real one does (config.json, tokenizer, safetensors, sentence-transformers' CrossEncoder), so the
plumbing is tested for real, while what it scores stays a toy.

How the weights do it: every token's embedding is a fixed base direction, and a marker word's adds a second
direction. Attention with zero queries and keys averages all tokens, so [CLS] carries the markers' share;
layer norms keep the ratio of the two directions, the pooler reads it, and the classifier maps it to a logit.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

HIDDEN = 8
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tiny_cross_encoder(
    folder: Path,
    markers: Iterable[str],
    *,
    words: Iterable[str] = (),
    labels: tuple[str, ...] = ("LABEL_0",),
    entails: int = 0,
    scale: float = 12.0,
    offset: float = -3.0,
) -> Path:
    """Save the model to ``folder``: label ``entails`` gets logit scale·(markers' share) + offset, the others 0."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    markers = [m.lower() for m in markers]
    vocab = SPECIAL + sorted(set(markers) | {w.lower() for w in words} - set(SPECIAL))
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = BertTokenizerFast(vocab={word: n for n, word in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=1, intermediate_size=4,
        max_position_embeddings=512, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={label: n for n, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
        for norm in (model.bert.embeddings.LayerNorm, model.bert.encoder.layer[0].attention.output.LayerNorm,
                     model.bert.encoder.layer[0].output.LayerNorm):
            norm.weight.fill_(1.0)
        embeddings = model.bert.embeddings.word_embeddings.weight
        embeddings[:, 2], embeddings[:, 3] = 1.0, -1.0  # the base direction every token has
        for word in markers:
            index = vocab.index(word)
            embeddings[index, 0], embeddings[index, 1] = 1.0, -1.0  # the marker direction
        attention = model.bert.encoder.layer[0].attention
        attention.self.value.weight.copy_(torch.eye(HIDDEN))
        attention.output.dense.weight.copy_(torch.eye(HIDDEN))
        model.bert.pooler.dense.weight[0, 0] = 1.0
        model.classifier.weight[entails, 0] = scale
        model.classifier.bias[entails] = offset
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
