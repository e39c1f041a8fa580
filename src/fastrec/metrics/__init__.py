"""Evaluation metrics, each defined by formula in its docstring.

- :mod:`fastrec.metrics.ranking`: HR, Recall, Precision, NDCG (binary and graded), MRR, MAP at K, per user, from a
  hit matrix whose ties are already resolved.
- :mod:`fastrec.metrics.ctr`: AUC, group AUC, log loss, RMSE, MAE.
- :mod:`fastrec.metrics.beyond`: catalog coverage and intra-list diversity.

The protocols that produce hit matrices (full ranking, sampled ranking) live in :mod:`fastrec.evaluate`.
"""

from fastrec.metrics.beyond import catalog_coverage, intra_list_diversity
from fastrec.metrics.ctr import GroupAUC, auc, group_auc, log_loss, mae, rmse
from fastrec.metrics.ranking import (
    RANKING_METRICS,
    average_precision,
    dcg_discounts,
    hit_rate,
    ideal_dcg_binary,
    mrr,
    ndcg,
    precision,
    recall,
)

__all__ = [
    "RANKING_METRICS",
    "GroupAUC",
    "auc",
    "average_precision",
    "catalog_coverage",
    "dcg_discounts",
    "group_auc",
    "hit_rate",
    "ideal_dcg_binary",
    "intra_list_diversity",
    "log_loss",
    "mae",
    "mrr",
    "ndcg",
    "precision",
    "recall",
    "rmse",
]
