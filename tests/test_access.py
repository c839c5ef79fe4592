"""Roles and ownership rules (access.py): who may build, edit which GPT, and see which conversations."""

from __future__ import annotations

import threading

import pytest

from gptbuilder.access import LOCAL_ADMIN, Access, AccessError, GPTOwners, Identity, Role
from gptbuilder.builder import save
from gptbuilder.db import Database
from gptbuilder.errors import InputError

ALICE = Identity("key:alice", Role.BUILDER, keyed=True)
BOB = Identity("key:bob", Role.BUILDER, keyed=True)
USER = Identity("key:carol", Role.USER, keyed=True)
ADMIN = Identity("key:root", Role.ADMIN, keyed=True)
SPEC = "name: Mine\ninstructions: Be brief.\n"


@pytest.fixture
def owners(tmp_path):
    db = Database.for_data_dir(tmp_path / "data")
    yield GPTOwners(db)
    db.dispose()


@pytest.fixture
def access(gpts_dir, owners):
    return Access(gpts_dir, owners)


def test_roles_decide_who_builds():
    assert ADMIN.is_admin and ADMIN.can_build and LOCAL_ADMIN.can_build
    assert ALICE.can_build and not ALICE.is_admin
    assert not USER.can_build and not USER.is_admin


def test_a_user_may_not_build_anything(access):
    with pytest.raises(AccessError, match="only builders and admins"):
        access.require_builder(USER)
    with pytest.raises(AccessError, match="role is 'user'"):
        access.claim_for_edit(USER, "new-gpt")
    assert access.owners.owner_of("new-gpt") is None


def test_a_new_id_becomes_its_first_builders_and_only_theirs(access, gpts_dir):
    access.claim_for_edit(ALICE, "mine")
    save("mine", SPEC, gpts_dir)
    assert access.owners.owner_of("mine") == "key:alice"
    access.claim_for_edit(ALICE, "mine")  # editing again is fine
    with pytest.raises(AccessError, match="belongs to another builder"):
        access.claim_for_edit(BOB, "mine")
    assert access.can_edit(ADMIN, "mine") and not access.can_edit(BOB, "mine")
    assert access.editable(ALICE, ["mine", "other"]) == ["mine"]
    assert access.editable(BOB, ["mine"]) == [] and access.editable(USER, ["mine"]) == []
    assert access.editable(ADMIN, ["mine", "other"]) == ["mine", "other"]


def test_a_claim_made_by_an_upload_before_the_first_save_holds(access):
    access.claim_for_edit(ALICE, "draft")  # the upload comes first, the file does not exist yet
    with pytest.raises(AccessError):
        access.claim_for_edit(BOB, "draft")


def test_the_operators_gpts_belong_to_admins(access, write_spec):
    write_spec("support", SPEC)  # written on disk by the operator: no `.untrusted` marker
    with pytest.raises(AccessError, match="operator's GPTs; only an admin"):
        access.claim_for_edit(ALICE, "support")
    access.claim_for_edit(ADMIN, "support")
    assert access.owners.owner_of("support") is None  # an admin's edit does not hand it to anyone
    assert access.editable(ALICE, ["support"]) == []


def test_a_store_saved_gpt_with_no_recorded_owner_is_for_admins(access, gpts_dir):
    save("legacy", SPEC, gpts_dir)  # saved through the store before owners were recorded
    with pytest.raises(AccessError, match="no recorded owner"):
        access.claim_for_edit(ALICE, "legacy")


@pytest.mark.parametrize("bad", ["", "../etc/passwd", "Upper", "x" * 65])
def test_a_bad_id_is_refused_before_anything_is_claimed(access, bad):
    with pytest.raises(InputError, match=r"GPT an id|not a valid GPT id"):
        access.claim_for_edit(ADMIN, bad)
    assert not access.can_edit(ADMIN, bad)


def test_two_builders_racing_for_one_new_id_get_one_owner(access):
    results: list[str] = []
    barrier = threading.Barrier(2)

    def claim(who: Identity) -> None:
        barrier.wait()
        try:
            access.claim_for_edit(who, "race")
            results.append(who.owner)
        except AccessError:
            results.append("refused")

    threads = [threading.Thread(target=claim, args=(who,)) for who in (ALICE, BOB)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    owner = access.owners.owner_of("race")
    assert sorted(results) == sorted([owner, "refused"])


def test_conversations_are_seen_by_their_owner_the_gpts_owner_and_admins(access):
    access.claim_for_edit(ALICE, "mine")
    access.check_conversation(USER, "mine", USER.owner)
    access.check_conversation(ALICE, "mine", USER.owner)  # the GPT's owner
    access.check_conversation(ADMIN, "mine", USER.owner)
    with pytest.raises(AccessError, match="someone else"):
        access.check_conversation(BOB, "mine", USER.owner)
    with pytest.raises(AccessError):
        access.check_conversation(USER, "mine", "widget:0123")
    assert access.sees_all_conversations(ALICE, "mine") and not access.sees_all_conversations(BOB, "mine")
