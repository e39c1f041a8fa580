"""Collaborative filtering and retrieval: the MF family, NCF, autoencoders, neighbourhood CF, two-tower retrieval and
a two-stage pipeline. Every model is a :class:`Recommender`: ``score(users, items)``, ``score_all(users)``,
``recommend(users, k, exclude_seen=True)``, ``save(path)`` / ``load(path)``.
"""

from fastrec.models.cf.autoencoders import CDAE, AutoRec, DeepRec, MultDAE, MultVAE
from fastrec.models.cf.base import Recommender, load_model
from fastrec.models.cf.knn import KNN, baselines_als
from fastrec.models.cf.mf import MF, FMRatings
from fastrec.models.cf.ncf import NCF
from fastrec.models.cf.pipeline import TwoStage
from fastrec.models.cf.two_tower import TwoTower

__all__ = ["CDAE", "KNN", "MF", "NCF", "AutoRec", "DeepRec", "FMRatings", "MultDAE", "MultVAE", "Recommender",
           "TwoStage", "TwoTower", "baselines_als", "load_model"]
