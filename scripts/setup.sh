#!/usr/bin/env bash
# Set up everything on a fresh machine: .venv with the pinned PyTorch, SynCo and its test tools,
# and Debian's Fashion-MNIST files. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# torch/torchvision are pinned in pyproject.toml (torch==2.14.1, torchvision==0.29.1).
# One interpreter start checks the install and reads the versions (each start imports torch: seconds).
CHECK='import synco, torch, torchvision, timm, lightning, omegaconf, pytest, hypothesis, mkdocs, mkdocstrings, importlinter, xdist; print("torch", torch.__version__, "torchvision", torchvision.__version__)'
if ! VERSIONS=$(.venv/bin/python -c "$CHECK" 2>/dev/null); then
  # PyTorch 2.14.1 from PyPI is a CUDA build on x86_64: about 5.6 GB in .venv. Say so before pip fills the disk.
  FREE_GB=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
  if [ "${FREE_GB:-0}" -lt 7 ]; then
    echo "setup: only ${FREE_GB} GB free on $(df -P . | awk 'NR==2 {print $6}'); installing .venv (PyTorch with its CUDA libraries) needs about 7 GB" >&2
    exit 1
  fi
  .venv/bin/pip install --quiet --upgrade pip
  .venv/bin/pip install --quiet -e ".[test]"
  VERSIONS=$(.venv/bin/python -c "$CHECK")
fi

# Fashion-MNIST comes from Debian's package (no internet needed beyond the Debian mirror).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "warning: apt-get not found; install Debian's dataset-fashion-mnist or point data.root at torchvision's FashionMNIST files" >&2
  fi
fi
# trainer.compile (torch.compile's Inductor) builds C++ kernels on CPUs: it needs a C++ compiler (g++).
# Without one, compiled training falls back to eager with a warning; the tests expect one.
if ! command -v g++ >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq g++ >/dev/null
fi
echo "setup done: $VERSIONS"
