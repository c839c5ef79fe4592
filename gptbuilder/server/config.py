"""What a server instance is allowed to do: keys, limits and caps, from arguments or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from ..access import Role
from ..errors import InputError
from .origins import LOOPBACK_HOSTS, parse_hosts

API_KEYS_ENV = "GPTBUILDER_API_KEYS"
API_KEYS_FILE_ENV = "GPTBUILDER_API_KEYS_FILE"
ADMIN_KEYS_ENV = "GPTBUILDER_ADMIN_API_KEYS"
BUILDER_KEYS_ENV = "GPTBUILDER_BUILDER_API_KEYS"
WIDGET_SECRET_ENV = "GPTBUILDER_WIDGET_SECRET"
PRICES_FILE_ENV = "GPTBUILDER_PRICES_FILE"
RATE_LIMIT_STORAGE_ENV = "GPTBUILDER_RATE_LIMIT_STORAGE"
ALLOWED_HOSTS_ENV = "GPTBUILDER_ALLOWED_HOSTS"
CITATIONS_ENV = "GPTBUILDER_CITATIONS"
CITATION_MODES = ("off", "field", "inline")


@dataclass(frozen=True)
class Price:
    """Estimated price per 1,000 tokens of one model (GPT)."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one `serve` process; replicas behind a load balancer should share them."""

    api_keys: tuple[str, ...] = ()  # every key; those in neither list below are users (they chat)
    admin_keys: tuple[str, ...] = ()
    builder_keys: tuple[str, ...] = ()
    requests_per_minute_per_key: int = 120
    requests_per_minute_per_ip: int = 240
    max_body_bytes: int = 1_000_000
    max_messages: int = 500
    max_message_chars: int = 100_000
    max_tokens_cap: int = 4096
    workers: int = 4
    queue_size: int = 16
    keepalive_seconds: float = 15.0
    widget_secret: str | None = None
    widget_token_seconds: int = 3600
    widget_messages_per_session: int = 50
    widget_messages_per_minute_per_ip: int = 20
    prices: dict[str, Price] = field(default_factory=dict)
    limits_storage: str = "memory://"  # e.g. redis://host:6379 so replicas share counters
    # `Host` names answered (any port; "*.example.com", "*" for any): others get 400, so DNS rebinding fails
    allowed_hosts: tuple[str, ...] = LOOPBACK_HOSTS
    failed_auth_per_minute_per_ip: int = 10  # wrong or missing keys; past it even a right key waits (429)
    session_seconds: int = 7 * 24 * 3600  # how long a browser stays signed in to the store
    # How answers carry their sources unless a request says (`citations`): a field, also footnotes in the text, or not
    citations: Literal["off", "field", "inline"] = "field"

    @property
    def auth_required(self) -> bool:
        """Keys are configured, so every protected route asks for one."""
        return bool(self.api_keys or self.admin_keys or self.builder_keys)

    def roles(self) -> dict[str, Role]:
        """Every key with its role: admin over builder over user when a key is in several lists."""
        roles = dict.fromkeys(self.api_keys, Role.USER)
        roles |= dict.fromkeys(self.builder_keys, Role.BUILDER)
        roles |= dict.fromkeys(self.admin_keys, Role.ADMIN)
        return roles

    @classmethod
    def from_env(cls, **overrides: object) -> ServerConfig:
        """Keys with roles: GPTBUILDER_API_KEYS (users), GPTBUILDER_BUILDER_API_KEYS, GPTBUILDER_ADMIN_API_KEYS
        (each comma-separated) and GPTBUILDER_API_KEYS_FILE (one key a line, then optionally its role).

        Also GPTBUILDER_WIDGET_SECRET, GPTBUILDER_PRICES_FILE and
        GPTBUILDER_RATE_LIMIT_STORAGE (a `limits` storage URL such as redis://host:6379 shared by replicas),
        GPTBUILDER_ALLOWED_HOSTS (comma-separated `Host` names; default: the loopback names),
        GPTBUILDER_CITATIONS (off, field or inline: how answers carry their sources by default).
        """
        roles = dict.fromkeys(_env_list(API_KEYS_ENV), Role.USER)
        keys_file = os.environ.get(API_KEYS_FILE_ENV)
        if keys_file:
            roles |= read_keys_file(Path(keys_file))
        roles |= dict.fromkeys(_env_list(BUILDER_KEYS_ENV), Role.BUILDER)
        roles |= dict.fromkeys(_env_list(ADMIN_KEYS_ENV), Role.ADMIN)
        prices_file = os.environ.get(PRICES_FILE_ENV)
        values: dict[str, object] = {
            "api_keys": tuple(roles),
            "admin_keys": tuple(k for k, role in roles.items() if role is Role.ADMIN),
            "builder_keys": tuple(k for k, role in roles.items() if role is Role.BUILDER),
            "widget_secret": os.environ.get(WIDGET_SECRET_ENV) or None,
            "prices": read_prices(Path(prices_file)) if prices_file else {},
            "limits_storage": os.environ.get(RATE_LIMIT_STORAGE_ENV) or "memory://",
        }
        if os.environ.get(ALLOWED_HOSTS_ENV, "").strip():
            values["allowed_hosts"] = parse_hosts(os.environ[ALLOWED_HOSTS_ENV])
        if os.environ.get(CITATIONS_ENV, "").strip():
            values["citations"] = citation_mode(os.environ[CITATIONS_ENV], CITATIONS_ENV)
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def citation_mode(value: str, where: str) -> Literal["off", "field", "inline"]:
    """A citations setting (off, field or inline), any case; InputError naming ``where`` for anything else."""
    mode = value.strip().lower()
    if mode not in CITATION_MODES:
        raise InputError(f"{where}: {value!r} is not a citations mode; use one of {', '.join(CITATION_MODES)}")
    return cast(Literal["off", "field", "inline"], mode)


def _env_list(name: str) -> list[str]:
    return [k.strip() for k in os.environ.get(name, "").split(",") if k.strip()]


def read_keys_file(path: Path) -> dict[str, Role]:
    """API keys, one a line, each optionally followed by its role (``sk-… builder``; default ``user``).

    Blank lines and ``#`` comments are ignored; a line with an unknown role, or more than a key and a
    role, is an error that names the line (never the key).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the API keys file {path}: {exc.strerror or exc}") from None
    roles: dict[str, Role] = {}
    for number, line in enumerate(lines, 1):
        words = line.split()
        words = words[: next((i for i, w in enumerate(words) if w.startswith("#")), len(words))]
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and words[1].lower() not in {r.value for r in Role}):
            raise InputError(
                f"{path}: line {number}: write a key and optionally its role ({', '.join(r.value for r in Role)}), "
                "separated by a space"
            )
        roles[words[0]] = Role(words[1].lower()) if len(words) == 2 else Role.USER
    return roles


def read_prices(path: Path) -> dict[str, Price]:
    """A YAML price table: ``{gpt-id: {prompt_per_1k: 0.1, completion_per_1k: 0.2}}`` ("*" for every GPT)."""
    from ..errors import SpecError
    from ..yamlsafe import read_yaml

    try:
        data = read_yaml(path).data or {}
    except SpecError as exc:
        raise InputError(str(exc)) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: a price table maps GPT ids to {{prompt_per_1k, completion_per_1k}}")
    prices: dict[str, Price] = {}
    for gpt_id, entry in data.items():
        if not isinstance(entry, dict) or set(entry) - {"prompt_per_1k", "completion_per_1k"}:
            raise InputError(f"{path}: {gpt_id}: give prompt_per_1k and/or completion_per_1k (numbers)")
        try:
            prices[str(gpt_id)] = Price(**{k: float(v) for k, v in entry.items()})
        except (TypeError, ValueError):
            raise InputError(f"{path}: {gpt_id}: prices must be numbers") from None
    return prices
