"""The Gradio store (Discover, Chat, Create): builds `gr.Blocks` from a Store, never launches itself."""

from .app import STORE_CSS, build_ui, store_theme
from .discover import PassRateLookup

__all__ = ["STORE_CSS", "PassRateLookup", "build_ui", "store_theme"]
