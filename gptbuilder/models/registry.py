"""Model providers, found through the `gptbuilder.models` entry-point group like any plugin's."""

from __future__ import annotations

import threading
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ModelError, did_you_mean

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from ..spec import ModelConfig

GROUP = "gptbuilder.models"

_lock = threading.Lock()
_registered: dict[str, Provider] = {}
_loaded: dict[str, Provider] = {}


class Provider:
    """A model backend: builds a langchain-core chat model from a spec's `model:` section.

    Third-party packages subclass this and expose an instance under the
    `gptbuilder.models` entry-point group; the entry-point name is what specs write
    in `model.provider`. The models it creates implement `gptbuilder.models.base.ChatBackend`.
    """

    name: str = ""

    def create(self, config: ModelConfig, *, base_dir: Path) -> BaseChatModel:
        """Return a ready chat model, a ChatBackend, for this config (paths relative to ``base_dir``)."""
        raise NotImplementedError

    def check(self, config: ModelConfig, *, base_dir: Path) -> list[tuple[str, str]]:
        """Cheap checks for `gptbuilder validate`: (field, message) pairs, the field relative to `model.`
        (`"name"`, `"options.device"`); loads nothing. `options.option_problems` checks `model.options`."""
        return []

    def ensure_valid(self, config: ModelConfig, *, base_dir: Path) -> None:
        """Raise one ModelError naming every problem `check` finds."""
        problems = self.check(config, base_dir=base_dir)
        if problems:
            raise ModelError("; ".join(f"model.{field}: {message}" for field, message in problems))


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
    """Build the chat model a spec's `model:` section asks for; ModelError unless it is a ChatBackend."""
    from .base import is_chat_backend

    model = get_provider(config.provider).create(config, base_dir=base_dir)
    if not is_chat_backend(model):
        raise ModelError(
            f"provider {config.provider!r} built a {type(model).__name__}, which lacks `context_window` or "
            "`count_message_tokens`; its models must implement gptbuilder.models.base.ChatBackend"
        )
    return model

