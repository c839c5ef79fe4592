"""Where the GPTs and the runtime data live, from arguments or the environment."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

GPTS_ENV = "GPTBUILDER_GPTS_DIR"
DATA_ENV = "GPTBUILDER_DATA_DIR"
CATALOG_ENV = "GPTBUILDER_CATALOG"
ALLOWED_BASE_URLS_ENV = "GPTBUILDER_ALLOWED_BASE_URLS"
ALLOWED_SECRET_ENVS_ENV = "GPTBUILDER_ALLOWED_SECRET_ENVS"


@dataclass(frozen=True)
class Settings:
    """Folders gptbuilder works in."""

    gpts_dir: Path = Path("gpts")
    data_dir: Path = Path("store/data")
    catalog_path: Path = Path("store/catalog.yaml")
    gpts_from: str = "the default"  # who chose gpts_dir: "--gpts", GPTS_ENV or "the default", for messages

    @classmethod
    def from_env(cls, *, gpts_dir: str | Path | None = None, data_dir: str | Path | None = None) -> Settings:
        """Explicit arguments first, then GPTBUILDER_GPTS_DIR / _DATA_DIR / _CATALOG, then the defaults."""
        env_gpts = os.environ.get(GPTS_ENV)
        gpts_from = "--gpts" if gpts_dir else GPTS_ENV if env_gpts else "the default"
        return cls(
            gpts_dir=Path(gpts_dir or env_gpts or cls.gpts_dir),
            data_dir=Path(data_dir or os.environ.get(DATA_ENV) or cls.data_dir),
            catalog_path=Path(os.environ.get(CATALOG_ENV) or cls.catalog_path),
            gpts_from=gpts_from,
        )

    def where_gpts(self) -> str:
        """Where GPTs were looked for and how to look elsewhere, for "nothing found" messages."""
        folder = self.gpts_dir.resolve()
        state = "" if folder.is_dir() else " (no such folder)"
        return (
            f"looked in {folder}{state}, set by {self.gpts_from}; run from the folder that holds gpts/, "
            f"or point elsewhere with --gpts DIR or {GPTS_ENV}=DIR"
        )


@dataclass(frozen=True)
class TrustPolicy:
    """What the operator lets specs saved through the store use: endpoints and environment variables (none by default)."""

    base_urls: tuple[str, ...] = ()
    secret_envs: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TrustPolicy:
        """GPTBUILDER_ALLOWED_BASE_URLS (URL prefixes) and GPTBUILDER_ALLOWED_SECRET_ENVS (names), comma-separated."""
        environ = os.environ if environ is None else environ
        return cls(
            base_urls=tuple(_items(environ.get(ALLOWED_BASE_URLS_ENV, ""))),
            secret_envs=frozenset(_items(environ.get(ALLOWED_SECRET_ENVS_ENV, ""))),
        )


def _items(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]
