"""xtjax: English intermediate-task training and zero-shot cross-lingual transfer in JAX/Flax NNX."""

__version__ = "0.1.0"
