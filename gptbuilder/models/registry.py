"""Model providers, found through the `gptbuilder.models` entry-point group like any plugin's."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelError, did_you_mean

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import BaseMessage

    from ..spec import ModelConfig

GROUP = "gptbuilder.models"
DEFAULT_MAX_TOKENS = 512
DEFAULT_CONTEXT_WINDOW = 8192

_lock = threading.Lock()
_registered: dict[str, Provider] = {}
_loaded: dict[str, Provider] = {}


class Provider:
    """A model backend: builds a langchain-core chat model from a spec's `model:` section.

    Third-party packages subclass this and expose an instance under the
    `gptbuilder.models` entry-point group; the entry-point name is what specs write
    in `model.provider`.
    """

    name: str = ""

    def create(self, config: ModelConfig, *, base_dir: Path) -> BaseChatModel:
        """Return a ready chat model for this config (paths relative to ``base_dir``)."""
        raise NotImplementedError

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """Cheap checks for `gptbuilder validate`: (field, message) pairs; loads nothing."""
        return []

    def ensure_valid(self, config: ModelConfig, *, base_dir: Path) -> None:
        """Raise ModelError for the first problem `check` finds."""
        for field, message in self.check(config, base_dir=base_dir):
            raise ModelError(f"model.{field}: {message}")


def option_problems(options: dict[str, Any], known: set[str], provider: str) -> list[tuple[str, str]]:
    """A (field, message) problem when `model.options` holds keys the provider does not know."""
    unknown = sorted(set(options) - known)
    if not unknown:
        return []
    return [("options", f"unknown option(s) for provider {provider}: {', '.join(unknown)} (known: {', '.join(sorted(known))})")]


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def provider_names() -> list[str]:
    """Names of every installed or registered provider, sorted."""
    return sorted({*_entry_points(), *_registered})


def register_provider(provider: Provider, name: str | None = None) -> None:
    """Add a provider at run time (tests, notebooks); entry points are the way for packages."""
    with _lock:
        _registered[name or provider.name] = provider


def unregister_provider(name: str) -> None:
    """Remove a provider added with `register_provider`."""
    with _lock:
        _registered.pop(name, None)


def get_provider(name: str) -> Provider:
    """The provider registered under ``name``; ModelError with a suggestion when there is none."""
    with _lock:
        if name in _registered:
            return _registered[name]
        if name in _loaded:
            return _loaded[name]
    points = _entry_points()
    if name not in points:
        known = provider_names()
        raise ModelError(f"unknown model provider {name!r}{did_you_mean(name, known)} (installed: {', '.join(known)})")
    try:
        provider = points[name].load()
    except Exception as exc:  # a broken plugin must not take validation down with a traceback
        raise ModelError(
            f"model provider {name!r} ({points[name].value}) cannot be loaded: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(provider, type):
        provider = provider()
    if not isinstance(provider, Provider):
        raise ModelError(f"entry point {points[name].value!r} for provider {name!r} is not a gptbuilder Provider")
    with _lock:
        _loaded[name] = provider
    return provider


def create_model(config: ModelConfig, *, base_dir: Path) -> BaseChatModel:
    """Build the chat model a spec's `model:` section asks for."""
    return get_provider(config.provider).create(config, base_dir=base_dir)


def context_window_of(model: Any, config: ModelConfig) -> int:
    """Tokens the model can attend to: the spec's value, else the backend's, else a safe default."""
    return config.context_window or getattr(model, "context_window", None) or DEFAULT_CONTEXT_WINDOW


def count_tokens(model: Any, messages: Sequence[BaseMessage]) -> int:
    """Tokens the messages take for this model: its own tokenizer when it has one, else an estimate."""
    counter = getattr(model, "count_message_tokens", None)
    if counter is not None:
        return counter(messages)
    from langchain_core.messages.utils import count_tokens_approximately

    return count_tokens_approximately(messages)
