"""`POST /v1/embeddings`: the knowledge embedders in OpenAI's wire format (a GPT's own, or the store's default)."""

from __future__ import annotations

import base64
import re
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import Field
from starlette.concurrency import run_in_threadpool

from ..errors import UnknownGPTError
from ..events import Usage
from ..knowledge.embeddings import DEFAULT_EMBEDDING_MODEL, Embedder, FakeEmbedder, SentenceTransformerEmbedder, get_embedder
from .auth import Caller
from .errors import APIError
from .openai_api import authorized
from .schemas import RequestBody
from .state import ServerState

router = APIRouter(prefix="/v1")

MAX_INPUTS = 2048  # OpenAI's own cap per request
MAX_INPUT_CHARS = 50_000
# Names that mean "the store's default embedder", whatever the case (the hub id included).
DEFAULT_NAMES = {DEFAULT_EMBEDDING_MODEL.lower(), f"sentence-transformers/{DEFAULT_EMBEDDING_MODEL.lower()}"}
TOKEN_ARRAYS = (
    "token arrays are not accepted: their ids belong to the client's tokenizer, not this model's; send the text "
    "(LangChain's OpenAIEmbeddings: check_embedding_ctx_length=False)"
)


class EmbeddingRequest(RequestBody):
    """`POST /v1/embeddings`."""

    model: str = Field(min_length=1, max_length=200)
    input: str | list[Any]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = Field(None, max_length=256)

    def texts(self) -> list[str]:
        """The inputs as a list of texts; 400 naming `input` for token arrays, empty texts or too many."""
        items = [self.input] if isinstance(self.input, str) else self.input
        if not items:
            raise APIError(400, "input is empty; send a text or a list of texts", param="input")
        if len(items) > MAX_INPUTS:
            raise APIError(400, f"{len(items):,} inputs sent; at most {MAX_INPUTS:,} per request", param="input", code="too_many_inputs")
        for index, item in enumerate(items):
            where = "input" if isinstance(self.input, str) else f"input[{index}]"
            if isinstance(item, int | list) and not isinstance(item, bool):
                raise APIError(400, TOKEN_ARRAYS, param="input", code="token_arrays_unsupported")
            if not isinstance(item, str):
                raise APIError(400, f"{where} is a {type(item).__name__}; send text", param=where)
            if not item.strip():
                raise APIError(400, f"{where} is empty; every input needs some text", param=where)
            if len(item) > MAX_INPUT_CHARS:
                raise APIError(400, f"{where} is {len(item):,} characters; at most {MAX_INPUT_CHARS:,}", param=where, code="input_too_long")
        return list(items)


@dataclass(frozen=True)
class _Model:
    """The embedder a request names, and the name its usage is recorded under."""

    name: str
    embedder: Embedder


def _resolve(st: ServerState, name: str) -> _Model:
    """A GPT id (its knowledge's embedder) or the default model's name; 404 with did-you-mean otherwise."""
    if name.lower() in DEFAULT_NAMES:
        return _Model(DEFAULT_EMBEDDING_MODEL, get_embedder(None))
    try:
        loaded = st.store.get(name)
    except UnknownGPTError as exc:
        hint = str(exc).removeprefix(f"unknown GPT {exc.gpt_id!r}")
        raise APIError(
            404,
            f"The model {name!r} does not exist{hint}; embeddings take a GPT id or {DEFAULT_EMBEDDING_MODEL!r}",
            code="model_not_found",
            param="model",
        ) from None
    st.limiter.check_gpt(loaded.id, loaded.spec.limits)
    knowledge = loaded.spec.knowledge
    base_dir: Path = loaded.path.parent
    return _Model(loaded.id, get_embedder(knowledge.embedding_model if knowledge else None, base_dir=base_dir))


def dimension(embedder: Embedder) -> int:
    """How many numbers the embedder's vectors hold (loads a real model's weights)."""
    if isinstance(embedder, FakeEmbedder):
        return embedder.dimension
    if isinstance(embedder, SentenceTransformerEmbedder):
        model = embedder.model
        size = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(size())
    return len(embedder.embed(["dimension probe"])[0])  # pragma: no cover - a third-party embedder


def token_counts(embedder: Embedder, texts: Sequence[str]) -> tuple[list[int], int | None]:
    """Each text's tokens with the embedder's own tokenizer, and how many tokens the model reads (None: no limit)."""
    if isinstance(embedder, SentenceTransformerEmbedder):
        model = embedder.model
        tokenizer = model.tokenizer
        specials = len(tokenizer("")["input_ids"])  # [CLS] and [SEP]: counted against the limit, not as usage
        ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
        return [len(i) for i in ids], int(model.max_seq_length) - specials
    return [len(re.findall(r"\w+", text)) for text in texts], None  # the fake embedder reads words


def _embed(st: ServerState, body: EmbeddingRequest, texts: list[str]) -> tuple[_Model, list[list[float]], int]:
    """Resolve, check and embed (blocking: tokenizing and encoding run in a worker thread)."""
    model = _resolve(st, body.model)
    if body.dimensions is not None:
        size = dimension(model.embedder)
        if body.dimensions != size:
            raise APIError(
                400,
                f"{model.name} makes {size}-dimensional vectors and cannot shorten them; omit 'dimensions' or send {size}",
                param="dimensions",
                code="dimensions_unsupported",
            )
    counts, limit = token_counts(model.embedder, texts)
    if limit is not None:
        for index, count in enumerate(counts):
            if count > limit:
                where = "input" if isinstance(body.input, str) else f"input[{index}]"
                raise APIError(
                    400,
                    f"{where} is {count:,} tokens; {model.name} reads at most {limit:,}, so the rest would be ignored: split it",
                    param=where,
                    code="input_too_long",
                )
    return model, model.embedder.embed(texts), sum(counts)


def encode(vector: Sequence[float], encoding_format: str) -> list[float] | str:
    """A vector as OpenAI sends it: floats, or base64 of little-endian float32s."""
    if encoding_format == "base64":
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
    return list(vector)


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, request: Request, caller: Caller = Depends(authorized)) -> Any:
    """Embed texts with a GPT's knowledge embedder (`model`: its id) or the default all-MiniLM-L6-v2."""
    st: ServerState = request.app.state.gptbuilder
    texts = body.texts()
    st.queue.admit()  # embedding is model work: it shares the queue's cap (503 when full)
    try:
        model, vectors, tokens = await run_in_threadpool(_embed, st, body, texts)
    finally:
        st.queue.release()
    usage = Usage(prompt_tokens=tokens)
    st.metrics.tokens.labels(model.name, "prompt").inc(tokens)
    st.ledger.add(caller.key_id, model.name, usage)
    data = [{"object": "embedding", "index": i, "embedding": encode(v, body.encoding_format)} for i, v in enumerate(vectors)]
    return JSONResponse(
        {"object": "list", "data": data, "model": model.name, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    )
