"""Edges a user meets first on a finished run: a language the file lacks, run directories for embed,
quiet logs, closed pipes."""

import io

import pytest
import yaml

from xtjax.checkpoint import RunCheckpoints
from xtjax.cli.main import main
from xtjax.data.cache import cached_features, read_examples
from xtjax.data.sources import DataSource
from xtjax.errors import DataError
from xtjax.models import store
from xtjax.models.heads import HeadConfig
from xtjax.models.init import init_task_model
from xtjax.models.loading import load_pretrained
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.tasks import registry
from xtjax.tasks.base import FeatureSettings
from xtjax.tasks.synthetic import write_toy_data

XNLI_TEST = ("language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\tsentence2_parse\t"
             "sentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\tlabel5\n"
             "de\tentailment\t-\t-\t-\t-\tDer Hund\tEin Tier\t1\t1\tfiction\t-\t-\t-\t-\t-\n")


@pytest.fixture(scope="module")
def toy_run(tiny_hf, tmp_path_factory):
  """A one-head run directory as `xtjax train` leaves it (config.yaml, best/, model/), toy data in en and de."""
  hf = tiny_hf("xlm-roberta")
  pre = load_pretrained(hf)
  graphdef, params, _ = init_task_model(pre.family, pre.config, {"toy_cls": HeadConfig("classification", 2)},
                                         make_mesh(MeshConfig(devices=1)), seed=1)
  run = tmp_path_factory.mktemp("run")
  ckpt = RunCheckpoints(run, async_save=False)
  ckpt.save_best(3, params, 50.0, {"step": 3})
  ckpt.close()
  store.save(run / "model", pre.family, pre.config, params["encoder"], pre.tokenizer)
  data = write_toy_data(run / "data", n_train=4, n_eval=6, languages=("en", "de"))
  (data / "test.fr.jsonl").write_text("")
  conf = {"model": {"pretrained": str(hf)}, "features": {"max_length": 32},
          "tasks": [{"name": "toy_cls", "data": {"path": str(data / "{split}.{lang}.jsonl")}}]}
  (run / "config.yaml").write_text(yaml.safe_dump(conf))
  return run


def _predict(run, language, out):
  return main(["predict", "--checkpoint", str(run), "--task", "toy_cls", "--language", language, "--out", str(out),
               "--batch-sizes", "8", "--seq-lens", "32", "--devices", "1"])


def test_predict_language_without_rows_is_one_line(toy_run, tmp_path, capsys):
  assert _predict(toy_run, "fr", tmp_path / "fr.jsonl") == 2
  err = capsys.readouterr().err.strip()
  assert err == f"xtjax predict: error: no examples for fr in {toy_run / 'data' / 'test.fr.jsonl'} " \
                "(task 'toy_cls', split 'test')"
  assert not (tmp_path / "fr.jsonl").exists()


@pytest.mark.slow
def test_eval_language_without_rows_is_one_line_and_caches_nothing(toy_run, capsys):
  assert main(["eval", "--checkpoint", str(toy_run), "--task", "toy_cls", "--languages", "fr"]) == 2
  err = capsys.readouterr().err.strip().splitlines()
  assert err == [f"xtjax eval: error: no examples for fr in {toy_run / 'data' / 'test.fr.jsonl'} "
                 "(task 'toy_cls', split 'test')"]
  assert not list(toy_run.parent.glob(".feature_cache/toy_cls/test.fr.*"))


def test_predict_prints_no_known_harmless_warnings(toy_run, tmp_path, caplog):
  """Orbax's read-only-manager and missing-metadata warnings are dropped; other warnings are kept."""
  import logging

  assert _predict(toy_run, "de", tmp_path / "de.jsonl") == 0
  assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
  logging.getLogger("absl").warning("Given directory is read only=/x")
  logging.getLogger("absl").warning("something else")
  assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == ["something else"]


def test_a_closed_pipe_is_quiet(monkeypatch, capsys):
  """`xtjax presets --json | head`: the reader goes away; no BrokenPipeError, no traceback."""

  class ClosedPipe:
    def write(self, text):
      raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
      raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
      raise io.UnsupportedOperation("fileno")

  monkeypatch.setattr("sys.stdout", ClosedPipe())
  assert main(["presets", "--json"]) == 141
  assert capsys.readouterr().err == ""


def test_no_rows_for_a_language_in_a_shared_file(tmp_path):
  """XNLI's one test file holds every language: a language it lacks is an error, and nothing is cached."""
  path = tmp_path / "xnli.test.tsv"
  path.write_text(XNLI_TEST)
  task, source = registry.get("xnli"), DataSource(files={"test": str(path)})
  assert len(read_examples(task, "test", "de", source)) == 1
  with pytest.raises(DataError, match=rf"^no examples for fr in {path} \(task 'xnli', split 'test'\)$"):
    read_examples(task, "test", "fr", source)
  from fixtures import make_unigram_tokenizer

  cache = tmp_path / "cache"
  with pytest.raises(DataError, match="no examples for fr"):
    cached_features(task, "test", "fr", source, make_unigram_tokenizer(), FeatureSettings(max_length=16), cache)
  assert not cache.exists() or not any(cache.rglob("entry.pkl"))


def test_embed_accepts_a_run_directory(toy_run, tmp_path, capsys):
  import numpy as np

  (tmp_path / "in.txt").write_text("the fox runs\nder hund\n")
  for model, out in ((toy_run, "run.npy"), (toy_run / "model", "folder.npy")):
    assert main(["embed", "--model", str(model), "--input", str(tmp_path / "in.txt"), "--out", str(tmp_path / out),
                 "--layer", "1"]) == 0
  np.testing.assert_array_equal(np.load(tmp_path / "run.npy"), np.load(tmp_path / "folder.npy"))
  capsys.readouterr()
  unfinished = tmp_path / "unfinished"
  (unfinished / "best").mkdir(parents=True)
  (unfinished / "config.yaml").write_text("{}")
  assert main(["embed", "--model", str(unfinished), "--input", str(tmp_path / "in.txt"),
               "--out", str(tmp_path / "x.npy")]) == 2
  assert capsys.readouterr().err.strip().splitlines() == \
      [f"xtjax embed: error: {unfinished}: the run has not finished: no exported encoder {unfinished / 'model'} yet"]
