"""The Gradio store (Discover, Chat, Create): builds `gr.Blocks` from a Store, never launches itself."""

from typing import Any

from .app import build_ui, store_css, store_theme
from .discover import PassRateLookup

__all__ = ["STORE_CSS", "PassRateLookup", "build_ui", "store_css", "store_theme"]


def __getattr__(name: str) -> Any:
    # STORE_CSS for callers that pass css= to launch/mount_gradio_app; read on first use, not at import
    if name == "STORE_CSS":
        return store_css()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
