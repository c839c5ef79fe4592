"""Answers from knowledge on the embedded model: right facts, unsupported claims and latency per answer mode.

    python bench/answers.py [--gpts acme-support,...] [--modes generate,verified,extractive] [--limit N]
                            [--json out.json] [--verbose] [--strict]

Each shipped GPT with `knowledge:` has a question set in bench/answers/<id>.yaml: what a real user would
ask, each with the short checkable facts a right answer must state (a price, a duration, a time, a name,
an address), taken from the knowledge file it names; a few are follow-ups with the turns before them.
Every question is asked, greedily (temperature 0, seed 0), through `compile_agent` + `Agent.stream` on the
GPT's own model (the embedded SmolLM2-135M for every shipped GPT), once per answer mode: the shipped spec
with `knowledge.answer_mode` set to generate (today's behaviour: the baseline), verified or extractive.
Curated answers and tools are taken out of the spec (`--curated`, `--tools` keep them): a curated answer
never reaches the model, and the questions are about the knowledge, not orders or code to run.

Per answer, measured here, independently of the product's own guard:

- correct: every fact of the question appears in the answer, both normalised (`normalise`: case, accents,
  `£42` = `42 pounds` = `£42.00`, `thirty days` = `30 days`, `7:00` = `7am`, `9–5` = `9 to 5`);
- unsupported: the answer holds at least one checkable claim (a number with its unit, a price, a
  percentage, a time, a date, a phone number, an e-mail address, a URL: `claims`) found neither in the
  passages the answer was given (its Citation events) nor in the conversation or the GPT's instructions;
  fenced code, citation markers and list numbers are not claims;
- right and clean: correct with no unsupported claim, an answer a user could take as it is;
- source retrieved: the file the facts come from is among the passages (a miss there is retrieval's);
- time to first token (the first non-empty TextDelta) and total time;
- changed: the `grounding` event says the guard changed the answer (n/a where no such event came).

Targets (issue #14), on the embedded model: verified has <= 5% answers with an unsupported claim and keeps
>= the correct-fact rate of generate; extractive has 0% unsupported.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import statistics
import sys
import tempfile
import time
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from gptbuilder.knowledge.claims import cjk_number

ROOT = Path(__file__).resolve().parent.parent
GPTS = ROOT / "gpts"
QUESTIONS = Path(__file__).resolve().parent / "answers"
BENCH_GPTS = QUESTIONS / "gpts"  # GPTs asked here but not shipped in the store (the Chinese bakery)
MODES = ("generate", "verified", "extractive")
UNSUPPORTED_TARGET = 0.05

# ----- normalising text, so the same fact written two ways compares equal ------------------------------

_SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
          "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90}
# "one" is too often a pronoun ("the one you ordered") to be a number on its own: only before a unit.
_COUNTED = (r"(?:days?|weeks?|months?|years?|hours?|minutes?|seconds?|working|business|words?|characters?|sentences?|"
            r"paragraphs?|links?|hashtags?|items?|photos?|ideas?|calls?|lines?|instalments?|generations?|percent|"
            r"euros?|pounds?|dollars?)")
_MONTHS = "january|february|march|april|may|june|july|august|september|october|november|december"
_CURRENCY = {"€": "eur", "£": "gbp", "$": "usd", "euro": "eur", "euros": "eur", "eur": "eur", "pound": "gbp",
             "pounds": "gbp", "gbp": "gbp", "dollar": "usd", "dollars": "usd", "usd": "usd"}
_AMOUNT = r"\d+(?:\.\d+)?"
# Chinese: numerals before a unit become digits, units and 元 get the English spellings, "晚上9点" is 21:00.
_ZH_UNITS = {"个工作日": "working day", "工作日": "working day", "个小时": "hour", "小时": "hour", "分钟": "minute",
             "天": "day", "个月": "month", "年": "year", "元": "cny", "块钱": "cny", "块": "cny"}
_ZH_UNIT = "|".join(sorted(_ZH_UNITS, key=len, reverse=True))
_UNIT = r"(?:working day|day|week|month|year|hour|minute|second|mb|gb|kb)"


def _number_words(text: str) -> str:
    tens = "|".join(_TENS)
    small = "|".join(_SMALL[2:])
    text = re.sub(
        rf"\b({tens})(?:[- ](one|two|three|four|five|six|seven|eight|nine))?\b",
        lambda m: str(_TENS[m[1]] + (_SMALL.index(m[2]) if m[2] else 0)),
        text,
    )
    text = re.sub(rf"\b({small})\b", lambda m: str(_SMALL.index(m[1])), text)
    return re.sub(rf"\bone(?=[\s-]+{_COUNTED}\b)", "1", text)


def _clock(match: re.Match[str]) -> str:
    hour, minute, half = int(match[1]), match[2] or "00", match[3][0]
    if half == "p" and hour < 12:
        hour += 12
    elif half == "a" and hour == 12:
        hour = 0
    return f"{hour}:{minute}"


def _zh_clock(match: re.Match[str]) -> str:
    hour = int(match[2]) + (12 if match[1] in ("下午", "晚上") and int(match[2]) < 12 else 0)
    return f"{hour}:{'30' if match[3] == '半' else '00'}"


def _chinese(text: str) -> str:
    text = re.sub(rf"[一二两三四五六七八九十百千]+(?=(?:{_ZH_UNIT}|个|份|人|点))",
                  lambda m: cjk_number(m[0]), text)
    text = re.sub(r"(早上|上午|中午|下午|晚上)?(\d{1,2})点(半)?", _zh_clock, text)
    text = re.sub(rf"(?<!\d{{3}})(\d+(?:\.\d+)?)\s?({_ZH_UNIT})", lambda m: f" {m[1]} {_ZH_UNITS[m[2]]} ", text)
    return re.sub(r"(?<=[\u4e00-\u9fff])(?=\d)|(?<=\d)(?=[\u4e00-\u9fff])", " ", text)  # "\b" holds around numbers


def normalise(text: str) -> str:
    """Text in one canonical spelling for comparing facts and claims (see the module's docstring)."""
    text = _chinese(unicodedata.normalize("NFKC", text))
    text = unicodedata.normalize("NFKD", text.lower())
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = re.sub(r"[‐‑‒–—−]", "-", text).replace("\u00a0", " ")
    text = re.sub(r"[*`]", "", text)
    text = re.sub(r"\bhttps?://|\bwww\.", "", text)
    text = re.sub(r"\+\d[\d ()/-]{6,}\d", lambda m: "+" + re.sub(r"\D", "", m[0]), text)  # phone numbers
    text = _number_words(text)
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # thousands separators
    text = re.sub(r"(?<!\d)(?<!\d\.)(\d+)\.(\d*?)0+(?!\d|\.\d)", lambda m: f"{m[1]}.{m[2]}" if m[2] else m[1], text)
    text = re.sub(r"\b(\d{1,2})(?::(\d{2}))?\s*([ap])\.?m\b\.?", _clock, text)
    text = re.sub(r"\b0(\d):(\d{2})\b", r"\1:\2", text)
    text = re.sub(r"(?<=\d)\s*(?:-|\bto\b)\s*(?=[\d€£$])", "-", text)  # ranges: 9-5 = 9 to 5 = 9 - 5
    text = re.sub(rf"([€£$])\s?({_AMOUNT})", lambda m: f"{m[2]} {_CURRENCY[m[1]]}", text)
    text = re.sub(rf"\b(eur|gbp|usd)\s?({_AMOUNT})", lambda m: f"{m[2]} {m[1]}", text)
    text = re.sub(rf"({_AMOUNT})\s?([€£$]|(?:euros?|eur|pounds?|gbp|dollars?|usd)\b)",
                  lambda m: f"{m[1]} {_CURRENCY[m[2]]}", text)
    text = re.sub(r"(\d)\s?(?:%|\bper ?cent\b)", r"\1%", text)
    text = re.sub(r"\b(?:working|business) days?\b", "working day", text)
    text = re.sub(r"(\d)[\s-]?(day|week|month|year|hour|minute)s?\b", r"\1 \2", text)
    text = re.sub(r"(\d)(?:\s?(?:seconds?|secs?)\b| s\b)", r"\1 second", text)
    text = re.sub(r"(\d)\s?(mb|gb|kb)\b", r"\1 \2", text)
    return re.sub(r"\s+", " ", text).strip()


def has_fact(answer: str, fact: str) -> bool:
    """The fact, normalised, appears in the normalised answer as a whole (not `20 eur` inside `120 eur`)."""
    wanted = normalise(fact)
    left = r"(?<![0-9a-z])" if wanted[:1].isalnum() else ""
    right = r"(?![0-9a-z])" if wanted[-1:].isalnum() else ""
    return re.search(left + re.escape(wanted) + right, normalise(answer)) is not None


# ----- checkable claims ------------------------------------------------------------------------------------

_CLAIM_PATTERNS = [
    ("email", r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"),
    ("url", r"\b[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?/[^\s)\]>,\"']*|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?"),
    ("phone", r"\+\d{7,}"),
    ("time", r"\b\d{1,2}:\d{2}\b"),
    ("date", rf"\b\d{{1,2}} (?:{_MONTHS})\b"),
    ("price", rf"{_AMOUNT} (?:eur|gbp|usd|cny)\b"),
    ("percent", rf"{_AMOUNT}%"),
]


def claims(text: str, *, code: bool = False) -> set[str]:
    """The checkable claims in a text, each normalised and keyed by kind (e.g. `price:42 gbp`, `number:30 day`).

    Fenced code is left out (code is not a claim about the world) unless ``code``: a source's code supports
    an answer's claims, and a passage cut from a longer file may hold half a fence.
    """
    if not code:
        text = re.sub(r"```.*?(?:```|$)", " ", text, flags=re.S)
    text = re.sub(r"\[\d+\]", " ", text)  # citation markers
    text = re.sub(r"(?m)^\s*\d+[.)]\s", " ", text)  # numbered list items
    text = normalise(text)
    found = set()
    for kind, pattern in _CLAIM_PATTERNS:
        for match in re.finditer(pattern, text):
            found.add(f"{kind}:{match[0].rstrip('.')}")
        text = re.sub(pattern, " ", text)
    # A number with its unit; a range gives its unit to both ends ("3-5 working day").
    unit = re.compile(rf"(?<![\w.])({_AMOUNT})(?:-({_AMOUNT}))? ({_UNIT})\b")
    for match in unit.finditer(text):
        found.update(f"number:{n} {match[3]}" for n in (match[1], match[2]) if n)
    text = unit.sub(" ", text)
    found.update(f"number:{n}" for n in re.findall(rf"(?<![\w.])(?<![a-z]-)({_AMOUNT})(?![\w])(?!\.\d)", text))
    return found


def unsupported(answer: str, known: str) -> list[str]:
    """The answer's claims that the known text (passages, conversation, instructions) does not hold.

    A bare number counts as supported when the known text holds that number anywhere, with or without a
    unit; a number with a unit, a price, a time... only when the known text holds the same.
    """
    have = claims(known, code=True)
    numbers = {c.split(":", 1)[1].split(" ")[0] for c in have if c.startswith(("number:", "price:", "percent:"))}
    numbers |= {c.split(":", 1)[1].rstrip("%") for c in have if c.startswith("percent:")}
    missing = []
    for claim in sorted(claims(answer)):
        if claim in have:
            continue
        if claim.startswith("number:") and " " not in claim and claim.split(":", 1)[1] in numbers:
            continue
        missing.append(claim)
    return missing


# ----- question sets -----------------------------------------------------------------------------------


def question_sets(names: list[str] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every bench/answers/<id>.yaml (or those named): a list of {question, facts, source, history?}."""
    files = sorted(QUESTIONS.glob("*.yaml"))
    sets = {path.stem: yaml.safe_load(path.read_text(encoding="utf-8")) for path in files}
    if names:
        unknown = sorted(set(names) - set(sets))
        if unknown:
            raise SystemExit(f"no question set for {', '.join(unknown)} (have: {', '.join(sets)})")
        sets = {name: sets[name] for name in names}
    return sets


def knowledge_gpts() -> list[str]:
    """The shipped GPTs whose spec has `knowledge:`, and the benchmark's own."""
    specs = [*GPTS.glob("*.yaml"), *BENCH_GPTS.glob("*.yaml")]
    return sorted(path.stem for path in specs if "knowledge" in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}))


def spec_path(gpt_id: str) -> Path:
    """A GPT's spec: shipped, else the benchmark's own."""
    shipped = GPTS / f"{gpt_id}.yaml"
    return shipped if shipped.exists() else BENCH_GPTS / f"{gpt_id}.yaml"


# ----- asking ------------------------------------------------------------------------------------------


def spec_in_mode(loaded: Any, mode: str, *, curated: bool, tools: bool) -> Any:
    """The shipped spec with `knowledge.answer_mode` set (and curated answers and tools dropped unless kept)."""
    spec = loaded.spec
    update: dict[str, Any] = {"knowledge": spec.knowledge.model_copy(update={"answer_mode": mode})}
    if not curated:
        update["curated_answers"] = []
    if not tools:
        update["tools"] = []
    return dataclasses.replace(loaded, spec=spec.model_copy(update=update))


def ask(agent: Any, item: dict[str, Any], instructions: str) -> dict[str, Any]:
    """Stream one question; what the answer says, what it was given, and when its first text came."""
    from gptbuilder import events
    from gptbuilder.events import Citation, Done, TextDelta

    grounding_type = getattr(events, "Grounding", None)  # the guard's report, where this version has one
    history = list(item.get("history") or [])
    messages = [*history, {"role": "user", "content": item["question"]}]
    passages: list[Citation] = []
    grounding = None
    text, first = "", None
    began = time.perf_counter()
    for event in agent.stream(messages, temperature=0, seed=0):
        if isinstance(event, TextDelta) and event.text and first is None:
            first = time.perf_counter() - began
        elif isinstance(event, Citation):
            passages.append(event)
        elif grounding_type is not None and isinstance(event, grounding_type):
            grounding = event
        elif isinstance(event, Done):
            text = event.text
    total = time.perf_counter() - began
    known = "\n".join([instructions, *(m["content"] for m in messages), *(p.text for p in passages)])
    missing = unsupported(text, known)
    source = Path(item["source"]).name
    return {
        "question": item["question"],
        "answer": text,
        "facts": item["facts"],
        "missing_facts": [f for f in item["facts"] if not has_fact(text, f)],
        "correct": all(has_fact(text, f) for f in item["facts"]),
        "unsupported_claims": missing,
        "unsupported": bool(missing),
        "source_retrieved": any(Path(p.source).name == source for p in passages),
        "sources": [p.source for p in passages],
        "passages": [p.text for p in passages],
        "ttft_s": first,
        "total_s": total,
        "grounding": grounding.to_dict() if grounding is not None else None,
        "changed": bool(grounding.changes) if grounding is not None else None,
    }


def run(gpt_id: str, items: list[dict[str, Any]], modes: list[str], args: argparse.Namespace, data_dir: Path):
    """Ask one GPT's questions in every mode; {mode: [answer records]}."""
    from gptbuilder.agent import compile_agent
    from gptbuilder.loader import load_spec

    loaded = load_spec(spec_path(gpt_id))
    results: dict[str, list[dict[str, Any]]] = {}
    for mode in modes:
        agent = compile_agent(spec_in_mode(loaded, mode, curated=args.curated, tools=args.tools), data_dir=data_dir)
        if agent.knowledge is not None:
            agent.knowledge.index.update()  # index before timing, not in the first question's TTFT
        results[mode] = []
        for item in items:
            record = ask(agent, item, loaded.instructions)
            results[mode].append(record)
            if args.verbose:
                mark = "ok " if record["correct"] else "BAD"
                claims_note = f" unsupported {record['unsupported_claims']}" if record["unsupported"] else ""
                print(f"  [{gpt_id} {mode}] {mark} {item['question'][:50]:50} {record['total_s']:5.1f}s "
                      f"{record['answer'][:90]!r}{claims_note}", flush=True)
    return results


def warm_up(data_dir: Path) -> None:
    """Load the embedded model (and the embedder) once, outside any timing."""
    from gptbuilder.agent import compile_agent
    from gptbuilder.loader import load_spec

    agent = compile_agent(load_spec(GPTS / "assistant.yaml"), data_dir=data_dir)
    agent.chat("Hello", temperature=0, max_tokens=4)


# ----- report ------------------------------------------------------------------------------------------


def summary(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Rates and medians over a list of answer records."""
    n = len(records)
    ttfts = [r["ttft_s"] for r in records if r["ttft_s"] is not None]
    checked = [r for r in records if r["changed"] is not None]
    return {
        "n": n,
        "correct": sum(r["correct"] for r in records),
        "unsupported": sum(r["unsupported"] for r in records),
        "right_and_clean": sum(r["correct"] and not r["unsupported"] for r in records),
        "source_retrieved": sum(r["source_retrieved"] for r in records),
        "ttft_p50_s": statistics.median(ttfts) if ttfts else None,
        "total_p50_s": statistics.median(r["total_s"] for r in records) if records else None,
        "grounded": len(checked),
        "changed": sum(r["changed"] for r in checked),
    }


def _pct(part: int, whole: int) -> str:
    return f"{part}/{whole} {100 * part / whole:3.0f}%" if whole else "-"


def _secs(value: float | None) -> str:
    return f"{value:.2f}s" if value is not None else "-"


def print_table(table: dict[str, dict[str, dict[str, Any]]]) -> None:
    """One row per GPT and mode: the rates, the medians, and what the guard changed."""
    counted = ("correct", "unsupported", "right+clean", "source hit")
    print(f"{'gpt':16} {'mode':10} " + " ".join(f"{c:>12}" for c in counted) + f" {'ttft p50':>9} {'total p50':>9} {'changed':>12}")
    for gpt_id, by_mode in table.items():
        for mode, s in by_mode.items():
            rates = (s["correct"], s["unsupported"], s["right_and_clean"], s["source_retrieved"])
            changed = _pct(s["changed"], s["grounded"]) if s["grounded"] else "n/a"
            print(f"{gpt_id:16} {mode:10} " + " ".join(f"{_pct(r, s['n']):>12}" for r in rates)
                  + f" {_secs(s['ttft_p50_s']):>9} {_secs(s['total_p50_s']):>9} {changed:>12}")


def targets(overall: dict[str, dict[str, Any]]) -> tuple[list[str], bool]:
    """The issue's targets that this run's modes can be judged on, and whether all of them pass."""
    lines, ok = [], True
    rate = {mode: (s["correct"] / s["n"], s["unsupported"] / s["n"]) for mode, s in overall.items() if s["n"]}
    if "verified" in rate:
        low = rate["verified"][1] <= UNSUPPORTED_TARGET
        lines.append(f"target verified <= 5% unsupported: {'PASS' if low else 'FAIL'} ({100 * rate['verified'][1]:.0f}%)")
        ok &= low
        if "generate" in rate:
            keeps = rate["verified"][0] >= rate["generate"][0]
            lines.append(f"target verified correct >= generate: {'PASS' if keeps else 'FAIL'} "
                         f"({100 * rate['verified'][0]:.0f}% vs {100 * rate['generate'][0]:.0f}%)")
            ok &= keeps
    if "extractive" in rate:
        none = rate["extractive"][1] == 0
        lines.append(f"target extractive 0% unsupported: {'PASS' if none else 'FAIL'} ({100 * rate['extractive'][1]:.0f}%)")
        ok &= none
    if "generate" in rate:
        base = overall["generate"]
        for mode in ("verified", "extractive"):
            if mode in overall and base["ttft_p50_s"] and overall[mode]["ttft_p50_s"]:
                lines.append(f"{mode} vs generate: TTFT p50 {overall[mode]['ttft_p50_s'] / base['ttft_p50_s']:.2f}x, "
                             f"total p50 {overall[mode]['total_p50_s'] / base['total_p50_s']:.2f}x")
    return lines, ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpts", help="comma-separated GPT ids (default: every shipped GPT with knowledge)")
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of {', '.join(MODES)}")
    parser.add_argument("--limit", type=int, help="ask only the first N questions of each GPT")
    parser.add_argument("--json", type=Path, help="write every answer and the summaries here")
    parser.add_argument("--data-dir", type=Path, help="where the knowledge indexes go (default: a temporary folder)")
    parser.add_argument("--curated", action="store_true", help="keep the specs' curated answers")
    parser.add_argument("--tools", action="store_true", help="keep the specs' tools")
    parser.add_argument("--verbose", action="store_true", help="print every answer")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args()

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if bad := [m for m in modes if m not in MODES]:
        parser.error(f"unknown mode(s) {', '.join(bad)}; choose from {', '.join(MODES)}")
    names = [g.strip() for g in args.gpts.split(",")] if args.gpts else knowledge_gpts()
    sets = question_sets(names)
    began = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-answers-") as tmp:
        data_dir = args.data_dir or Path(tmp)
        warm_up(data_dir)
        answers = {gpt_id: run(gpt_id, items[: args.limit], modes, args, data_dir) for gpt_id, items in sets.items()}
    seconds = time.perf_counter() - began

    table = {gpt_id: {mode: summary(records) for mode, records in by_mode.items()} for gpt_id, by_mode in answers.items()}
    overall = {mode: summary([r for by_mode in answers.values() for r in by_mode[mode]]) for mode in modes}
    print(f"model: each GPT's own (embedded SmolLM2-135M)  questions: "
          f"{sum(s['n'] for s in overall.values()) // max(len(modes), 1)}  modes: {', '.join(modes)}  "
          f"{seconds:.0f} s in all")
    print_table({**table, "ALL": overall})
    lines, ok = targets(overall)
    for line in lines:
        print(line)
    if args.json:
        args.json.write_text(json.dumps({"seconds": seconds, "modes": modes, "overall": overall, "per_gpt": table,
                                         "answers": answers}, indent=2, ensure_ascii=False), encoding="utf-8")
    return 0 if ok or not args.strict else 1


if __name__ == "__main__":
    sys.exit(main())
