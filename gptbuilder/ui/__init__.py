"""The Gradio front end: builds `gr.Blocks` from a Store, never launches itself."""

from .chat import build_ui

__all__ = ["build_ui"]
