#!/usr/bin/env bash
# Set up (if needed), then the main job: pretrain SynCo on CIFAR-10 with the small CNN on the CPU
# (about 5 minutes on 2 cores) and print kNN top-1 of the trained encoder, the untrained encoder
# and raw pixels. Extra KEY=VALUE arguments override the recipe (and the settings below).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# Data sets beside the repository (CIFAR-10 JPEG archives in ../shared/datasets/cifar10-jpeg) unless set.
source scripts/data_root.sh
# The recipe's 4 eager float32 epochs (what the other recipes' rows in the README compare with) become 6
# in about the same time: torch.compile (issue 14; eager with one warning line where no compiler works)
# and, on CPUs with native bfloat16 (AVX512-BF16 or AMX), bf16 autocast. Same kNN as float32 at 6 epochs
# (49.29 against 49.11, docs/performance.md); without native bf16, autocast would be slower than float32.
SPEED=(trainer.compile=true train.epochs=6)
if grep -qE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null; then
  SPEED+=(trainer.precision=bf16-mixed)
fi
exec .venv/bin/synco pretrain configs/pretrain/cifar10/synco.yaml "${SPEED[@]}" "$@"
