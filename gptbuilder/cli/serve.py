"""`gptbuilder serve`: the store, the OpenAI-compatible API and the widget in one server."""

from __future__ import annotations

import copy
import logging
import os
from collections import Counter
from typing import Annotated, Any

import typer

from ..errors import InputError


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("serve")(serve)


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on; anything but loopback needs API keys")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on")] = 7860,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes (each loads its own models)")] = 1,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Allow a non-loopback --host without GPTBUILDER_API_KEYS")
    ] = False,
    allowed_hosts: Annotated[
        str | None,
        typer.Option(
            "--allowed-hosts",
            help="Comma-separated Host names the server answers (any port; *.example.com, * for any); "
            "default: GPTBUILDER_ALLOWED_HOSTS, else localhost, 127.0.0.1, [::1] and --host",
        ),
    ] = None,
    citations: Annotated[
        str | None,
        typer.Option(
            help="How answers carry their sources unless a request says: field (a citations field), inline (also "
            "footnotes in the text, for clients that drop extra fields) or off; default: GPTBUILDER_CITATIONS, else field",
        ),
    ] = None,
    lazy: Annotated[
        bool,
        typer.Option(
            "--lazy",
            help="Load each GPT on its first request instead of before /ready says ready (quicker restarts while "
            "developing; the first request to each GPT is slower); env GPTBUILDER_LAZY",
        ),
    ] = False,
    log_level: Annotated[str, typer.Option(help="uvicorn log level")] = "info",
) -> None:
    """Serve the store at /, the OpenAI-compatible API at /v1 and the website widget at /widget.js."""
    import uvicorn

    from ..server.config import ALLOWED_HOSTS_ENV, CITATIONS_ENV, ServerConfig, citation_mode
    from ..server.origins import default_hosts, is_loopback, parse_hosts
    from ..server.warmup import LAZY_ENV, lazy_from_env

    if allowed_hosts is None and not os.environ.get(ALLOWED_HOSTS_ENV, "").strip():
        hosts = default_hosts(host)
    else:
        hosts = parse_hosts(allowed_hosts if allowed_hosts is not None else os.environ[ALLOWED_HOSTS_ENV])
    if citations is not None:  # worker processes read it from the environment, like the rest of the config
        os.environ[CITATIONS_ENV] = citation_mode(citations, "--citations")
    config = ServerConfig.from_env()
    if not is_loopback(host) and not config.auth_required and not insecure:
        raise InputError(
            f"refusing to listen on {host} without API keys: anyone on the network could use every GPT; "
            "set GPTBUILDER_API_KEYS, GPTBUILDER_BUILDER_API_KEYS, GPTBUILDER_ADMIN_API_KEYS or GPTBUILDER_API_KEYS_FILE, "
            "or pass --insecure"
        )
    # Worker processes read their settings from the environment, so hand them the folders chosen here.
    os.environ["GPTBUILDER_GPTS_DIR"] = str(ctx.obj.gpts_dir)
    os.environ["GPTBUILDER_DATA_DIR"] = str(ctx.obj.data_dir)
    os.environ[ALLOWED_HOSTS_ENV] = ",".join(hosts)
    if lazy:
        os.environ[LAZY_ENV] = "1"
    typer.echo(f"gptbuilder: store http://{host}:{port}/  API http://{host}:{port}/v1  widget http://{host}:{port}/widget.js", err=True)
    typer.echo(f"gptbuilder: answering the hosts {', '.join(hosts)} (--allowed-hosts)", err=True)
    if config.auth_required:
        counts = Counter(role.value for role in config.roles().values())
        typer.echo("gptbuilder: keys: " + ", ".join(f"{counts[r]} {r}" for r in ("admin", "builder", "user")), err=True)
    if lazy_from_env():
        typer.echo("gptbuilder: lazy: each GPT loads on its first request (--lazy)", err=True)
    else:
        typer.echo("gptbuilder: loading every GPT before /ready says ready (--lazy skips it); /health answers meanwhile", err=True)
    uvicorn.run(
        "gptbuilder.server.app:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        log_config=_log_config(log_level),
        timeout_graceful_shutdown=10,
    )


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging, with the server's own log (warm-up times, failures) beside it in every worker."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    named = logging.getLevelName(level.upper())
    config["loggers"]["gptbuilder.server"] = {
        "handlers": ["default"],
        "level": named if isinstance(named, int) else logging.DEBUG,  # uvicorn's "trace" is finer than DEBUG
        "propagate": False,
    }
    return config
