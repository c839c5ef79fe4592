"""paths: a path written in a spec stays inside the spec's folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from gptbuilder.errors import GPTBuilderError
from gptbuilder.paths import PathEscapeError, is_within, safe_join


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """A spec folder `gpts/` (with `docs/a.md`) next to an `outside/` folder holding a secret."""
    root = tmp_path / "gpts"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("inside", encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.md").write_text("secret", encoding="utf-8")
    return root, outside


# --- accepted ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "parts"),
    [
        ("docs/a.md", ("docs", "a.md")),
        ("./docs/a.md", ("docs", "a.md")),
        ("docs//a.md", ("docs", "a.md")),
        ("docs\\a.md", ("docs", "a.md")),
        ("not-yet-there.md", ("not-yet-there.md",)),
        ("docs/**/*.md", ("docs", "**", "*.md")),
        ("knowledge/[ab]?.md", ("knowledge", "[ab]?.md")),
    ],
)
def test_relative_paths_and_globs_join_to_the_root(layout, relative: str, parts: tuple[str, ...]):
    root, _ = layout
    assert safe_join(root, relative) == root.joinpath(*parts)


def test_symlink_that_stays_inside_is_allowed(layout):
    root, _ = layout
    (root / "alias.md").symlink_to(root / "docs" / "a.md")
    (root / "more").symlink_to(root / "docs", target_is_directory=True)
    assert safe_join(root, "alias.md") == root / "alias.md"
    assert safe_join(root, "more/a.md") == root / "more" / "a.md"
    assert safe_join(root, "more/*.md") == root / "more" / "*.md"


def test_root_given_through_a_symlink_still_works(layout, tmp_path: Path):
    root, _ = layout
    linked_root = tmp_path / "linked-gpts"
    linked_root.symlink_to(root, target_is_directory=True)
    assert safe_join(linked_root, "docs/a.md") == linked_root / "docs" / "a.md"


# --- refused -----------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", ["", "a\x00b.md"])
def test_empty_or_nul_paths_are_refused(layout, relative: str):
    root, _ = layout
    with pytest.raises(PathEscapeError, match="empty or contains a NUL byte"):
        safe_join(root, relative)


@pytest.mark.parametrize("relative", ["/etc/passwd", "/etc/*", "//server/share/x", "C:\\Windows\\win.ini", "c:/x.md"])
def test_absolute_paths_are_refused(layout, relative: str):
    root, _ = layout
    with pytest.raises(PathEscapeError) as exc:
        safe_join(root, relative)
    assert str(exc.value) == f"{relative!r} must be relative to the spec's folder, not absolute"


@pytest.mark.parametrize(
    "relative", ["..", "../x", "../outside/secret.md", "docs/../../outside/secret.md", "..\\outside\\secret.md", "../*.md"]
)
def test_parent_traversal_is_refused(layout, relative: str):
    root, _ = layout
    with pytest.raises(PathEscapeError) as exc:
        safe_join(root, relative)
    assert str(exc.value) == f"{relative!r} may not leave the spec's folder ('..')"


def test_symlinked_file_pointing_outside_is_refused(layout):
    root, outside = layout
    (root / "leak.md").symlink_to(outside / "secret.md")
    with pytest.raises(PathEscapeError) as exc:
        safe_join(root, "leak.md")
    assert str(exc.value) == "'leak.md' leads outside the spec's folder through a symlink"


def test_file_under_a_symlinked_folder_pointing_outside_is_refused(layout):
    root, outside = layout
    (root / "shared").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathEscapeError, match="through a symlink"):
        safe_join(root, "shared/secret.md")
    with pytest.raises(PathEscapeError, match="through a symlink"):
        safe_join(root, "shared")


def test_symlink_to_absolute_system_file_is_refused(layout):
    root, _ = layout
    (root / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(PathEscapeError, match="through a symlink"):
        safe_join(root, "passwd")


def test_glob_under_a_symlinked_folder_pointing_outside_is_refused(layout):
    # `shared/*.md` would expand to files outside the spec's folder: the fixed part of the
    # glob ('shared') already leads outside, so the pattern must be refused like a plain path.
    root, outside = layout
    (root / "shared").symlink_to(outside, target_is_directory=True)
    with pytest.raises(PathEscapeError, match="symlink"):
        safe_join(root, "shared/*.md")
    with pytest.raises(PathEscapeError, match="symlink"):
        safe_join(root, "shared/**/*.md")


def test_dangling_symlink_pointing_outside_is_refused(layout):
    # The target may not exist yet, but once created it is outside the folder.
    root, outside = layout
    (root / "later.md").symlink_to(outside / "not-yet.md")
    with pytest.raises(PathEscapeError, match="symlink"):
        safe_join(root, "later.md")


def test_path_escape_error_is_a_gptbuilder_error_and_a_value_error(layout):
    root, _ = layout
    with pytest.raises(GPTBuilderError):
        safe_join(root, "../x")
    with pytest.raises(ValueError):
        safe_join(root, "/x")


# --- is_within ---------------------------------------------------------------------------------


def test_is_within(layout):
    root, outside = layout
    assert is_within(root, root)
    assert is_within(root, root / "docs" / "a.md")
    assert is_within(root, root / "docs" / ".." / "docs" / "a.md")
    assert not is_within(root, outside / "secret.md")
    assert not is_within(root, root / ".." / "outside" / "secret.md")
    assert not is_within(root, root.parent / "gpts-other" / "x.md")  # prefix of the name is not enough


def test_is_within_follows_symlinks(layout):
    root, outside = layout
    (root / "leak.md").symlink_to(outside / "secret.md")
    (root / "alias.md").symlink_to(root / "docs" / "a.md")
    assert not is_within(root, root / "leak.md")
    assert is_within(root, root / "alias.md")


def test_is_within_with_relative_paths(layout, monkeypatch):
    root, _ = layout
    monkeypatch.chdir(root.parent)
    assert is_within(Path("gpts"), Path("gpts/docs/a.md"))
    assert not is_within(Path("gpts"), Path("outside/secret.md"))
