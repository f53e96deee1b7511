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


def test_the_documentation_site_builds_strictly(tmp_path):
    """MkDocs with the API reference from the docstrings; any warning (a broken reference, a docstring griffe
    cannot read) fails the build."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "site" / "api" / "index.html").is_file()


PATH_PATTERN = re.compile(r"(?<![\w./-])((?:configs|synco|tests|docs|benchmarks|scripts|reports)/[\w./<>{},*-]*[\w>}*])")
#: A path right after these is not the repository's: an output to create, or a file of another tool's checkout.
NOT_OURS = ("--out ", "--config-file ")


def named_paths():
    for page in PAGES:
        text = page.read_text()
        found = {m.group(1) for m in PATH_PATTERN.finditer(text) if not text[:m.start()].endswith(NOT_OURS)}
        for path in sorted(found):
            if not any(mark in path for mark in ("<", "{", "*")):  # patterns: not one file
                yield pytest.param(path.split("::")[0], id=f"{page.name}:{path}")


@pytest.mark.parametrize("path", list(named_paths()))
def test_every_repository_path_named_in_the_docs_exists(path):
    assert (ROOT / path).exists(), f"{path} is named in the docs but does not exist"


def named_commands():
    for page in PAGES:
        for block in re.findall(r"```bash\n(.*?)```", page.read_text(), re.DOTALL):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                for prefix in (".venv/bin/synco ", "synco ", "python -m synco.cli ", "srun python -m synco.cli "):
                    if line.startswith(prefix):
                        yield pytest.param(line[len(prefix):], id=f"{page.name}:{line[:60]}")


@pytest.mark.parametrize("command", list(named_commands()))
def test_every_synco_command_in_the_docs_parses(command):
    """Subcommands, options and recipes of every `synco ...` line in a bash block of the README and docs/."""
    import shlex

    from synco.cli import _command_of, build_parser
    from synco.config import resolve_recipe

    argv = [word for word in shlex.split(command) if "$" not in word]
    if any(mark in command for mark in ("|", "[", "...")):  # a synopsis with alternatives: the command exists
        assert _command_of(argv) is not None, command
        return
    args, extra = build_parser(_command_of(argv)).parse_known_args(argv)
    assert all("=" in item for item in extra), extra
    for recipe in (getattr(args, "recipe", None),):
        if recipe and not any(c.isupper() for c in recipe):
            resolve_recipe(recipe)
