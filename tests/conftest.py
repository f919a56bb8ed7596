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


@pytest.fixture(scope="session")
def tiny_multitask_run(tiny_hf, tmp_path_factory):
  """A multi-task run directory as `xtjax train` leaves it: config.yaml, best/ (TaskModel params with
  five heads) and model/; only toy_cls has data (test split in en, de, es, 12 examples each)."""
  import yaml

  from fixtures import MULTITASK_HEADS
  from xtjax.checkpoint import RunCheckpoints
  from xtjax.models import store
  from xtjax.models.heads import HeadConfig
  from xtjax.models.init import init_task_model
  from xtjax.models.loading import load_pretrained
  from xtjax.parallel.mesh import MeshConfig, make_mesh
  from xtjax.tasks.synthetic import write_toy_data

  hf = tiny_hf("xlm-roberta")
  pre = load_pretrained(hf)
  mesh = make_mesh(MeshConfig(data=2, devices=2))
  heads = {name: HeadConfig(kind, n) for name, (kind, n) in MULTITASK_HEADS.items()}
  graphdef, params, _ = init_task_model(pre.family, pre.config, heads, mesh, seed=1)
  run = tmp_path_factory.mktemp("multitask") / "run"
  ckpt = RunCheckpoints(run, async_save=False)
  ckpt.save_best(7, params, 50.0, {"step": 7})
  ckpt.close()
  store.save(run / "model", pre.family, pre.config, params["encoder"], pre.tokenizer)
  data = write_toy_data(run.parent / "data", n_train=4, n_eval=12)
  tasks = [{"name": n} for n in MULTITASK_HEADS if n != "toy_cls"]
  tasks.append({"name": "toy_cls", "data": {"path": str(data / "{split}.{lang}.jsonl")}})
  conf = {"model": {"pretrained": str(hf)}, "tasks": tasks, "features": {"max_length": 32}, "eval_batch_size": 8}
  (run / "config.yaml").write_text(yaml.safe_dump(conf))
  return {"run": run, "graphdef": graphdef, "params": params, "vocab": pre.config.vocab_size,
          "pad": pre.config.pad_token_id}


@pytest.fixture(params=["per-layer", "stacked"])
def layer_layout(request, monkeypatch):
  """Runs a test with models of every size stored per layer, then stacked (`models.scan`): the default
  `scan_layers: null` stacks from `SCAN_BY_DEFAULT_FROM` layers, lowered to 1 for the stacked run, so
  configs read from Hugging Face folders (the tiny 2-layer fixtures) come out stacked too."""
  if request.param == "stacked":
    from xtjax.models import scan

    monkeypatch.setattr(scan, "SCAN_BY_DEFAULT_FROM", 1)
  return request.param
