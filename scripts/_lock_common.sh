# Shared by _setup_env.sh and update_lock.sh (sourced, not run). Defines ROOT-relative lock paths,
# the pinned uv and torch versions, and functions to get uv and the CPU build of torch.
UV_VERSION="0.13.9"
TORCH_VERSION="2.13.0+cpu"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"
LOCK_DIR="$ROOT/requirements"
# Lock name per extras set: what the README's two commands install.
lock_file() { case "$1" in dev,bench) echo "$LOCK_DIR/demo.lock";; dev,tfds,bench,tpu,cluster) echo "$LOCK_DIR/test.lock";;
  tpu,cluster) echo "$LOCK_DIR/tpu.lock";;
  *) echo "no lock for extras '$1' (scripts use dev,bench, dev,tfds,bench,tpu,cluster or tpu,cluster)" >&2; return 2;; esac; }

# uv inside the venv (pinned), installed with pip the first time.
ensure_uv() {  # $1: venv python
  local uv; uv="$(dirname "$1")/uv"
  if [ ! -x "$uv" ] || [ "$("$uv" --version | cut -d' ' -f2)" != "$UV_VERSION" ]; then
    "$1" -m pip install -q "uv==$UV_VERSION"
  fi
  echo "$uv"
}

# Where torch's CPU build comes from: a local wheel directory pip is configured with (this project's
# build machines), else PyTorch's CPU index. PyPI has no "+cpu" files, so the two never mix.
torch_source_args() {
  local d
  for d in ${PIP_FIND_LINKS:-} $(python3 -m pip config get global.find-links 2>/dev/null || true); do
    if compgen -G "$d/torch-${TORCH_VERSION/+/?}-*.whl" >/dev/null; then echo "--find-links $d"; return; fi
  done
  echo "--extra-index-url $TORCH_CPU_INDEX --index-strategy unsafe-best-match"
}

# torch itself, without dependencies (the lock pins those).
ensure_torch() {  # $1: venv python
  if [ "$("$1" -c 'import importlib.metadata as m; print(m.version("torch"))' 2>/dev/null)" = "$TORCH_VERSION" ]; then
    return
  fi
  "$1" -m pip install -q --no-deps "torch==$TORCH_VERSION" \
    || "$1" -m pip install -q --no-deps "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX"
}

# Resolve the given extras to a hashed, universal (Python 3.11 and 3.12) requirements file.
compile_lock() {  # $1: uv, $2: extras "a,b", $3: output file, rest: extra uv args (e.g. --upgrade, -c FILE)
  local uv="$1" extras="$2" out="$3"; shift 3
  local args=() e
  IFS=, read -ra ex <<< "$extras"
  for e in "${ex[@]}"; do args+=(--extra "$e"); done
  # shellcheck disable=SC2046
  (cd "$ROOT" && "$uv" pip compile -q pyproject.toml "${args[@]}" --universal --python-version 3.11 \
    --generate-hashes -c requirements/constraints.in $(torch_source_args) --no-emit-package torch \
    --custom-compile-command "scripts/update_lock.sh" -o "$out" "$@")
}

# Make VENV hold exactly LOCK (+ torch's CPU build when the extras include dev, + xtjax editable).
install_locked() {  # $1: venv python, $2: lock file, $3: extras
  local vpy="$1" lock="$2" extras="$3" uv
  uv="$(ensure_uv "$vpy")"
  # sync (not install): packages not in the lock are removed, so the venv is the lock exactly.
  "$uv" pip sync -q --python "$vpy" "$lock"
  if [[ "$extras" == *dev* ]]; then ensure_torch "$vpy"; fi
  "$uv" pip install -q --python "$vpy" --no-deps -e "$ROOT"
}
