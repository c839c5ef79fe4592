"""Where the GPTs and the runtime data live, from arguments or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Folders gptbuilder works in."""

    gpts_dir: Path = Path("gpts")
    data_dir: Path = Path("store/data")
    catalog_path: Path = Path("store/catalog.yaml")

    @classmethod
    def from_env(cls, *, gpts_dir: str | Path | None = None, data_dir: str | Path | None = None) -> Settings:
        """Explicit arguments first, then GPTBUILDER_GPTS_DIR / _DATA_DIR / _CATALOG, then the defaults."""
        return cls(
            gpts_dir=Path(gpts_dir or os.environ.get("GPTBUILDER_GPTS_DIR") or cls.gpts_dir),
            data_dir=Path(data_dir or os.environ.get("GPTBUILDER_DATA_DIR") or cls.data_dir),
            catalog_path=Path(os.environ.get("GPTBUILDER_CATALOG") or cls.catalog_path),
        )
