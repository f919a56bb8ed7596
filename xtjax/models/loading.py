"""One door to a pretrained model: an xtjax model folder, a Hugging Face folder, or a hub id."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from flax import nnx
from jax.sharding import Mesh

from xtjax.models import hf_io, hf_stream, registry, store
from xtjax.models import init as model_init
from xtjax.parallel.mesh import single_device_mesh
from xtjax.parallel.rules import DEFAULT_RULES, Rules, state_shardings

log = logging.getLogger(__name__)


@dataclasses.dataclass
class Pretrained:
  family: registry.Family
  config: Any
  graphdef: Any
  params: nnx.State
  tokenizer: Any | None
  source: str  # where the weights came from, for logs
  ignored: tuple[str, ...] = ()  # checkpoint tensors deliberately not used (MLM/NSP heads, ...)

  def model(self) -> nnx.Module:
    return nnx.merge(self.graphdef, self.params)


def load_hf(folder: Path, mesh: Mesh | None = None, rules: Rules = DEFAULT_RULES,
            dtype: str | None = None, param_dtype: str | None = None, with_tokenizer: bool = True,
            lm_logits: bool = True) -> Pretrained:
  """Converts a Hugging Face folder (strict tensor mapping): streamed tensor by tensor onto the mesh for
  families with a `tensor_plan` and safetensors weights, otherwise read whole, then placed. Without
  `lm_logits`, the parts only the LM logits need (`ModelConfig.for_heads`) are skipped by name, unread."""
  hf_cfg = hf_io.read_config(folder)
  family = registry.for_hf_model_type(hf_cfg["model_type"], where=str(folder / "config.json"))
  files = hf_io.safetensors_files(folder) if family.tensor_plan is not None else None
  if files is not None:  # tensor by tensor onto the mesh (hf_stream)
    cfg = family.config_for_tensors(family.config_from_hf(hf_cfg), list(files)).for_heads(lm_logits)
    cfg = model_init.with_dtypes(cfg, dtype, param_dtype)
    graphdef, state, ignored = hf_stream.load(folder, family, cfg, mesh or single_device_mesh(), rules, files)
  else:
    tensors = hf_io.read_tensors(folder)
    cfg = family.config_for_tensors(family.config_from_hf(hf_cfg), list(tensors)).for_heads(lm_logits)
    cfg = model_init.with_dtypes(cfg, dtype, param_dtype)
    pure, ignored = family.params_from_hf(cfg, tensors, where=str(folder))
    graphdef, state = model_init.place(family, cfg, pure, mesh, rules, where=str(folder))
  tok = hf_io.load_tokenizer(folder) if with_tokenizer and hf_io.has_tokenizer(folder) else None
  if ignored:
    log.info("%s: ignored %d tensors not used by the model (e.g. %s)", folder, len(ignored), ignored[0])
  return Pretrained(family, cfg, graphdef, state, tok, f"hf:{folder}", tuple(ignored))


def load_xtjax(folder: Path, mesh: Mesh | None = None, rules: Rules = DEFAULT_RULES,
               dtype: str | None = None, param_dtype: str | None = None, with_tokenizer: bool = True,
               lm_logits: bool = True) -> Pretrained:
  """An xtjax model folder onto the mesh; without `lm_logits`, its parts only the LM logits need are not read."""
  family, saved = store.read_meta(folder)
  cfg = model_init.with_dtypes(saved.for_heads(lm_logits), dtype, param_dtype)
  mesh = mesh or single_device_mesh()
  graphdef, abs_state = model_init.abstract(family, store.disk_config(cfg))
  pure = store.load_params(folder, family, store.disk_config(cfg), state_shardings(abs_state, mesh, rules),
                           saved=store.disk_config(saved))
  nnx.replace_by_pure_dict(abs_state, pure)
  if store.disk_config(cfg) != cfg:  # stacked layers (`models.scan`): stacked on the mesh
    graphdef, like = model_init.abstract(family, cfg)
    abs_state = model_init.relayout(abs_state, like, state_shardings(like, mesh, rules), where=str(folder))
  tok_dir = store.tokenizer_dir(folder)
  tok = hf_io.load_tokenizer(tok_dir) if with_tokenizer and tok_dir is not None else None
  return Pretrained(family, cfg, graphdef, abs_state, tok, f"xtjax:{folder}")


def load_pretrained(path_or_id: str | Path, mesh: Mesh | None = None, rules: Rules = DEFAULT_RULES,
                    dtype: str | None = None, param_dtype: str | None = None,
                    with_tokenizer: bool = True, lm_logits: bool = True) -> Pretrained:
  """Loads an xtjax model folder, a Hugging Face folder or a hub id, sharded onto `mesh`; `lm_logits=False`:
  without what only the LM logits need (`ModelConfig.for_heads`: a run none of whose heads reads them)."""
  folder = hf_io.resolve(path_or_id)
  loader = load_xtjax if store.is_model_dir(folder) else load_hf
  return loader(folder, mesh, rules, dtype, param_dtype, with_tokenizer, lm_logits)


def export_hf(pre: Pretrained, out_dir: Path, dtype: str = "float32") -> Path:
  """Writes a Hugging Face folder that `transformers.AutoModel.from_pretrained` loads."""
  import jax
  import numpy as np

  from xtjax.models.layers import to_dtype

  pure = jax.tree.map(lambda x: np.asarray(jax.device_get(x)).astype(to_dtype(dtype)), nnx.to_pure_dict(pre.params))
  tensors = pre.family.params_to_hf(pre.config, pure)
  hf_cfg = pre.family.hf_config_from(pre.config)
  hf_cfg["architectures"] = [pre.family.hf_architecture(pre.config)]
  hf_cfg["torch_dtype"] = "float32" if dtype == "float32" else dtype
  tok_tmp = None
  if pre.tokenizer is not None:
    import tempfile

    tok_tmp = Path(tempfile.mkdtemp(prefix="xtjax-tok-"))
    pre.tokenizer.save_pretrained(str(tok_tmp))
  hf_io.write_folder(Path(out_dir), hf_cfg, tensors, tok_tmp)
  return Path(out_dir)
