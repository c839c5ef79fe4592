"""Tool calls on the embedded model: valid and correct calls, constrained vs. unconstrained decoding.

    python bench/tool_calls.py [--max-tokens 96] [--verbose] [--strict] [--only MODE]

Thirty prompts, typed as users would: half need one tool with specific arguments, half need none
(greetings, opinions, general knowledge). Each is asked greedily (deterministic) in three modes:

- unconstrained: the model decides and writes the JSON reply freely (`constrained=False`);
- constrained: the model decides, its reply held to the protocol's JSON schema by a grammar;
- routed: the default for local models: the embedding router picks a tool or an answer, then the
  model decodes that branch under the grammar (see gptbuilder/models/tool_routing.py).

Targets (issue #4): constrained decoding yields 100% schema-valid calls and more correct calls than
unconstrained; the default (routed) is what GPTs get.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jsonschema
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.tools import tool

from gptbuilder.models.llama_cpp import provider
from gptbuilder.models.tool_calling import openai_tools
from gptbuilder.spec import ModelConfig

SYSTEM = "You are the helpful assistant of Acme Shoes, an online shoe shop."


@tool
def multiply(a: float, b: float) -> float:
    """Multiply two numbers."""
    return a * b


@tool
def add(a: float, b: float) -> float:
    """Add two numbers."""
    return a + b


@tool
def get_order(order_id: str) -> str:
    """Look up an Acme Shoes order by its id (like A1001) and return its status."""
    return f"order {order_id}: shipped"


@tool
def current_time(timezone: str) -> str:
    """The current time in a timezone, e.g. Europe/Paris or UTC."""
    return "12:00"


@tool
def convert_currency(amount: float, from_currency: str, to_currency: str) -> float:
    """Convert an amount of money from one currency to another (three-letter codes such as USD, EUR)."""
    return amount


TOOLS = openai_tools([multiply, add, get_order, current_time, convert_currency])
PARAMETERS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}

# (prompt, expected call as (tool, arguments), or None when no tool is needed)
CASES: list[tuple[str, tuple[str, dict] | None]] = [
    ("Where is my order A1001?", ("get_order", {"order_id": "A1001"})),
    ("Can you check the status of order B2040 please", ("get_order", {"order_id": "B2040"})),
    ("has A1777 shipped yet?", ("get_order", {"order_id": "A1777"})),
    ("I ordered boots last week, order number C3310. Any news?", ("get_order", {"order_id": "C3310"})),
    ("What is 12 times 7?", ("multiply", {"a": 12, "b": 7})),
    ("multiply 3.5 by 4", ("multiply", {"a": 3.5, "b": 4})),
    ("how much is 250 * 1.2", ("multiply", {"a": 250, "b": 1.2})),
    ("What's 17 plus 25?", ("add", {"a": 17, "b": 25})),
    ("add 1299 and 450", ("add", {"a": 1299, "b": 450})),
    ("What time is it in Tokyo? Timezone Asia/Tokyo", ("current_time", {"timezone": "Asia/Tokyo"})),
    ("current time in UTC?", ("current_time", {"timezone": "UTC"})),
    ("What's the time in Europe/Paris right now?", ("current_time", {"timezone": "Europe/Paris"})),
    ("Convert 100 USD to EUR", ("convert_currency", {"amount": 100, "from_currency": "USD", "to_currency": "EUR"})),
    ("how many GBP is 59.90 EUR?", ("convert_currency", {"amount": 59.9, "from_currency": "EUR", "to_currency": "GBP"})),
    ("Please convert 2500 JPY into USD", ("convert_currency", {"amount": 2500, "from_currency": "JPY", "to_currency": "USD"})),
    ("Hello!", None),
    ("hi there, how are you?", None),
    ("Thanks, that's all I needed.", None),
    ("Good morning", None),
    ("Who are you?", None),
    ("What is the capital of France?", None),
    ("Tell me a joke.", None),
    ("What do you sell?", None),
    ("Write a haiku about running shoes.", None),
    ("Which is better for hiking, boots or sneakers?", None),
    ("How should I clean suede shoes?", None),
    ("What colour is the sky?", None),
    ("Can you recommend a shoe for a marathon?", None),
    ("bye", None),
    ("What does 'size 42' mean in US sizes?", None),
]


def same(value, expected) -> bool:
    """Numbers compare numerically, strings case-insensitively (and trimmed)."""
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return abs(float(value) - float(expected)) < 1e-6
        except (TypeError, ValueError):
            return False
    if isinstance(expected, str):
        return isinstance(value, str) and value.strip().lower() == expected.lower()
    return value == expected


def schema_valid(name: str, args) -> bool:
    """The call names a known tool and its arguments validate against that tool's parameters."""
    if name not in PARAMETERS or not isinstance(args, dict):
        return False
    try:
        jsonschema.validate(args, PARAMETERS[name])
    except jsonschema.ValidationError:
        return False
    return True


def classify(reply) -> dict:
    """kind (answer / call / invalid), the call made, schema validity."""
    if reply.invalid_tool_calls:
        bad = reply.invalid_tool_calls[0]
        return {"kind": "invalid", "call": (bad["name"], bad["args"]), "valid": False}
    if reply.tool_calls:
        call = reply.tool_calls[0]
        return {"kind": "call", "call": (call["name"], call["args"]), "valid": schema_valid(call["name"], call["args"])}
    text = reply.text.strip()
    # Unparseable JSON comes back as plain text: a broken attempt at the protocol is invalid, not an answer.
    if not text or text.startswith("{") or '"tool_call"' in text:
        return {"kind": "invalid", "call": None, "valid": False}
    return {"kind": "answer", "call": None, "valid": True}


MODES = {
    "unconstrained": {"constrained": False, "tool_routing": "model"},
    "constrained": {"constrained": True, "tool_routing": "model"},
    "routed": {"constrained": True, "tool_routing": "embedding"},
}


def run(model, mode: str, verbose: bool) -> dict:
    """Ask every prompt; return the counts behind the table."""
    counts = dict.fromkeys(
        ("replies_ok", "calls", "calls_valid", "tool_prompts", "correct_calls", "right_tool", "no_tool_prompts",
         "answered_no_call", "invalid", "seconds"), 0)
    start = time.perf_counter()
    for prompt, expected in CASES:
        began = time.perf_counter()
        reply = model.invoke([SystemMessage(SYSTEM), HumanMessage(prompt)], **MODES[mode])
        took = time.perf_counter() - began
        got = classify(reply)
        counts["replies_ok"] += got["kind"] != "invalid"
        counts["invalid"] += got["kind"] == "invalid"
        if got["kind"] in ("call", "invalid") and got["call"] is not None:
            counts["calls"] += 1
            counts["calls_valid"] += got["valid"]
        ok = False
        if expected is None:
            counts["no_tool_prompts"] += 1
            ok = got["kind"] == "answer"
            counts["answered_no_call"] += ok
        else:
            counts["tool_prompts"] += 1
            if got["kind"] == "call" and got["call"][0] == expected[0]:
                counts["right_tool"] += 1
                args = got["call"][1]
                ok = set(args) == set(expected[1]) and all(same(args[k], v) for k, v in expected[1].items())
            counts["correct_calls"] += ok
        if verbose:
            shown = json.dumps(got["call"]) if got["call"] else repr(reply.text[:60])
            print(f"  [{mode:13}] {'ok ' if ok else 'BAD'} {prompt[:44]:44} {took:5.1f}s {got['kind']:7} {shown}")
    counts["seconds"] = time.perf_counter() - start
    return counts


def pct(part: int, whole: int) -> str:
    return f"{part}/{whole} {100 * part / whole:5.1f}%" if whole else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--verbose", action="store_true", help="print every reply")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--only", choices=list(MODES), help="run one mode (for iterating)")
    args = parser.parse_args()

    model = provider.create(ModelConfig(temperature=0, max_tokens=args.max_tokens), base_dir=Path(".")).bind_tools(
        [multiply, add, get_order, current_time, convert_currency]
    )
    modes = [args.only] if args.only else list(MODES)
    results = {mode: run(model, mode, args.verbose) for mode in modes}
    rows = [
        ("well-formed replies", lambda c: pct(c["replies_ok"], len(CASES))),
        ("schema-valid calls", lambda c: pct(c["calls_valid"], c["calls"])),
        ("tool prompts: right tool", lambda c: pct(c["right_tool"], c["tool_prompts"])),
        ("tool prompts: correct call", lambda c: pct(c["correct_calls"], c["tool_prompts"])),
        ("chit-chat: answered, no call", lambda c: pct(c["answered_no_call"], c["no_tool_prompts"])),
        ("all prompts handled right", lambda c: pct(c["correct_calls"] + c["answered_no_call"], len(CASES))),
        ("seconds", lambda c: f"{c['seconds']:.1f}"),
    ]
    print(f"model: embedded SmolLM2-135M  prompts: {len(CASES)}  tools: {len(TOOLS)}  max_tokens: {args.max_tokens}")
    print(f"{'':30}" + "".join(f"{mode:>16}" for mode in modes))
    for label, cell in rows:
        print(f"{label:30}" + "".join(f"{cell(results[mode]):>16}" for mode in modes))
    if len(modes) < len(MODES):
        return 0
    free = results["unconstrained"]
    constrained = [results["constrained"], results["routed"]]
    valid_ok = all(c["invalid"] == 0 and c["calls_valid"] == c["calls"] for c in constrained)
    beats_ok = all(c["correct_calls"] > free["correct_calls"] for c in constrained)
    print(f"target constrained calls 100% schema-valid: {'PASS' if valid_ok else 'FAIL'};  "
          f"target constrained beats unconstrained on correct calls: {'PASS' if beats_ok else 'FAIL'}")
    return 0 if (valid_ok and beats_ok) or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
