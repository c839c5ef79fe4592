"""One turn of a GPT as an ordered list of stages (see `Agent.stream` and ARCHITECTURE.md).

Before the model: approvals → input guards → curated answers → retrieval, each a `Stage` that may add
events, record what it found on the `Turn`, or answer the turn itself. Then one `Runner` (an answer,
the local tool loop, or the caller's tools) streams the model's events and returns a `RunResult`.
After it, `OutputStage`s (output guards, then citations) see the text before the user does.
"""

from .base import Options, OutputStage, Runner, RunResult, Stage, Turn, from_backend, normal_finish_reason, through

__all__ = [
    "Options",
    "OutputStage",
    "RunResult",
    "Runner",
    "Stage",
    "Turn",
    "from_backend",
    "normal_finish_reason",
    "through",
]
