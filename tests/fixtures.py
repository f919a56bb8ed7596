"""Test fixtures: re-exported from xtjax.tiny so that demos and tests build the same tiny models."""

from xtjax.tiny import *  # noqa: F401,F403
from xtjax.tiny import CORPUS, make_tiny_hf, make_unigram_tokenizer, make_wordpiece_tokenizer  # noqa: F401
