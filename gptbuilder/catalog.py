"""The store's catalogue (`store/catalog.yaml`): shelf titles and which GPTs are featured first."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import SpecError
from .loader import LoadedSpec
from .spec import CATEGORIES, Category
from .spec_errors import describe_validation_error
from .yamlsafe import read_yaml


class Shelf(BaseModel):
    """One category as the store shows it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Category
    title: str = Field(min_length=1, max_length=60)


class Catalog(BaseModel):
    """How the store groups and orders GPTs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    categories: list[Shelf] = Field(default_factory=lambda: [Shelf.model_validate({"id": c, "title": c}) for c in CATEGORIES])
    featured: list[str] = Field(default_factory=list, description="GPT ids shown first, in this order")

    def order(self, gpts: Sequence[LoadedSpec]) -> list[LoadedSpec]:
        """Featured GPTs first (in catalogue order), then the rest by category shelf order and name."""
        shelf = {s.id: i for i, s in enumerate(self.categories)}
        featured = {gpt_id: i for i, gpt_id in enumerate(self.featured)}

        def key(gpt: LoadedSpec) -> tuple:
            return (featured.get(gpt.id, len(featured)), shelf.get(gpt.spec.category, len(shelf)), gpt.spec.name.lower())

        return sorted(gpts, key=key)


def load_catalog(path: str | Path) -> Catalog:
    """Read the catalogue; a missing file is the default catalogue, a broken one a SpecError."""
    path = Path(path)
    if not path.exists():
        return Catalog()
    doc = read_yaml(path)
    try:
        return Catalog.model_validate(doc.data)
    except ValidationError as exc:
        problems = describe_validation_error(exc, doc, str(path), root=Catalog)
        raise SpecError(problems) from None



