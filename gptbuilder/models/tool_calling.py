"""Tool calling for models without a native API: describe the tools, constrain the reply to JSON, parse it.

The reply is one JSON object: {"type": "answer", "content": "..."} or
{"type": "tool_call", "name": "<tool>", "arguments": {...}}. A JSON schema covering exactly those
shapes (one branch per tool, with the tool's own argument schema) goes to the backend's constrained
decoder, so even a 135M model can only produce a well-formed answer or a well-formed call.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.messages.utils import convert_to_openai_messages
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.utils.function_calling import convert_to_openai_tool

OpenAITool = dict[str, Any]


def openai_tools(tools: Sequence[Any]) -> list[OpenAITool]:
    """Any mix of langchain tools, functions, pydantic models or OpenAI tool dicts, as OpenAI tool dicts."""
    return [convert_to_openai_tool(tool) for tool in tools]


def tool_name(tool: Any) -> str:
    """The name of an OpenAI tool dict (`{"type": "function", "function": {"name": ...}}`); "" when it has none."""
    return str((tool.get("function") or {}).get("name") or "") if isinstance(tool, dict) else ""


def _chosen(tools: Sequence[OpenAITool], tool_choice: Any) -> tuple[list[OpenAITool], bool]:
    """The tools the model may call and whether it may answer instead."""
    if tool_choice in (None, "auto"):
        return list(tools), True
    if tool_choice == "none":
        return [], True
    if tool_choice in ("any", "required", True):
        return list(tools), False
    name = tool_choice if isinstance(tool_choice, str) else (tool_choice.get("function") or {}).get("name")
    return [t for t in tools if t["function"]["name"] == name], False


def reply_schema(tools: Sequence[OpenAITool], tool_choice: Any = None, *, answer: dict[str, Any] | None = None) -> dict[str, Any]:
    """JSON schema of a reply: an answer (text, or JSON following ``answer``), or a call of one of the tools with valid arguments."""
    allowed, may_answer = _chosen(tools, tool_choice)
    branches: list[dict[str, Any]] = []
    definitions: dict[str, Any] = {}
    if may_answer:
        content: dict[str, Any] = {"type": "string"}
        if answer is not None:
            # The answer's own definitions move to the root, where its "#/$defs/..." references point.
            content = {k: v for k, v in answer.items() if k not in ("$defs", "definitions", "$schema")}
            definitions = {k: answer[k] for k in ("$defs", "definitions") if k in answer}
        branches.append(
            {
                "type": "object",
                "properties": {"type": {"const": "answer"}, "content": content},
                "required": ["type", "content"],
            }
        )
    for tool in allowed:
        function = tool["function"]
        parameters = function.get("parameters") or {"type": "object", "properties": {}}
        branches.append(
            {
                "type": "object",
                "properties": {
                    "type": {"const": "tool_call"},
                    "name": {"const": function["name"]},
                    "arguments": parameters,
                },
                "required": ["type", "name", "arguments"],
            }
        )
    schema = branches[0] if len(branches) == 1 else {"oneOf": branches}
    return {**schema, **definitions}


def tool_instructions(tools: Sequence[OpenAITool], tool_choice: Any = None) -> str:
    """The system-prompt section telling the model which tools exist and how to reply.

    Small models copy example values literally, so no argument values appear here: the format is
    shown by the worked turns `template_messages` puts before the conversation, with a made-up tool.
    """
    allowed, may_answer = _chosen(tools, tool_choice)
    lines = ["## Tools", "You have these tools:"]
    for tool in allowed:
        function = tool["function"]
        properties = (function.get("parameters") or {}).get("properties", {})
        args = ", ".join(f"{name} ({spec.get('type', 'any')})" for name, spec in properties.items())
        lines.append(f"- {function['name']}({args}): {function.get('description', '').strip()}")
    lines.append("")
    lines.append("Reply with exactly one JSON object.")
    if may_answer:
        lines.append('To talk with the user, greet, or answer from what you know: {"type": "answer", "content": <your reply>}')
    if allowed:
        lines.append(
            'Only when the user asks for something a tool does: {"type": "tool_call", "name": <tool>, "arguments": {...}}, '
            "with argument values copied from the user's message"
        )
    return "\n".join(lines)


# Worked turns shown before the conversation: a call with arguments taken from the request, its result
# turned into an answer, and small talk answered directly. The tool is made up, so nothing can be copied.
_EXAMPLE_TURNS = [
    {"role": "user", "content": "What's the weather like in Oslo?"},
    {"role": "assistant", "content": '{"type": "tool_call", "name": "example_weather", "arguments": {"city": "Oslo"}}'},
    {"role": "user", "content": "Result of example_weather: 4 degrees, light rain"},
    {"role": "assistant", "content": '{"type": "answer", "content": "It is 4 degrees with light rain in Oslo."}'},
    {"role": "user", "content": "Any news on my parcel? The tracking code is ZX5521."},
    {"role": "assistant", "content": '{"type": "tool_call", "name": "example_tracking", "arguments": {"code": "ZX5521"}}'},
    {"role": "user", "content": "Result of example_tracking: out for delivery"},
    {"role": "assistant", "content": '{"type": "answer", "content": "Your parcel ZX5521 is out for delivery."}'},
    {"role": "user", "content": "Thanks! How are you?"},
    {"role": "assistant", "content": '{"type": "answer", "content": "I am well, thank you! Can I help with anything else?"}'},
]


def parse_reply(text: str) -> AIMessage:
    """Turn a JSON reply into an AIMessage with content or one tool call; anything else is plain text.

    A call of an unknown tool stays a call: the agent loop answers it with an error the model can read.
    """
    try:
        data = json.loads(text, strict=False)  # the grammar lets raw newlines into strings
    except ValueError:
        return AIMessage(content=text)
    if not isinstance(data, dict):
        return AIMessage(content=text)
    if data.get("type") == "tool_call" and isinstance(data.get("name"), str):
        call_id = f"call_{uuid.uuid4().hex[:12]}"
        arguments = data.get("arguments", {})
        if not isinstance(arguments, dict):
            error = "the arguments must be a JSON object"
            return AIMessage(
                content="",
                invalid_tool_calls=[
                    {"name": data["name"], "args": json.dumps(arguments), "id": call_id, "error": error, "type": "invalid_tool_call"}
                ],
            )
        return AIMessage(content="", tool_calls=[{"name": data["name"], "args": arguments, "id": call_id, "type": "tool_call"}])
    content = data.get("content")
    if isinstance(content, (dict, list)):  # a structured answer (response_format): the JSON is the answer
        return AIMessage(content=json.dumps(content, ensure_ascii=False))
    return AIMessage(content=content if isinstance(content, str) else text)


def template_messages(messages: Sequence[BaseMessage], instructions: str) -> list[dict[str, Any]]:
    """OpenAI-style messages for a plain chat template: tool calls and results written out as text."""
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            call = message.tool_calls[0]
            reply = {"type": "tool_call", "name": call["name"], "arguments": call["args"]}
            out.append({"role": "assistant", "content": json.dumps(reply, ensure_ascii=False)})
        elif isinstance(message, ToolMessage):
            out.append({"role": "user", "content": f"Result of {message.name or 'the tool'}: {message.text}"})
        else:
            out.extend(convert_to_openai_messages([message], text_format="string"))
    if out and out[0]["role"] == "system":
        system = {"role": "system", "content": f"{out[0]['content']}\n\n{instructions}"}
        out = out[1:]
    else:
        system = {"role": "system", "content": instructions}
    return [system, *_EXAMPLE_TURNS, *out]


def reply_chunk(message: AIMessage) -> ChatGenerationChunk:
    """A parsed reply as one stream chunk, tool calls as tool-call chunks (arguments as JSON text)."""
    chunks = [
        tool_call_chunk(name=call["name"], args=json.dumps(call["args"]), id=call["id"], index=i)
        for i, call in enumerate(message.tool_calls)
    ]
    chunks += [
        tool_call_chunk(name=bad["name"], args=bad["args"], id=bad["id"], index=len(chunks) + i)
        for i, bad in enumerate(message.invalid_tool_calls)
    ]
    return ChatGenerationChunk(message=AIMessageChunk(content=message.text, tool_call_chunks=chunks))


@dataclass(frozen=True)
class ToolTurn:
    """How to decode one turn of a model with tools bound.

    kind "answer": stream a plain answer (no tool can be called this turn);
    "arguments": one tool is decided, decode only its arguments (`schema` is its parameters);
    "reply": the model decides, its reply held to `reply_schema` (or free when unconstrained).
    """

    kind: Literal["answer", "arguments", "reply"]
    messages: list[dict[str, Any]]
    schema: dict[str, Any] | None = None
    tool: str | None = None


def plan_turn(
    tools: Sequence[OpenAITool],
    messages: Sequence[BaseMessage],
    tool_choice: Any,
    *,
    constrained: bool = True,
    answer: dict[str, Any] | None = None,
) -> ToolTurn:
    """Decide how to decode this turn from the tools the model may call and whether it may answer.

    ``answer``: the JSON schema an answer follows (a structured answer), held to it in a "reply" too.
    """
    allowed, may_answer = _chosen(tools, tool_choice)
    if not allowed:
        return ToolTurn("answer", plain_messages(messages))
    if len(allowed) == 1 and not may_answer and constrained:
        tool = allowed[0]["function"]
        parameters = tool.get("parameters") or {"type": "object", "properties": {}}
        return ToolTurn("arguments", argument_messages(allowed[0], messages), parameters, tool["name"])
    schema = reply_schema(tools, tool_choice, answer=answer) if constrained or answer is not None else None
    return ToolTurn("reply", template_messages(messages, tool_instructions(tools, tool_choice)), schema)


def plain_messages(messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """OpenAI-style messages for a plain answer: tool results folded into the request they answer.

    Small models ignore a result given as a turn of its own; as information attached to the user's
    request it is what they answer from (as with knowledge sources).
    """
    out: list[dict[str, Any]] = []
    for message in messages:
        if isinstance(message, AIMessage) and message.tool_calls:
            continue
        if isinstance(message, ToolMessage):
            note = f"Result of {message.name or 'the tool'}: {message.text}"
            for earlier in reversed(out):
                if earlier["role"] == "user":
                    earlier["content"] = f"{earlier['content']}\n\n{note}\nAnswer using this result."
                    break
            else:
                out.append({"role": "user", "content": note})
            continue
        out.extend(convert_to_openai_messages([message], text_format="string"))
    return out


_ARGUMENT_EXAMPLE = [
    {"role": "user", "content": "Request: Any news on my parcel? The tracking code is ZX5521."},
    {"role": "assistant", "content": '{"code": "ZX5521"}'},
]


def argument_messages(tool: OpenAITool, messages: Sequence[BaseMessage]) -> list[dict[str, Any]]:
    """A short extraction prompt for one decided tool: its arguments, copied from the user's request.

    Small models fill arguments far better from this than from the whole conversation with every
    tool described (bench/tool_calls.py: 13/15 correct against 3/15).
    """
    function = tool["function"]
    properties = (function.get("parameters") or {}).get("properties") or {}
    described = ", ".join(
        f'"{name}" ({spec.get("type", "any")}{": " + spec["description"] if spec.get("description") else ""})'
        for name, spec in properties.items()
    )
    system = (
        f"Extract the arguments for the tool {function['name']}: {function.get('description', '').strip()}\n"
        f"Arguments: {described or 'none'}\n"
        "Reply with one JSON object of argument values, copied from the request."
    )
    requests = [m.text for m in messages if isinstance(m, HumanMessage)]
    request = requests[-1] if requests else ""
    return [{"role": "system", "content": system}, *_ARGUMENT_EXAMPLE, {"role": "user", "content": f"Request: {request}"}]


def parse_arguments(tool: str, text: str) -> AIMessage:
    """The decoded arguments of a decided tool as a one-call AIMessage (an invalid call when not an object)."""
    call_id = f"call_{uuid.uuid4().hex[:12]}"
    try:
        arguments = json.loads(text, strict=False)
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        error = "the arguments must be a JSON object"
        return AIMessage(
            content="", invalid_tool_calls=[{"name": tool, "args": text, "id": call_id, "error": error, "type": "invalid_tool_call"}]
        )
    return AIMessage(content="", tool_calls=[{"name": tool, "args": arguments, "id": call_id, "type": "tool_call"}])
