"""The store catalogue: ordering, defaults and bad files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gptbuilder.catalog import Catalog, load_catalog
from gptbuilder.cli import app
from gptbuilder.errors import SpecError
from gptbuilder.store import Store

REPO = Path(__file__).resolve().parents[1]


def spec(name: str, category: str) -> str:
    return f"name: {name}\ncategory: {category}\ninstructions: x\nmodel: {{provider: fake}}\n"


def test_featured_first_then_shelf_order_then_name(write_spec, gpts_dir):
    write_spec("zed", spec("Zed", "qa"))
    write_spec("alpha", spec("Alpha", "qa"))
    write_spec("coder", spec("Coder", "coding"))
    write_spec("helper", spec("Helper", "customer-service"))
    catalog = Catalog.model_validate(
        {"categories": [{"id": "customer-service", "title": "Support"}, {"id": "qa", "title": "Q&A"},
                        {"id": "coding", "title": "Coding"}], "featured": ["zed", "missing-gpt"]}
    )
    ordered = [g.id for g in Store(gpts_dir, catalog=catalog).specs()]
    assert ordered == ["zed", "helper", "alpha", "coder"]


def test_the_shipped_catalogue_is_valid_and_features_a_shipped_gpt():
    catalog = load_catalog(REPO / "store" / "catalog.yaml")
    assert [s.id for s in catalog.categories] == ["customer-service", "content", "coding", "translation", "qa"]
    shipped = {p.stem for p in (REPO / "gpts").glob("*.yaml")}
    assert set(catalog.featured) <= shipped


def test_a_missing_catalogue_is_the_default(tmp_path):
    assert load_catalog(tmp_path / "none.yaml") == Catalog()


def test_a_broken_catalogue_names_file_and_field(tmp_path):
    path = tmp_path / "catalog.yaml"
    path.write_text("categories:\n  - {id: cooking, title: Food}\nfeaturd: [x]\n", encoding="utf-8")
    with pytest.raises(SpecError) as info:
        load_catalog(path)
    lines = [str(p) for p in info.value.problems]
    assert any("categories[0].id" in line and "line 2" in line for line in lines)
    assert any("unknown field 'featurd'; did you mean 'featured'?" in line for line in lines)


def test_list_uses_the_catalogue_from_the_environment(write_spec, tmp_path, monkeypatch):
    write_spec("b-bot", spec("B", "qa"))
    write_spec("a-bot", spec("A", "qa"))
    catalog = tmp_path / "catalog.yaml"
    catalog.write_text("featured: [b-bot]\n", encoding="utf-8")
    monkeypatch.setenv("GPTBUILDER_CATALOG", str(catalog))
    result = CliRunner().invoke(app, ["list", "--json"])
    assert [g["id"] for g in json.loads(result.stdout)] == ["b-bot", "a-bot"]
