#!/usr/bin/env bash
# Set up .venv (idempotent) and run the whole test suite on CPU, slow tests included.
# Extra arguments go to pytest, e.g. scripts/test.sh -m "not slow" -x
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/_setup_env.sh" dev,tfds,bench
cd "$ROOT"
export JAX_PLATFORMS=cpu
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
exec "$ROOT/.venv/bin/python" -m pytest -q -ra "$@"
