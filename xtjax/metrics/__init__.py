"""Evaluation metrics that reproduce XTREME / XTREME-R's official numbers.

Plain Python and numpy in, floats (percent) out; nothing here knows about models or training.
Note that `xtjax.metrics.mlqa` is the function here; its module's helpers are imported with
`from xtjax.metrics.mlqa import normalize_answer`.
"""

from xtjax.metrics.bucc import (bucc_candidates, bucc_extract, bucc_f1, bucc_mine,
                                bucc_optimize_threshold, margin_scores)
from xtjax.metrics.classification import accuracy, average_over_languages
from xtjax.metrics.nearest import knn, l2_normalize
from xtjax.metrics.mlqa import mlqa
from xtjax.metrics.retrieval import average_precision_at_k, map_at_k, tatoeba_accuracy
from xtjax.metrics.squad import find_best_thresh, squad_v1, squad_v2
from xtjax.metrics.tagging import tagging_scores

__all__ = [
    "accuracy", "average_over_languages", "average_precision_at_k", "bucc_candidates",
    "bucc_extract", "bucc_f1", "bucc_mine", "bucc_optimize_threshold", "find_best_thresh",
    "knn", "l2_normalize", "map_at_k", "margin_scores", "mlqa", "squad_v1", "squad_v2",
    "tagging_scores", "tatoeba_accuracy",
]
