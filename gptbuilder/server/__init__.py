"""The HTTP server: OpenAI-compatible `/v1` API, website widget, health and metrics, the store UI at `/`."""

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
