"""Evaluation protocols: full ranking, sampled ranking, pointwise CTR, and a leaderboard report.

A model plugs in through a scoring function: ``users -> [B, n_items]`` scores for :func:`full_ranking`,
``(users, items [B, C]) -> [B, C]`` for :func:`sampled_ranking` (:func:`pair_scorer` / :func:`full_scorer` convert),
``predict(inputs) -> logits`` for :func:`evaluate_ctr`. Interaction matrices are scipy CSR matrices or anything with
``to_scipy()`` (``fastrec.data.Interactions``). Tie rules are documented in :mod:`fastrec.evaluate.full` and
:mod:`fastrec.evaluate.sampled`.
"""

from fastrec.evaluate._common import RankingResult, as_csr
from fastrec.evaluate.ctr import evaluate_ctr
from fastrec.evaluate.full import full_ranking
from fastrec.evaluate.report import Leaderboard, LeaderboardRow
from fastrec.evaluate.sampled import sampled_ranking
from fastrec.evaluate.scorers import dot_scorer, full_scorer, pair_scorer

__all__ = [
    "Leaderboard",
    "LeaderboardRow",
    "RankingResult",
    "as_csr",
    "dot_scorer",
    "evaluate_ctr",
    "full_ranking",
    "full_scorer",
    "pair_scorer",
    "sampled_ranking",
]
