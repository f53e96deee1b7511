#!/usr/bin/env bash
# Set up (if needed), then the main job: pretrain SynCo on CIFAR-10 with the small CNN on the CPU
# (about 10 minutes on 2 cores) and print kNN top-1 of the trained encoder, the untrained encoder
# and raw pixels. Extra KEY=VALUE arguments override the recipe.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Data sets beside the repository (CIFAR-10 JPEG archives in ../shared/datasets/cifar10-jpeg) unless set.
source scripts/data_root.sh
exec .venv/bin/synco pretrain configs/pretrain/cifar10/synco.yaml "$@"
