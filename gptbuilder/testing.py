"""`gptbuilder test`: run each spec's `tests:` cases against its GPT and keep the results per spec version.

UI-free: the CLI prints what `run_tests` returns, and the store reads `latest_result` for its badges.
Results live in ``<data_dir>/tests/<gpt id>.json`` (the last runs, newest last), keyed by `spec_version`:
a hash of the spec file, its instructions file, its knowledge files and its action files
(`gptbuilder.fingerprint.spec_version`, re-exported here).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from .errors import GPTBuilderError, InputError, SpecError
from .events import Transcript
from .fingerprint import spec_version
from .knowledge.claims import states
from .loader import LoadedSpec
from .spec import ModelConfig, TestCase

if TYPE_CHECKING:
    from .agent import Agent
    from .store import Store

SEED = 0  # every case runs greedy (temperature 0) with this seed, so reruns give the same answers
KEEP_RUNS = 20  # results kept per GPT
REFUSAL = re.compile(
    r"couldn'?t find|could not find|can'?t help|cannot help|can'?t answer|cannot answer|don'?t know|do not know|"
    r"not able to|unable to|I won'?t|no information|not in my knowledge",
    re.IGNORECASE,
)

Status = Literal["pass", "fail", "error"]


@dataclass
class CaseResult:
    """One test case: its outcome, every failed check, and what the GPT did."""

    name: str
    ask: str
    status: Status
    failures: list[str] = field(default_factory=list)
    latency_ms: int = 0
    answer: str = ""
    citations: list[str] = field(default_factory=list)
    retrieved: list[str] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    curated: bool = False
    moderated: str | None = None  # what blocked the turn: "input: blocklist (blocklist)"
    unsupported: list[str] = field(default_factory=list)  # claims in the answer its sources do not state
    corrected: int = 0  # sentences the faithfulness guard changed before the answer was shown

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


@dataclass
class GPTResult:
    """The cases of one GPT at one spec version; `error` when the GPT could not be loaded or compiled."""

    gpt: str
    version: str = ""
    model: str = ""
    cases: list[CaseResult] = field(default_factory=list)
    error: str | None = None
    seconds: float = 0.0

    @property
    def passed(self) -> int:
        """Cases that passed."""
        return sum(case.status == "pass" for case in self.cases)

    @property
    def total(self) -> int:
        """Cases run."""
        return len(self.cases)

    @property
    def unsupported_claims(self) -> int:
        """Claims, over all answers, that their sources do not state."""
        return sum(len(case.unsupported) for case in self.cases)

    @property
    def ok(self) -> bool:
        """Loaded, and no case failed (a GPT without tests is ok)."""
        return self.error is None and self.passed == self.total

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "gpt": self.gpt,
            "version": self.version,
            "model": self.model,
            "passed": self.passed,
            "total": self.total,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "unsupported_claims": self.unsupported_claims,
            "corrected_sentences": sum(case.corrected for case in self.cases),
            "cases": [case.to_dict() for case in self.cases],
        }


@dataclass
class TestReport:
    """Every GPT a `gptbuilder test` run covered."""

    __test__ = False  # not a pytest class

    results: list[GPTResult]
    started_at: str
    seconds: float

    @property
    def ok(self) -> bool:
        """No GPT failed to load and no case failed."""
        return all(result.ok for result in self.results)

    def counts(self) -> dict[str, int]:
        """Cases by status, plus GPTs in error and GPTs without tests."""
        cases = [case for result in self.results for case in result.cases]
        return {
            "passed": sum(c.status == "pass" for c in cases),
            "failed": sum(c.status == "fail" for c in cases),
            "errors": sum(c.status == "error" for c in cases),
            "gpts": len(self.results),
            "gpts_in_error": sum(r.error is not None for r in self.results),
            "gpts_without_tests": sum(r.error is None and not r.cases for r in self.results),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the report file)."""
        return {
            "ok": self.ok,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "summary": self.counts(),
            "gpts": [result.to_dict() for result in self.results],
        }


# ----- spec versions and model overrides --------------------------------------------------------


def parse_model_override(values: Sequence[str]) -> dict[str, Any]:
    """`--model-override` values: `provider:name` shorthand, or `key=value` pairs of `model:` (values as YAML)."""
    import yaml

    override: dict[str, Any] = {}
    for value in values:
        key, sep, raw = value.partition("=")
        if sep:
            try:
                override[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
            except yaml.YAMLError as exc:
                raise InputError(f"--model-override {value!r}: the value is not valid YAML ({exc})") from None
        elif ":" in value:
            provider, _, name = value.partition(":")
            override.update(provider=provider.strip(), name=name.strip() or None)
        else:
            raise InputError(
                f"--model-override {value!r}: write provider:name (e.g. openai:gpt-4o-mini) or key=value "
                "(e.g. base_url=http://127.0.0.1:8000/v1)"
            )
    return override


def with_model(loaded: LoadedSpec, override: dict[str, Any]) -> LoadedSpec:
    """The spec with its `model:` section updated by an override; a new provider starts from its defaults."""
    from pydantic import ValidationError

    current = loaded.spec.model.model_dump(exclude_unset=True)
    if "provider" in override and override["provider"] != loaded.spec.model.provider:
        current = {}
    try:
        model = ModelConfig.model_validate(current | override)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'model'}: {e['msg']}" for e in exc.errors())
        raise InputError(f"--model-override: {problems}") from None
    return dataclasses.replace(loaded, spec=loaded.spec.model_copy(update={"model": model}))


def model_label(loaded: LoadedSpec) -> str:
    """`provider:name` of the model a GPT answers with."""
    model = loaded.spec.model
    return f"{model.provider}:{model.name}" if model.name else model.provider


# ----- running -----------------------------------------------------------------------------------


TestProgress = Callable[[str, int, int], None]
"""Told as cases finish: ``progress(gpt id, cases done, cases)``, from 0 before the GPT loads."""


def run_tests(
    store: Store,
    ids: Sequence[str] = (),
    *,
    data_dir: str | Path,
    model_override: dict[str, Any] | None = None,
    save: bool = True,
    progress: TestProgress | None = None,
) -> TestReport:
    """Run the tests of the given GPTs (default: every GPT in the store, broken specs counting as errors)."""
    started = datetime.now(UTC).isoformat(timespec="seconds")
    clock = time.perf_counter()
    targets: list[LoadedSpec | GPTResult] = []
    if ids:
        for gpt_id in dict.fromkeys(ids):
            try:
                targets.append(store.get(gpt_id))  # an unknown id raises: nothing to report on
            except SpecError as exc:
                targets.append(GPTResult(gpt_id, error=str(exc)))
    else:
        targets.extend(store.specs())
        targets.extend(GPTResult(_id_of(exc), error=str(exc)) for exc in store.errors())
    results = []
    for target in targets:
        if isinstance(target, GPTResult):
            results.append(target)
            continue
        result = run_gpt(target, data_dir=data_dir, model_override=model_override, progress=progress)
        if save and result.error is None and result.cases:
            save_result(data_dir, result)
        results.append(result)
    return TestReport(results, started, time.perf_counter() - clock)


def run_gpt(
    loaded: LoadedSpec,
    *,
    data_dir: str | Path,
    model_override: dict[str, Any] | None = None,
    agent: Agent | None = None,
    progress: TestProgress | None = None,
) -> GPTResult:
    """Run one GPT's cases, greedy and seeded; `agent` replaces the compiled one (tests pass fakes)."""
    clock = time.perf_counter()
    result = GPTResult(loaded.id, version=spec_version(loaded))
    if model_override:
        loaded = with_model(loaded, model_override)
    result.model = model_label(loaded)
    if not loaded.spec.tests:
        return result
    if progress is not None:
        progress(loaded.id, 0, len(loaded.spec.tests))
    try:
        if agent is None:
            from .agent import compile_agent

            agent = compile_agent(loaded, data_dir=data_dir)
        sources = _knowledge_files(agent)
        _warm_up(agent)
    except GPTBuilderError as exc:
        result.error = str(exc)
        return result
    for number, case in enumerate(loaded.spec.tests, 1):
        result.cases.append(run_case(agent, case, number=number, sources=sources))
        if progress is not None:
            progress(loaded.id, number, len(loaded.spec.tests))
    result.seconds = time.perf_counter() - clock
    return result


def _warm_up(agent: Agent) -> None:
    """Index the knowledge and embed the curated questions first, so max_latency_ms times answers, not loading."""
    if agent.knowledge is not None:
        agent.knowledge.ensure_fresh()
    if agent.curated is not None:
        agent.curated.match(agent.curated.answers[0].question)


def run_case(agent: Agent, case: TestCase, *, number: int = 1, sources: Sequence[str] | None = None) -> CaseResult:
    """Run one case and check every expectation; a missing source file or a crash is an error, not a fail."""
    result = CaseResult(case.name or f"case {number}", case.ask, "pass")
    sources = _knowledge_files(agent) if sources is None else sources
    problem = _reference_problem(agent, case, sources)
    if problem:
        result.status, result.failures = "error", [problem]
        return result
    try:
        if case.retrieves:
            assert agent.knowledge is not None  # _reference_problem stops cases that name files of a GPT without knowledge
            result.retrieved = [s.source for s in agent.knowledge.retrieve(case.ask).sources]
            for wanted in case.retrieves:
                if not any(_same_file(source, wanted) for source in result.retrieved):
                    found = ", ".join(result.retrieved) or "nothing"
                    result.failures.append(f"retrieves {wanted}: not among the passages found ({found})")
        if case.expect is not None:
            clock = time.perf_counter()
            transcript = Transcript.from_events(agent.stream(case.ask, temperature=0, seed=SEED))
            result.latency_ms = round((time.perf_counter() - clock) * 1000)
            _record(result, transcript)
            result.failures.extend(_check(case, result))
    except Exception as exc:  # one broken case must not stop the run; it is reported as an error
        result.status = "error"
        result.failures.append(f"{type(exc).__name__}: {exc}" if not isinstance(exc, GPTBuilderError) else str(exc))
        return result
    if result.failures:
        result.status = "fail"
    return result


def _record(result: CaseResult, transcript: Transcript) -> None:
    result.answer = transcript.text
    result.citations = list(dict.fromkeys(c.source for c in transcript.citations))
    result.tool_calls = [{"name": call.name, "arguments": call.arguments} for call in transcript.calls]
    result.curated = transcript.curated is not None
    blocked = transcript.blocked_by
    result.moderated = f"{blocked.side}: {blocked.check} ({blocked.category})" if blocked else None
    result.corrected = len(transcript.grounding.changes) if transcript.grounding else 0
    passages = [c.text for c in transcript.citations if c.text]
    if passages:
        from .knowledge.claims import Evidence

        result.unsupported = [c.text for c in Evidence([result.ask, *passages]).unsupported(result.answer)]


def _check(case: TestCase, result: CaseResult) -> list[str]:
    """Every expectation the answer misses, one message each."""
    expect = case.expect
    assert expect is not None
    answer, folded = result.answer, result.answer.casefold()
    failures = [f"contains {text!r}: not in the answer" for text in expect.contains if text.casefold() not in folded]
    failures += [f"not_contains {text!r}: in the answer" for text in expect.not_contains if text.casefold() in folded]
    if expect.regex is not None and not re.search(expect.regex, answer):
        failures.append(f"regex {expect.regex!r}: no match in the answer")
    for wanted in expect.cites:
        if not any(_same_file(source, wanted) for source in result.citations):
            failures.append(f"cites {wanted}: not among the citations ({', '.join(result.citations) or 'none'})")
    if expect.refuses is not None and expect.refuses != _refused(answer):
        failures.append("refuses: the GPT answered instead of refusing" if expect.refuses else "refuses: the GPT refused")
    if expect.calls is not None and not any(
        call["name"] == expect.calls.tool and _args_match(expect.calls.args, call["arguments"]) for call in result.tool_calls
    ):
        made = ", ".join(f"{c['name']}({json.dumps(c['arguments'], ensure_ascii=False)})" for c in result.tool_calls)
        wanted = f"{expect.calls.tool}({json.dumps(expect.calls.args, ensure_ascii=False)})"
        failures.append(f"calls {wanted}: not called (calls made: {made or 'none'})")
    if expect.curated is not None and expect.curated != result.curated:
        failures.append("curated: answered by the model" if expect.curated else "curated: a curated answer answered")
    if expect.moderated is not None and expect.moderated != (result.moderated is not None):
        failures.append("moderated: moderation let the turn through" if expect.moderated else f"moderated: blocked by {result.moderated}")
    if expect.grounded and result.unsupported:
        failures.append(f"grounded: not in the sources: {', '.join(result.unsupported)}")
    if expect.grounded and not result.citations and not result.curated:
        failures.append("grounded: the answer has no sources to be checked against")
    for fact in expect.facts:
        if not states(answer, fact):
            failures.append(f"facts {fact!r}: not stated in the answer")
    if expect.max_latency_ms is not None and result.latency_ms > expect.max_latency_ms:
        failures.append(f"max_latency_ms {expect.max_latency_ms}: took {result.latency_ms} ms")
    return failures


def _refused(answer: str) -> bool:
    from .knowledge.retriever import NO_MATCH_MESSAGE

    return answer.strip() == NO_MATCH_MESSAGE or bool(REFUSAL.search(answer))


def _args_match(expected: dict[str, Any], actual: dict[str, Any]) -> bool:
    """Each expected argument is present; text matches when it appears in the actual text (any case)."""
    for key, value in expected.items():
        if key not in actual:
            return False
        got = actual[key]
        if isinstance(value, str):
            if value.casefold() not in str(got).casefold():
                return False
        elif got != value:
            return False
    return True


def _same_file(source: str, wanted: str) -> bool:
    """`returns.md` names `knowledge/acme/returns.md`; a longer path must match its whole tail."""
    source, wanted = source.replace("\\", "/"), wanted.replace("\\", "/").lstrip("./")
    return source == wanted or source.endswith("/" + wanted)


def _knowledge_files(agent: Agent) -> list[str]:
    if agent.knowledge is None:
        return []
    files, _ = agent.knowledge.index.files()
    return sorted(files)


def _reference_problem(agent: Agent, case: TestCase, sources: Sequence[str]) -> str | None:
    """A case that names a file the GPT does not have can never pass: say which and why."""
    named = [*case.retrieves, *(case.expect.cites if case.expect else [])]
    if not named:
        return None
    if agent.knowledge is None:
        return f"the case names {', '.join(named)}, but {agent.id} has no knowledge files (add a knowledge: section)"
    for wanted in named:
        if not any(_same_file(source, wanted) for source in sources):
            known = ", ".join(sources) or "none"
            return f"{wanted}: no such knowledge file in {agent.id} (its files: {known})"
    return None


def _id_of(error: SpecError) -> str:
    file = error.problems[0].file if error.problems else "?"
    return Path(file).stem


# ----- results per spec version ------------------------------------------------------------------


def _results_file(data_dir: str | Path, gpt_id: str) -> Path:
    return Path(data_dir) / "tests" / f"{gpt_id}.json"


def load_runs(data_dir: str | Path, gpt_id: str) -> list[dict[str, Any]]:
    """The stored runs of a GPT, oldest first (empty when never tested or unreadable)."""
    try:
        data = json.loads(_results_file(data_dir, gpt_id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    runs = data.get("runs") if isinstance(data, dict) else None
    return [run for run in runs if isinstance(run, dict)] if isinstance(runs, list) else []


def save_result(data_dir: str | Path, result: GPTResult) -> Path:
    """Append a run to the GPT's results file (atomically), keeping the last KEEP_RUNS."""
    path = _results_file(data_dir, result.gpt)
    path.parent.mkdir(parents=True, exist_ok=True)
    run = result.to_dict() | {"finished_at": datetime.now(UTC).isoformat(timespec="seconds")}
    runs = [*load_runs(data_dir, result.gpt), run][-KEEP_RUNS:]
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"gpt": result.gpt, "runs": runs}, indent=1, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path


def latest_result(data_dir: str | Path, gpt_id: str, *, version: str | None = None) -> tuple[int, int] | None:
    """(passed, total) of the GPT's latest stored run — of that spec version when given; None if none."""
    for run in reversed(load_runs(data_dir, gpt_id)):
        if version is None or run.get("version") == version:
            passed, total = run.get("passed"), run.get("total")
            if isinstance(passed, int) and isinstance(total, int):
                return passed, total
    return None


def write_report(report: TestReport, path: str | Path) -> Path:
    """Write the JSON report (atomically) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(report.to_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)
    return path
