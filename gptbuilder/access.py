"""Who may do what: roles, identities, GPT ownership, and the rules every edge (UI, API) applies alike.

An admin may do anything. A builder creates GPTs and edits only the ones they own; ownership is recorded
when a builder first claims an id (first save or upload). The operator's own spec files (on disk, not
saved through the store) belong to admins. A user chats. A conversation is seen by the identity that
had it, the GPT's owner and admins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import DateTime, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from .db import Base, Database
from .errors import DatabaseError, GPTBuilderError, InputError
from .trust import is_marked_untrusted


class Role(StrEnum):
    """What a key may do: ``admin`` everything, ``builder`` create and edit own GPTs, ``user`` chat."""

    ADMIN = "admin"
    BUILDER = "builder"
    USER = "user"


@dataclass(frozen=True)
class Identity:
    """A caller as the rules see them: what their conversations and GPTs are recorded under, and their role.

    ``keyed`` is true when ``owner`` names one person (an API key). A store without keys has no people,
    only the machine's own user at a loopback address (an admin) and read-only visitors.
    """

    owner: str
    role: Role
    label: str = ""
    keyed: bool = False

    @property
    def is_admin(self) -> bool:
        """Whether this identity may do anything."""
        return self.role is Role.ADMIN

    @property
    def can_build(self) -> bool:
        """Whether this identity may create GPTs (and edit its own)."""
        return self.role in (Role.ADMIN, Role.BUILDER)


LOCAL_ADMIN = Identity("local", Role.ADMIN, label="this machine")
NOBODY = Identity("", Role.USER, label="not signed in")
# Where `serve`'s guard puts the caller's Identity in each request's ASGI scope (the store's handlers read it).
IDENTITY_SCOPE_KEY = "gptbuilder.identity"


class AccessError(GPTBuilderError):
    """The caller's role or ownership does not allow this (HTTP 403)."""


class GPTOwnerRow(Base):
    __tablename__ = "gpt_owners"

    gpt_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=lambda: datetime.now(UTC))


class GPTOwners:
    """Who created each GPT through the store, in the shared database (one claim per id, first one wins)."""

    def __init__(self, db: Database):
        self.db = db

    def owner_of(self, gpt_id: str) -> str | None:
        """The identity that claimed ``gpt_id``, or None when nobody did (the operator's GPTs)."""
        with self.db.session() as s:
            row = s.get(GPTOwnerRow, gpt_id)
            return row.owner if row is not None else None

    def claim(self, gpt_id: str, owner: str) -> str:
        """Record ``owner`` for an unclaimed id; returns whoever owns it afterwards (an earlier claim stands)."""
        try:
            with self.db.session() as s:
                if s.get(GPTOwnerRow, gpt_id) is None:
                    s.add(GPTOwnerRow(gpt_id=gpt_id, owner=owner))
        except DatabaseError as exc:  # another request claimed it between the read and the insert
            if not isinstance(exc.__cause__, IntegrityError):
                raise
        found = self.owner_of(gpt_id)
        assert found is not None  # this claim or the earlier one is stored
        return found

    def owned_by(self, owner: str) -> set[str]:
        """The ids ``owner`` claimed."""
        from sqlalchemy import select

        with self.db.session() as s:
            return set(s.scalars(select(GPTOwnerRow.gpt_id).where(GPTOwnerRow.owner == owner)))


class Access:
    """The rules for one store: may this identity edit this GPT, see these conversations."""

    def __init__(self, gpts_dir: str | Path, owners: GPTOwners):
        self.gpts_dir = Path(gpts_dir)
        self.owners = owners

    def require_builder(self, who: Identity) -> None:
        """AccessError unless ``who`` may create GPTs."""
        if not who.can_build:
            raise AccessError(f"only builders and admins may create or change GPTs; this key's role is {who.role.value!r}")

    def can_edit(self, who: Identity, gpt_id: str) -> bool:
        """Whether ``who`` may change ``gpt_id`` (its spec, its files), claiming it first if it is new."""
        try:
            self._check_edit(who, gpt_id)
        except (AccessError, InputError):
            return False
        return True

    def claim_for_edit(self, who: Identity, gpt_id: str) -> None:
        """AccessError unless ``who`` may change ``gpt_id``; a new id becomes theirs (before anything is written)."""
        self._check_edit(who, gpt_id)
        if self._spec_path(gpt_id) is None:
            owner = self.owners.claim(gpt_id, who.owner)
            if owner != who.owner and not who.is_admin:
                raise AccessError(f"the GPT id {gpt_id!r} was just taken by another builder; pick another id")

    def editable(self, who: Identity, gpt_ids: list[str]) -> list[str]:
        """The ids among ``gpt_ids`` that ``who`` may open in the builder."""
        if who.is_admin:
            return list(gpt_ids)
        if not who.can_build:
            return []
        mine = self.owners.owned_by(who.owner)
        return [g for g in gpt_ids if g in mine and self._saved_through_store(g)]

    def sees_all_conversations(self, who: Identity, gpt_id: str) -> bool:
        """Admins and the GPT's owner see every conversation with it; everyone else only their own."""
        return who.is_admin or (who.can_build and self.owners.owner_of(gpt_id) == who.owner)

    def check_conversation(self, who: Identity, gpt_id: str, owner: str) -> None:
        """AccessError unless ``who`` may read a conversation of ``owner`` with ``gpt_id``."""
        if owner != who.owner and not self.sees_all_conversations(who, gpt_id):
            raise AccessError("this conversation belongs to someone else")

    def _check_edit(self, who: Identity, gpt_id: str) -> None:
        from .builder import check_id

        self.require_builder(who)
        problem = check_id(gpt_id)
        if problem is not None:
            raise InputError(problem)
        if who.is_admin:
            return
        owner = self.owners.owner_of(gpt_id)
        if self._spec_path(gpt_id) is not None and not self._saved_through_store(gpt_id):
            raise AccessError(f"{gpt_id!r} is one of the operator's GPTs; only an admin may change it")
        if owner is None and self._spec_path(gpt_id) is not None:
            raise AccessError(f"{gpt_id!r} has no recorded owner, so only an admin may change it")
        if owner is not None and owner != who.owner:
            raise AccessError(f"{gpt_id!r} belongs to another builder; save yours under another id")

    def _spec_path(self, gpt_id: str) -> Path | None:
        path = self.gpts_dir / f"{gpt_id}.yaml"
        return path if path.exists() else None

    def _saved_through_store(self, gpt_id: str) -> bool:
        return is_marked_untrusted(self.gpts_dir / f"{gpt_id}.yaml")
