#!/usr/bin/env bash
# Create or reuse .venv and install exactly the lock for the extras given as $1 ("dev,bench" for the demo,
# "dev,tfds,bench,tpu,cluster" for the tests), with torch's CPU build and xtjax itself (editable).
#   --latest: instead, .venv-latest with the newest versions pyproject.toml allows (drift check).
# Idempotent: a second run compares a stamp (lock + pyproject + scripts) and installs nothing.
# Python: $PYTHON, else python3.11, else python3.12 (the locks cover both).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/_lock_common.sh
source "$ROOT/scripts/_lock_common.sh"
EXTRAS="${1:?extras, e.g. dev or dev,tfds,bench,tpu,cluster}"
LATEST="${2:-}"
VENV="$ROOT/.venv"; [ "$LATEST" = "--latest" ] && VENV="$ROOT/.venv-latest"

if [ ! -x "$VENV/bin/python" ]; then
  PY="${PYTHON:-}"
  if [ -z "$PY" ]; then
    for c in python3.11 python3.12; do command -v "$c" >/dev/null 2>&1 && { PY="$c"; break; }; done
  fi
  if [ -z "$PY" ] || ! "$PY" -c 'import sys; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 12))' 2>/dev/null; then
    echo "xtjax needs Python 3.11 or 3.12 (found: ${PY:-none}); set PYTHON=/path/to/python3.11" >&2
    exit 2
  fi
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

if [ "$LATEST" = "--latest" ]; then
  UV="$(ensure_uv "$VPY")"
  compile_lock "$UV" "$EXTRAS" "$VENV/latest.lock" --upgrade --no-header
  echo "drift check against:"; grep -E '^(jax|jaxlib|flax|optax|orbax-checkpoint|transformers|datasets)==' "$VENV/latest.lock" | cut -d' ' -f1-3
  install_locked "$VPY" "$VENV/latest.lock" "$EXTRAS"
  exit 0
fi

# A venv is current for EXTRAS when its stamp holds the hash of that lock and of what installs it.
stamp_file() { echo "$VENV/.xtjax-installed-${1//,/-}"; }
stamp_hash() { cat "$(lock_file "$1")" "$ROOT/pyproject.toml" "$ROOT/scripts/_setup_env.sh" \
  "$ROOT/scripts/_lock_common.sh" | sha256sum | cut -d' ' -f1; }
is_current() { [ -f "$(stamp_file "$1")" ] && [ "$(cat "$(stamp_file "$1")")" = "$(stamp_hash "$1")" ]; }

LOCK="$(lock_file "$EXTRAS")"
is_current "$EXTRAS" && exit 0
# The demo's lock is resolved inside the test lock (same versions, fewer packages): a venv set up for
# the tests serves the demo as it is.
[ "$EXTRAS" = dev ] && is_current dev,tfds,bench,tpu,cluster && exit 0
install_locked "$VPY" "$LOCK" "$EXTRAS"
rm -f "$VENV"/.xtjax-installed-*  # the venv now holds this lock only
stamp_hash "$EXTRAS" > "$(stamp_file "$EXTRAS")"
