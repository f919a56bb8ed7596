#!/usr/bin/env bash
# Set up .venv from requirements/test.lock (idempotent) and run the whole test suite on CPU, slow
# tests included, on XTJAX_TEST_WORKERS processes (pytest-xdist, default 2: this project's CI machines have 2
# cores; 0 runs in this process). Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
#   scripts/test.sh --latest [...]: the same suite in .venv-latest, against the newest versions
#   pyproject.toml allows instead of the lock (a weekly drift check; not part of .ci/run).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
if [ "${1:-}" = "--latest" ]; then
  shift
  bash "$ROOT/scripts/_setup_env.sh" dev,tfds,bench,tpu,cluster --latest
  VENV="$ROOT/.venv-latest"
else
  bash "$ROOT/scripts/_setup_env.sh" dev,tfds,bench,tpu,cluster
fi
cd "$ROOT"
export JAX_PLATFORMS=cpu
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
WORKERS="${XTJAX_TEST_WORKERS:-2}"
exec "$VENV/bin/python" -m pytest -q -ra -n "$WORKERS" --dist worksteal "$@"
