#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Data sets beside the repository (CIFAR-10 JPEG archives in ../shared/datasets/cifar10-jpeg) unless set.
source scripts/data_root.sh
# Test processes (pytest-xdist, one per core; SYNCO_TEST_WORKERS overrides), one thread each: the tests' small
# tensors gain little from a second thread, and two processes keep both cores busy through the Python overhead.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec .venv/bin/python -m pytest -q -n "${SYNCO_TEST_WORKERS:-auto}" --maxprocesses 8 "$@"
