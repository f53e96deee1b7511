import os
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

TESTS = Path(__file__).resolve().parent
# Tests live in folders mirroring the package; their shared helpers (reference.py, tiny_runs.py, the DDP
# workers) live here, in tests/.
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))
# The tests read CIFAR-10 from the shared copy beside the repository, as scripts/test.sh sets it.
os.environ.setdefault("SYNCO_DATA_ROOT", str(TESTS.parents[1] / "shared" / "datasets"))


def unit(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(*shape, generator=g, dtype=dtype), dim=-1)


@pytest.fixture
def unit_rows():
    return unit
