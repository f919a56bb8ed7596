#!/usr/bin/env bash
# Re-resolve requirements/*.lock to the newest versions pyproject.toml allows, install them into a
# scratch venv, run the fast tests there and, if they pass, write the new locks and print what changed.
#   scripts/update_lock.sh [--keep-going]   (--keep-going: write the locks even if tests fail)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_lock_common.sh
source "$ROOT/scripts/_lock_common.sh"
KEEP_GOING="${1:-}"
VENV="$ROOT/.venv-lockcheck"
[ -x "$VENV/bin/python" ] || "${PYTHON:-python3.11}" -m venv "$VENV"
UV="$(ensure_uv "$VENV/bin/python")"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT

echo "== resolving (Python 3.11 and 3.12 in one universal lock)"
compile_lock "$UV" dev,tfds,bench,tpu,cluster "$TMP/test.lock" --upgrade
# The demo's lock inside the test lock: the same version of every package both need.
compile_lock "$UV" dev,bench "$TMP/demo.lock" -c "$TMP/test.lock"
# Cloud TPU VMs (tpu/xt-tpu setup): jax[tpu] with libtpu, gcsfs, Ray and W&B, the rest as in the test lock.
compile_lock "$UV" tpu,cluster "$TMP/tpu.lock" -c "$TMP/test.lock"

echo "== fast tests against the new test lock"
install_locked "$VENV/bin/python" "$TMP/test.lock" dev,tfds,bench,tpu,cluster
status=0
(cd "$ROOT" && JAX_PLATFORMS=cpu HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 \
  TOKENIZERS_PARALLELISM=false "$VENV/bin/python" -m pytest -q -x -m "not slow" -p no:cacheprovider) || status=$?

echo "== what changed (old -> new)"
pins() { grep -E '^[A-Za-z0-9_.-]+==' "$1" | sed -E 's/ \\$//; s/ ;.*//' | sort -u; }
for f in test demo tpu; do
  echo "-- $f.lock"
  diff <(pins "$LOCK_DIR/$f.lock" 2>/dev/null || true) <(pins "$TMP/$f.lock") | grep -E '^[<>]' || echo "   (no change)"
done
if [ "$status" -ne 0 ] && [ "$KEEP_GOING" != "--keep-going" ]; then
  echo "fast tests failed against the new versions: requirements/*.lock left as they were" >&2
  exit "$status"
fi
cp "$TMP/test.lock" "$TMP/demo.lock" "$TMP/tpu.lock" "$LOCK_DIR/"
echo "wrote $LOCK_DIR/{test,demo,tpu}.lock"
