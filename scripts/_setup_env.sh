#!/usr/bin/env bash
# Create or reuse .venv and install xtjax with the extras given as $1 (e.g. "dev").
# Idempotent: a second run only re-checks the installed packages.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXTRAS="${1:-}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  "$PY" -m venv "$ROOT/.venv"
fi
VPY="$ROOT/.venv/bin/python"
STAMP="$ROOT/.venv/.xtjax-installed-${EXTRAS:-base}"
HASH="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$HASH" ]; then
  exit 0
fi
"$VPY" -m pip install -q --upgrade pip
if [[ "$EXTRAS" == *dev* ]]; then
  # The CPU build of torch (the parity reference). A bare "torch" would pull a multi-GB CUDA build.
  "$VPY" -m pip show torch >/dev/null 2>&1 || "$VPY" -m pip install -q "torch==2.13.0" \
    || "$VPY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu
fi
if [ -n "$EXTRAS" ]; then
  "$VPY" -m pip install -q -e "$ROOT[$EXTRAS]"
else
  "$VPY" -m pip install -q -e "$ROOT"
fi
echo "$HASH" > "$STAMP"
