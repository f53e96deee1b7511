"""The engine knows methods only through their contract: no engine, evaluation or run-loading file names a
method, a method's modules or its after-step work (a new method is a new file plus a registration)."""

import io
import re
import tokenize
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "synco"
GENERIC = [*sorted((PACKAGE / "engine").glob("*.py")), *sorted((PACKAGE / "pipelines").glob("*.py")),
           *sorted((PACKAGE / "eval").rglob("*.py")),
           PACKAGE / "runs.py", PACKAGE / "export.py"]
METHOD_SPECIFIC = re.compile(r"simclr|encoder_q|encoder_k|momentum_update|\.queue\b|\.enqueue\(|\.negatives\b",
                             re.IGNORECASE)


@pytest.mark.parametrize("path", GENERIC, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_generic_code_names_no_method(path):
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text()).readline)
    # Code only: docstrings and comments may cite where a protocol comes from (MoCo's, SimCLR's).
    code = " ".join(t.string for t in tokens if t.type in (tokenize.NAME, tokenize.OP))
    code = code.replace(" . ", ".").replace(" (", "(")
    assert not METHOD_SPECIFIC.findall(code), f"{path} reaches into a method: {METHOD_SPECIFIC.findall(code)}"
