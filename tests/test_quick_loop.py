"""The quick loop's guard (tests/conftest.py): under `-m "not slow"` an unmarked real-model load fails the test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = '''
import pytest


def load():
    import llama_cpp

    try:
        llama_cpp.Llama(model_path="/nonexistent.gguf")
    except Exception:  # gptbuilder's own code turns load failures into errors; the guard must still be heard
        pass


def test_unmarked_load():
    load()


@pytest.mark.slow
def test_marked_load():
    load()


def test_no_load():
    assert True
'''


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_probe.py").write_text(PROBE, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-q", "-p", "no:cacheprovider", "-rfE",
         "-o", "markers=slow: loads real weights", "--rootdir", str(tmp_path), str(tmp_path / "test_probe.py"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},  # the guard needs no plugin (langsmith's costs 1 s)
    )


def test_the_quick_loop_fails_an_unmarked_real_model_load_even_when_the_code_swallows_the_error(tmp_path: Path):
    quick = _pytest(tmp_path, "-m", "not slow")
    assert quick.returncode == 1, quick.stdout
    assert "test_unmarked_load" in quick.stdout and "this test loads the real model: mark it slow" in quick.stdout
    assert "ERROR" in quick.stdout and "test_probe.py::test_unmarked_load" in quick.stdout  # failed at teardown
    assert "1 deselected, 1 error" in quick.stdout  # the marked load is not run; test_no_load passes


def test_without_the_filter_nothing_is_forbidden(tmp_path: Path):
    full = _pytest(tmp_path)
    assert full.returncode == 0, full.stdout
    assert "3 passed" in full.stdout
