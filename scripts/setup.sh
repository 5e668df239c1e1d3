#!/usr/bin/env bash
# Installs pixelzoo on a fresh machine: the CPU build of PyTorch (from the machine's local wheel, never
# a multi-GB CUDA build), the package itself with its dependencies (matplotlib and TensorBoard among them)
# and its test extras, and, where apt-get can be used, Debian's Fashion-MNIST (tests that need it are
# skipped with a reason where it cannot be installed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test]"
if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null) \
      || echo "setup: could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped" >&2
  else
    echo "setup: apt-get unavailable (or not root); Fashion-MNIST tests will be skipped" >&2
  fi
fi
