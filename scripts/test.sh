#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Extra arguments go to pytest (e.g. -m "not slow").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Data sets beside the repository (CIFAR-10 JPEG archives in ../shared/datasets/cifar10-jpeg) unless set.
source scripts/data_root.sh
exec .venv/bin/python -m pytest -q "$@"
