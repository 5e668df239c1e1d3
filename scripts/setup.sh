#!/usr/bin/env bash
# Installs pixelzoo on a fresh machine: the CPU build of PyTorch (from the machine's local wheel, never
# a multi-GB CUDA build), the package itself with its dependencies (matplotlib, TensorBoard and Flask
# among them) and its test extras (Selenium among them), and, where apt-get can be used, Debian's
# Fashion-MNIST and Chromium with its driver (tests that need them are skipped with a reason where
# they cannot be installed).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python3 -m pip install --quiet "torch==2.13.0"
python3 -m pip install --quiet -e ".[test]"
missing=()
dpkg -s dataset-fashion-mnist >/dev/null 2>&1 || missing+=(dataset-fashion-mnist)
dpkg -s chromium >/dev/null 2>&1 || missing+=(chromium)
dpkg -s chromium-driver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    for package in "${missing[@]}"; do  # one at a time: a package that cannot be had does not stop the others
      { [ -n "${updated:-}" ] || { apt-get update -qq && updated=1; }; } \
        && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
        || echo "setup: could not install $package; the tests that need it will be skipped" >&2
    done
  else
    echo "setup: apt-get unavailable (or not root): ${missing[*]} not installed; the tests that need them will be skipped" >&2
  fi
fi
