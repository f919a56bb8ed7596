import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Eight fake CPU devices for sharding tests (every mesh must give the numbers of one device).
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8").strip()

import pytest  # noqa: E402

# XLA:CPU compiles many small kernels slowly; a persistent compilation cache lets the many tests
# that compile the same steps (same shapes) share the work within a run and across runs.
import jax  # noqa: E402

jax.config.update("jax_compilation_cache_dir", str(Path(__file__).resolve().parents[1] / ".jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

sys.path.insert(0, str(Path(__file__).parent))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_hf(tmp_path_factory):
  """A cache of tiny HF model folders by kind, built once per session."""
  from fixtures import make_tiny_hf

  built = {}

  def get(kind: str = "xlm-roberta", head: str | None = None):
    key = (kind, head)
    if key not in built:
      built[key] = make_tiny_hf(tmp_path_factory.mktemp(f"hf-{kind}-{head}"), kind, head=head)
    return built[key]

  return get
