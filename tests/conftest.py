import os
import sys
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402

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
