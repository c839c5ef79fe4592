"""The builder's non-UI logic: drafts, validation, atomic saves, uploads, forks."""

from __future__ import annotations

import errno
import os

import pytest

from gptbuilder import builder
from gptbuilder.errors import InputError, SpecError, StorageError
from gptbuilder.loader import load_spec
from gptbuilder.store import Store

GOOD = "name: Poet\ninstructions: |\n  Write poems.\n  Short ones.\nmodel: {provider: fake}\n"


def test_a_draft_round_trips_through_yaml_keeping_unknown_sections(gpts_dir):
    text = GOOD + "tests:\n  - {ask: hi, expect: {contains: [hi]}}\ntools: [calculator, 'my.mod:fn']\n"
    draft = builder.draft_from_text("poet", text)
    assert draft.instructions == "Write poems.\nShort ones.\n"
    assert draft.builtin_tools == ["calculator"] and draft.other_tools == ["my.mod:fn"]
    draft.conversation_starters = ["Autumn"]
    out = draft.to_yaml()
    assert "instructions: |" in out  # multi-line text stays a readable block
    # the builder's text is untrusted: the function tool is its only problem (issue 12)
    assert [(p.field, p.line) for p in builder.validate("poet", out, gpts_dir)] == [("tools[1]", 12)]
    again = builder.draft_from_text("poet", out)
    assert again.extra["tests"] == [{"ask": "hi", "expect": {"contains": ["hi"]}}]
    assert again.conversation_starters == ["Autumn"]


def test_validation_gives_the_same_messages_as_gptbuilder_validate(gpts_dir):
    text = "name: Poet\ncategory: contnet\ninstructions: x\nmodel: {temprature: 1}\n"
    problems = [str(p) for p in builder.validate("poet", text, gpts_dir)]
    (gpts_dir / "poet.yaml").write_text(text)
    with pytest.raises(SpecError) as exc:
        load_spec(gpts_dir / "poet.yaml", display="gpts/poet.yaml")
    assert problems == [str(p) for p in exc.value.problems]
    assert any("did you mean 'content'" in p for p in problems)


def test_a_bad_id_is_refused(gpts_dir):
    assert "not a valid GPT id" in str(builder.validate("Bad Id", GOOD, gpts_dir)[0])
    with pytest.raises(SpecError):
        builder.save("../evil", GOOD, gpts_dir)
    assert list(gpts_dir.iterdir()) == []


def test_save_writes_atomically_and_the_store_sees_it_without_restart(gpts_dir):
    store = Store(gpts_dir)
    assert store.specs() == []
    result = store.save("poet", GOOD)  # builder.save, then the store checks its folder at once
    assert result.path.read_text() == GOOD and result.warning is None
    assert [g.id for g in store.specs()] == ["poet"]
    # no temporary file left behind; the marker keeps the spec untrusted on every later load
    assert sorted(p.name for p in gpts_dir.iterdir()) == ["poet.untrusted", "poet.yaml"]
    assert not store.get("poet").trusted


def test_saving_a_spec_with_errors_leaves_the_file_untouched(gpts_dir):
    first = builder.save("poet", GOOD, gpts_dir)
    with pytest.raises(SpecError, match="instructions"):
        builder.save("poet", "name: Poet\n", gpts_dir, loaded_fingerprint=first.fingerprint)
    assert (gpts_dir / "poet.yaml").read_text() == GOOD
    assert sorted(p.name for p in gpts_dir.iterdir()) == ["poet.untrusted", "poet.yaml"]


def test_a_failed_write_never_loses_the_existing_file(gpts_dir, monkeypatch):
    builder.save("poet", GOOD, gpts_dir)

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(builder.os, "replace", broken_replace)
    with pytest.raises(OSError):
        builder.save("poet", GOOD.replace("Poet", "Poet 2"), gpts_dir)
    assert (gpts_dir / "poet.yaml").read_text() == GOOD
    assert sorted(p.name for p in gpts_dir.iterdir()) == ["poet.untrusted", "poet.yaml"]


def _disk_full(*_args):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_says_so_and_changes_nothing(gpts_dir, tmp_path, monkeypatch):
    builder.save("poet", GOOD, gpts_dir)
    upload = tmp_path / "notes.md"
    upload.write_text("# Notes\nHello.\n", encoding="utf-8")
    monkeypatch.setattr(builder.os, "fsync", _disk_full)  # where a full disk shows once the data is flushed
    with pytest.raises(StorageError, match=r"could not write poet\.yaml: the disk is full; nothing was changed"):
        builder.save("poet", GOOD.replace("Poet", "Poet 2"), gpts_dir)
    with pytest.raises(StorageError, match=r"could not write the upload 'notes\.md': the disk is full"):
        builder.store_upload("poet", upload, "notes.md", gpts_dir)
    assert (gpts_dir / "poet.yaml").read_text() == GOOD
    assert sorted(p.name for p in gpts_dir.iterdir()) == ["knowledge", "poet.untrusted", "poet.yaml"]
    assert list((gpts_dir / "knowledge" / "poet").iterdir()) == []  # no half-written upload, no temporary file


def test_two_editors_last_write_wins_with_a_warning(gpts_dir):
    opened = builder.save("poet", GOOD, gpts_dir).fingerprint
    tab_a = builder.save("poet", GOOD.replace("Poet", "Poet A"), gpts_dir, loaded_fingerprint=opened)
    assert tab_a.warning is None
    tab_b = builder.save("poet", GOOD.replace("Poet", "Poet B"), gpts_dir, loaded_fingerprint=opened)
    assert "changed elsewhere" in tab_b.warning
    assert load_spec(gpts_dir / "poet.yaml").spec.name == "Poet B"


def test_a_new_gpt_over_an_existing_file_warns(gpts_dir):
    builder.save("poet", GOOD, gpts_dir)
    assert "already existed" in builder.save("poet", GOOD, gpts_dir).warning


def test_uploads_get_a_safe_generated_name_under_the_gpt_folder(gpts_dir, tmp_path):
    src = tmp_path / "upload.bin"
    src.write_text("# Returns\n30 days.\n")
    relative = builder.store_upload("acme", src, "Return Policy!.md", gpts_dir)
    assert relative.startswith("knowledge/acme/return-policy-") and relative.endswith(".md")
    assert (gpts_dir / relative).read_text() == "# Returns\n30 days.\n"


@pytest.mark.parametrize("name", ["../../x.md", "..\\..\\x.md", "/etc/passwd.md", "a/b.md", "..", "C:evil.md"])
def test_uploads_named_like_paths_are_refused(gpts_dir, tmp_path, name):
    src = tmp_path / "upload.bin"
    src.write_text("text")
    with pytest.raises(InputError, match=r"may not contain a path|unsupported"):
        builder.store_upload("acme", src, name, gpts_dir)
    assert not (gpts_dir / "knowledge").exists()


def test_uploads_of_unknown_type_or_too_big_are_refused(gpts_dir, tmp_path):
    src = tmp_path / "upload.bin"
    src.write_bytes(b"MZ\x00binary")
    with pytest.raises(InputError, match=r"unsupported file type '\.exe'"):
        builder.store_upload("acme", src, "tool.exe", gpts_dir)
    with pytest.raises(InputError, match="no suffix"):
        builder.store_upload("acme", src, "README", gpts_dir)
    src.write_bytes(b"x" * 101)
    with pytest.raises(InputError, match="over the 100-byte limit"):
        builder.store_upload("acme", src, "big.txt", gpts_dir, max_bytes=100)
    assert not (gpts_dir / "knowledge").exists()


def test_only_files_inside_the_upload_folder_count_as_received(tmp_path):
    cache = tmp_path / "cache"
    (cache / "abc").mkdir(parents=True)
    received = cache / "abc" / "notes.md"
    received.write_text("mine")
    secret = tmp_path / "secret.md"
    secret.write_text("server's")
    (cache / "abc" / "link.md").symlink_to(secret)
    assert builder.received_upload(str(received), cache) == received.resolve()
    for path in [secret, cache / "abc" / "link.md", cache / "abc" / ".." / ".." / "secret.md", cache / "abc", cache,
                 cache / "abc" / "missing.md", "/etc/passwd"]:
        with pytest.raises(InputError, match="only files uploaded to this server are accepted"):
            builder.received_upload(path, cache)


def test_upload_types_match_the_knowledge_loaders():
    from gptbuilder.knowledge.loaders import SUPPORTED_SUFFIXES

    assert builder.upload_suffixes() == SUPPORTED_SUFFIXES


def test_fork_copies_a_gpt_as_a_new_spec(gpts_dir):
    builder.save("poet", GOOD + "conversation_starters: [Autumn]\n", gpts_dir)
    draft = builder.fork(gpts_dir / "poet.yaml", gpts_dir)
    assert draft.gpt_id == "poet-copy" and draft.name == "Poet (copy)"
    assert draft.conversation_starters == ["Autumn"]
    builder.save(draft.gpt_id, draft.to_yaml(), gpts_dir)
    assert builder.fork(gpts_dir / "poet.yaml", gpts_dir).gpt_id == "poet-copy-2"
    assert sorted(g.id for g in Store(gpts_dir).specs()) == ["poet", "poet-copy"]


def test_load_draft_gives_a_spec_ready_to_compile(gpts_dir):
    loaded = builder.load_draft("poet", GOOD, gpts_dir)
    assert loaded.id == "poet" and loaded.folder == gpts_dir
    assert not os.listdir(gpts_dir)


def test_the_preview_and_save_hold_drafts_to_the_untrusted_rules(gpts_dir):
    text = GOOD + "tools: ['os:system']\nallow_private_network: true\n"
    with pytest.raises(SpecError) as exc:
        builder.load_draft("poet", text, gpts_dir)  # what the preview compiles
    assert [p.field for p in exc.value.problems] == ["tools[0]", "allow_private_network"]
    with pytest.raises(SpecError):
        builder.save("poet", text, gpts_dir)
    assert list(gpts_dir.iterdir()) == []  # neither the spec nor its marker
