"""Moderation: checks on what users send and what GPTs answer (blocklist, named patterns, personal data).

Each check is small and separately tested (`blocklist`, `patterns`, `pii`); `policy.Moderation` is what a
GPT's `moderation:` config turns on; `config` picks a GPT's config or the server's default. The turn's
stages that apply it are in `gptbuilder.turn.moderation`.
"""

from .base import Action, Check, Side, Verdict
from .blocklist import Blocklist
from .config import MODERATION_ENV, config_for, moderation_for, read_moderation_file, server_default
from .patterns import Patterns
from .pii import PII
from .policy import Moderation

__all__ = [
    "MODERATION_ENV",
    "PII",
    "Action",
    "Blocklist",
    "Check",
    "Moderation",
    "Patterns",
    "Side",
    "Verdict",
    "config_for",
    "moderation_for",
    "read_moderation_file",
    "server_default",
]
