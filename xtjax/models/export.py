"""Exporting a fine-tuned TaskModel's encoder as an xtjax model folder (`models.store`), what `init_from`
and `xtjax infer` read."""

from __future__ import annotations

import jax
import numpy as np
from etils import epath
from flax import nnx

from xtjax import config as config_lib
from xtjax.models import lora as lora_lib
from xtjax.models import registry, store
from xtjax.models.scan import to_per_layer


def export_encoder(model_dir: epath.PathLike, family: registry.Family, encoder_config, params, tokenizer,
                   lora: lora_lib.LoraConfig | None = None, adapters_dir: epath.PathLike | None = None,
                   base: dict | None = None) -> None:
  """`model_dir`: the encoder of a TaskModel's `params` as an xtjax model folder: what the run built, so without
  what no head of it used (`ModelConfig.for_heads`: an untied LM head, a T5 decoder), which the source checkpoint
  keeps; `xtjax model export-hf` writes such a folder as the bare HF model it is (`LlamaModel`,
  `MT5EncoderModel`). With `lora`, its adapters
  merged into the weights there, and kept apart in `adapters_dir` with the `base` source they were trained on
  (for `init_from_lora: adapters`).

  Every process joins the gather (encoder shards may live on other hosts); process 0 writes."""
  from jax.experimental import multihost_utils

  enc = params["encoder"]
  if jax.process_count() > 1:
    enc = jax.tree.map(lambda x: np.asarray(multihost_utils.process_allgather(x, tiled=True)), enc)
  if jax.process_index() == 0:
    if lora is not None:
      pure = to_per_layer(nnx.to_pure_dict(enc))  # adapters saved and merged per layer, as the model folder
      store.save_adapters(adapters_dir, {"encoder": lora_lib.adapters_only(pure)}, config_lib.to_dict(lora), base)
      enc = lora_lib.merged(pure, lora.alpha)
    store.save(model_dir, family, encoder_config, enc, tokenizer)
