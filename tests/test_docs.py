"""Every Python example in the README and docs/ runs as written; the configuration reference is current."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_examples():
    for page in PAGES:
        for number, block in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)):
            if not block.startswith("# excerpt"):  # an excerpt says so in its first line and names its file
                yield pytest.param(block, id=f"{page.name}-{number}")


@pytest.mark.parametrize("code", list(python_examples()))
def test_example_runs_as_written(code, monkeypatch):
    monkeypatch.chdir(ROOT)  # examples name recipes relative to the repository
    exec(compile(code, "<example>", "exec"), {"__name__": "__example__"})  # noqa: S102 (running them is the test)


def test_examples_are_found():
    assert len(list(python_examples())) >= 3


def test_config_reference_page_is_generated_from_the_code():
    from synco.config_reference import markdown

    page = (ROOT / "docs" / "config.md").read_text()
    assert page.strip() == markdown().strip(), "docs/config.md is stale: run `synco config > docs/config.md`"
