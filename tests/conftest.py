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


def copied_run(source: Path, target: Path) -> Path:
    """A copy of the run ``source`` at ``target``, its config.yaml naming ``target`` as its run_dir. (The
    checkpoint's settings still name the source's data cache, beside which fine-tuning writes its subset
    files: a test that writes them passes ``data.cache_dir`` inside its copy.)"""
    import shutil

    from omegaconf import OmegaConf

    shutil.copytree(source, target)
    config = OmegaConf.load(target / "config.yaml")
    config.run_dir = str(target)
    OmegaConf.save(config, target / "config.yaml")
    return target


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Tiny trained runs shared by the whole test run: ``tiny_runs(*overrides)`` is the run directory of
    ``pretrain(tiny(dir, *overrides))``, trained once per test run (not once per test or per test process:
    the pytest-xdist workers share one folder, and a file lock lets one of them train while the others wait).

    The directory is shared: a test that writes into a run (a probe's results, a subset file, a resume)
    works on its own copy, ``tiny_runs(..., copy_to=tmp_path / "run")``, whose config names its new place.
    """
    import hashlib

    from filelock import FileLock

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):  # every worker has its own basetemp under one shared parent
        root = root.parent
    root = root / "shared_tiny_runs"
    root.mkdir(exist_ok=True)

    def trained(*overrides: str, copy_to: Path | None = None) -> Path:
        from tiny_runs import tiny

        from synco.pipelines.pretrain import pretrain

        run = root / hashlib.sha1("\n".join(overrides).encode()).hexdigest()[:12]
        finished = run.with_suffix(".done")  # beside the run, so that copies hold only the run
        with FileLock(f"{run}.lock"):
            if not finished.exists():  # a worker that failed half-way left a partial run: train it anew
                import shutil

                shutil.rmtree(run, ignore_errors=True)
                pretrain(tiny(run, *overrides))
                finished.write_text("\n".join(overrides))
        if copy_to is None:
            return run
        return copied_run(run, copy_to)

    return trained
