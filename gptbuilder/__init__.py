"""gptbuilder: GPTs as code — YAML specs compiled into agents over local or remote models."""

from .agent import Agent, Reply, compile_agent
from .errors import GPTBuilderError, InputError, ModelError, SpecError, UnknownGPTError
from .events import Citation, ConfirmationRequest, Curated, Done, Event, TextDelta, ToolCall, ToolResult, Usage
from .loader import LoadedSpec, load_spec
from .spec import GPTSpec
from .store import Store

__version__ = "0.1.0"

__all__ = [
    "Agent",
    "Citation",
    "ConfirmationRequest",
    "Curated",
    "Done",
    "Event",
    "GPTBuilderError",
    "GPTSpec",
    "InputError",
    "LoadedSpec",
    "ModelError",
    "Reply",
    "SpecError",
    "Store",
    "TextDelta",
    "ToolCall",
    "ToolResult",
    "UnknownGPTError",
    "Usage",
    "compile_agent",
    "load_spec",
]
