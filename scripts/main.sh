#!/usr/bin/env bash
# Set up (if needed), then the main job: pretrain SynCo on CIFAR-10 with the small CNN on the CPU
# (about 6 minutes on 2 cores) and print kNN top-1 of the trained encoder, the untrained encoder
# and raw pixels. Extra KEY=VALUE arguments override the recipe (and the settings below).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Data sets beside the repository (CIFAR-10 JPEG archives in ../shared/datasets/cifar10-jpeg) unless set.
source scripts/data_root.sh
# The recipe's 4 eager epochs become 6 compiled ones (torch.compile; eager with one warning line where no compiler
# works): 49.22 % kNN on a 2-core AVX-512 CPU (docs/performance.md). On CPUs with native bfloat16,
# trainer.precision=bf16-mixed makes epochs ~1.2 x faster; without it (AVX2 only) bf16 is far slower.
exec .venv/bin/synco pretrain configs/pretrain/cifar10/synco.yaml trainer.compile=true train.epochs=6 "$@"
