"""Which moderation a GPT gets: its spec's `moderation:`, else the server-wide default file, else none.

The default is a YAML file in the shape of a spec's `moderation:` block, named by GPTBUILDER_MODERATION;
it is read when a GPT is compiled and again whenever the file changes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SpecError, SpecProblem
from .policy import Moderation

if TYPE_CHECKING:
    from ..loader import LoadedSpec
    from ..spec import ModerationConfig

MODERATION_ENV = "GPTBUILDER_MODERATION"

_lock = threading.Lock()
_cache: dict[tuple[str, int], ModerationConfig | None] = {}


def read_moderation_file(path: str | Path) -> ModerationConfig:
    """A moderation config file; SpecError naming the file and each field that is wrong."""
    from pydantic import ValidationError

    from ..spec import ModerationConfig
    from ..spec_errors import describe_validation_error
    from ..yamlsafe import read_yaml

    doc = read_yaml(Path(path))  # SpecError for a missing, unreadable or unsafe file
    try:
        return ModerationConfig.model_validate(doc.data or {})
    except ValidationError as exc:
        raise SpecError(describe_validation_error(exc, doc, str(path), root=ModerationConfig)) from None


def server_default() -> ModerationConfig | None:
    """The server-wide moderation (GPTBUILDER_MODERATION names its file), or None when unset."""
    name = os.environ.get(MODERATION_ENV, "").strip()
    if not name:
        return None
    path = Path(name)
    try:
        key = (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError as exc:
        raise SpecError([SpecProblem(name, "", f"{MODERATION_ENV} names a file that cannot be read: {exc.strerror or exc}")]) from None
    with _lock:
        if key not in _cache:
            _cache.clear()
            _cache[key] = read_moderation_file(path)
        return _cache[key]


def config_for(loaded: LoadedSpec) -> ModerationConfig | None:
    """The moderation config a GPT runs with: its own, else the server's default, else None."""
    return loaded.spec.moderation if loaded.spec.moderation is not None else server_default()


def moderation_for(loaded: LoadedSpec) -> Moderation | None:
    """The compiled moderation of a GPT, or None when nothing is checked."""
    config = config_for(loaded)
    if config is None:
        return None
    # the GPT's allow_private_network reaches its own remote endpoint, as it does its actions; not the server's
    own = config is loaded.spec.moderation
    moderation = Moderation.from_config(config, allow_private=own and loaded.spec.allow_private_network)
    return moderation if moderation.active else None
