"""What a server instance is allowed to do: keys, limits and caps, from arguments or the environment."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError
from .origins import LOOPBACK_HOSTS, parse_hosts

API_KEYS_ENV = "GPTBUILDER_API_KEYS"
API_KEYS_FILE_ENV = "GPTBUILDER_API_KEYS_FILE"
ADMIN_KEYS_ENV = "GPTBUILDER_ADMIN_API_KEYS"
WIDGET_SECRET_ENV = "GPTBUILDER_WIDGET_SECRET"
PRICES_FILE_ENV = "GPTBUILDER_PRICES_FILE"
RATE_LIMIT_STORAGE_ENV = "GPTBUILDER_RATE_LIMIT_STORAGE"
ALLOWED_HOSTS_ENV = "GPTBUILDER_ALLOWED_HOSTS"


@dataclass(frozen=True)
class Price:
    """Estimated price per 1,000 tokens of one model (GPT)."""

    prompt_per_1k: float = 0.0
    completion_per_1k: float = 0.0


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one `serve` process; replicas behind a load balancer should share them."""

    api_keys: tuple[str, ...] = ()
    admin_keys: tuple[str, ...] = ()
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

    @property
    def auth_required(self) -> bool:
        """Keys are configured, so every protected route asks for one."""
        return bool(self.api_keys or self.admin_keys)

    @classmethod
    def from_env(cls, **overrides: object) -> ServerConfig:
        """Keys from GPTBUILDER_API_KEYS (comma-separated) and/or GPTBUILDER_API_KEYS_FILE (one a line).

        Also GPTBUILDER_ADMIN_API_KEYS, GPTBUILDER_WIDGET_SECRET, GPTBUILDER_PRICES_FILE and
        GPTBUILDER_RATE_LIMIT_STORAGE (a `limits` storage URL such as redis://host:6379 shared by replicas),
        GPTBUILDER_ALLOWED_HOSTS (comma-separated `Host` names; default: the loopback names).
        """
        keys = [k.strip() for k in os.environ.get(API_KEYS_ENV, "").split(",") if k.strip()]
        keys_file = os.environ.get(API_KEYS_FILE_ENV)
        if keys_file:
            keys += read_keys_file(Path(keys_file))
        admins = tuple(k.strip() for k in os.environ.get(ADMIN_KEYS_ENV, "").split(",") if k.strip())
        prices_file = os.environ.get(PRICES_FILE_ENV)
        values: dict[str, object] = {
            "api_keys": tuple(dict.fromkeys([*keys, *admins])),
            "admin_keys": admins,
            "widget_secret": os.environ.get(WIDGET_SECRET_ENV) or None,
            "prices": read_prices(Path(prices_file)) if prices_file else {},
            "limits_storage": os.environ.get(RATE_LIMIT_STORAGE_ENV) or "memory://",
        }
        if os.environ.get(ALLOWED_HOSTS_ENV, "").strip():
            values["allowed_hosts"] = parse_hosts(os.environ[ALLOWED_HOSTS_ENV])
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]


def read_keys_file(path: Path) -> list[str]:
    """API keys, one a line; blank lines and # comments ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read the API keys file {path}: {exc.strerror or exc}") from None
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


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
