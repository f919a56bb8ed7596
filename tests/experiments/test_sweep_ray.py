"""The Ray backend on a local 2-CPU Ray instance: 3 tiny cells (real training), one phase run killed
(SIGKILL) after its checkpoint, resumed from it on the next sweep; finished runs are not redone."""

import json
import os
import signal
from pathlib import Path

import pytest

from xtjax.experiments import sweep

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ray_backend_kills_one_run_and_resumes_it_from_its_checkpoint(tmp_path, tiny_hf, monkeypatch):
  ray = pytest.importorskip("ray")
  from xtjax.experiments.sweep_ray import run_sweep_ray
  from xtjax.tiny import write_tiny_xtreme

  model = tiny_hf("xlm-roberta")
  write_tiny_xtreme(tmp_path / "data", n_train=48, n_eval=9)
  text = (ROOT / "configs/tiny/pipeline.yaml").read_text()
  (tmp_path / "pipeline.yaml").write_text(text.replace("runs/demo/hf-tiny-xlmr", str(model))
                                          .replace("runs/demo", str(tmp_path)))
  # 3 cells: none -> xnli, mnli (1 epoch) -> xnli, mnli (2 epochs) -> xnli; 5 runs (2 intermediate).
  (tmp_path / "s.yaml").write_text(
      "name: r\npipeline: pipeline.yaml\nintermediate: [none, intermediate-mnli]\ntargets: [target-xnli]\n"
      "latency: false\naxes:\n  intermediate.train.epochs: [1, 2]\n"
      f"overrides: [defaults.cache_dir={tmp_path / 'cache'}, defaults.checkpoint.every_steps=2, "
      "defaults.checkpoint.async_save=false]\n")
  cfg, pipeline = sweep.load_sweep(tmp_path / "s.yaml")
  work = tmp_path / "sw"
  killed = tmp_path / "killed"

  def train_killed_once(tcfg, run_dir):
    """The 2-epoch intermediate run: 4 steps and a checkpoint, then its process is SIGKILLed (once)."""
    from xtjax.train.loop import train

    if tcfg.epochs == 2 and tcfg.init_from is None and tcfg.tasks[0].name == "mnli" and not killed.exists():
      killed.write_text(str(os.getpid()))
      train(tcfg, run_dir, stop_after_steps=4)
      os.kill(os.getpid(), signal.SIGKILL)
    return train(tcfg, run_dir)

  # Ray's workers inherit the environment: the tests' persistent compilation cache (conftest.py) by its
  # environment variables, so the five runs (the same step shapes) compile once.
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(ROOT / ".jax_cache"))
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
  ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
  try:
    counts = run_sweep_ray(cfg, pipeline, work, train_fn=train_killed_once, retries=0)
    assert counts == {"done": 2, "failed": 1}, counts
    cells = sweep.expand(cfg, pipeline, work)
    lost = next(c for c in cells if sweep.cell_status(c) == "failed")
    inter_dir, target_dir = lost.runs[0].run_dir, lost.runs[1].run_dir
    assert "epochs=2" in lost.name and killed.exists()
    assert "WorkerCrashedError" in (inter_dir / "sweep_error.json").read_text()
    assert (inter_dir / "checkpoints").is_dir() and not (target_dir / "summary.json").exists()
    done = sorted(work.glob("runs/*/summary.json"))
    assert len(done) == 3
    mtimes = [p.stat().st_mtime_ns for p in done]

    counts = run_sweep_ray(cfg, pipeline, work, train_fn=train_killed_once, retries=0)
    assert counts == {"done": 3}, counts
    assert [p.stat().st_mtime_ns for p in done] == mtimes  # finished runs not redone
    summary = json.loads((inter_dir / "summary.json").read_text())
    assert summary["start"].startswith("resumed from") and summary["start"].endswith("at step 4")
    assert summary["step"] == 2 * 3  # 2 epochs of 48 examples at batch 16
    target = json.loads((target_dir / "summary.json").read_text())
    assert str(inter_dir) in target["start"]
    assert set(target["zero_shot"]["xnli"]) == {"en", "de", "es", "avg"}
  finally:
    ray.shutdown()


def test_ray_options_slice_names_and_bad_input(tmp_path, capsys):
  from xtjax.cli.main import main
  from xtjax.experiments.sweep_ray import _slice_topology, parse_resources

  # Ray's names (ray.util.tpu: accelerator version and chip topology) of Cloud TPU slice types.
  assert _slice_topology("v4-32") == ("v4", "2x2x4")
  assert _slice_topology("v5e-16") == ("v5litepod", "4x4")
  assert _slice_topology("v5p-8") == ("v5p", "2x2x1")
  assert parse_resources('{"TPU": 4}') == {"TPU": 4.0}
  (tmp_path / "pipeline.yaml").write_text((ROOT / "configs/tiny/pipeline.yaml").read_text())
  (tmp_path / "s.yaml").write_text("name: t\npipeline: pipeline.yaml\n")
  for flags, message in ((["--slice", "v4-32"], "need --backend ray"),
                         (["--backend", "ray", "--cell-resources", "{TPU: 4}"], "--cell-resources: not JSON"),
                         (["--backend", "ray", "--cell-resources", '{"TPU": -1}'], "resource -> amount"),
                         (["--backend", "ray", "--slice", "cpu:8"], "a TPU slice type")):
    assert main(["sweep", str(tmp_path / "s.yaml"), "--workdir", str(tmp_path / "w"), *flags]) != 0
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, (flags, err)
