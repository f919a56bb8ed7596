#!/usr/bin/env bash
# Run an xtjax command on every worker of a Cloud TPU VM (single host or pod slice).
#   tpu/launch.sh TPU_NAME ZONE -- xtjax pipeline configs/phang2020/xlmr_large_mnli.yaml --workdir gs-or-nfs-dir
# Copies the repository to each worker, sets up .venv there (with jax[tpu]) and runs the command on
# all workers at once; jax.distributed initialises from the TPU environment on each worker.
# The workdir must be shared by all workers (a GCS path via gcsfuse, or NFS) for Orbax checkpoints.
set -euo pipefail
TPU="${1:?TPU name}"; ZONE="${2:?zone}"; shift 2
[ "${1:-}" = "--" ] && shift
CMD="$*"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tar -C "$ROOT" --exclude=.venv --exclude=runs --exclude=.jax_cache -czf /tmp/xtjax.tgz .
gcloud compute tpus tpu-vm scp /tmp/xtjax.tgz "$TPU":~/xtjax.tgz --zone "$ZONE" --worker=all
gcloud compute tpus tpu-vm ssh "$TPU" --zone "$ZONE" --worker=all --command "
  set -e; mkdir -p ~/xtjax && tar -C ~/xtjax -xzf ~/xtjax.tgz && cd ~/xtjax
  bash scripts/_setup_env.sh && .venv/bin/pip install -q 'jax[tpu]'
  export PATH=\$HOME/xtjax/.venv/bin:\$PATH
  $CMD"
