"""Imports run one way, down the layers of pyproject.toml's import-linter contract (docs/architecture.md)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_imports_run_down_the_layers():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"an import runs up the layers or closes a cycle:\n{done.stdout[-3000:]}"
    assert "1 kept, 0 broken" in done.stdout
