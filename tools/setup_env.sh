#!/usr/bin/env bash
# Sets up everything on a fresh machine: a virtual environment in .venv (made if missing), torch, and fastrec
# installed editable with its test extras, the C++ extension built by CMake (incrementally on later runs).
#   FASTREC_TORCH   the torch requirement (default torch==2.13.0, the CPU build this project is developed on)
#   PYTHON          the interpreter that makes the venv (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  "${PYTHON:-python3}" -m venv .venv
fi
pip() { .venv/bin/python -m pip --disable-pip-version-check "$@"; }
pip install --quiet --upgrade pip
# torch first and alone: the extension compiles against the torch in the venv (--no-build-isolation below).
pip install --quiet "${FASTREC_TORCH:-torch==2.13.0}" setuptools wheel "cmake>=3.18" ninja
pip install --quiet --no-build-isolation -e ".[test]"
.venv/bin/fastrec info
