"""fastrec.data: CSR interaction storage, id maps, dataset loaders, splits, numba negative samplers, batching."""

from fastrec.data.batching import CTRBatches, PointwiseBatches, TripletBatches
from fastrec.data.interactions import DUPLICATE_POLICIES, Interactions
from fastrec.data.loaders import (
    CTRData,
    Sessions,
    dataset_path,
    load,
    load_dataset,
    load_libsvm,
    load_movielens,
    load_recbole_inter,
    load_sessions,
    load_user_item_lines,
    read_atomic,
    read_movielens,
    read_user_item_lines,
)
from fastrec.data.samplers import (
    NegativeSampler,
    evaluation_negatives,
    hard_negatives,
    popularity_negatives,
    uniform_negatives,
    union,
)
from fastrec.data.splits import (
    Split,
    StrongSplit,
    kfold,
    leave_one_out,
    random_holdout,
    strong_generalization,
    temporal_split,
)
from fastrec.data.synthetic import synthetic_arrays, synthetic_interactions

__all__ = [
    "CTRBatches",
    "CTRData",
    "DUPLICATE_POLICIES",
    "Sessions",
    "dataset_path",
    "load",
    "load_dataset",
    "load_libsvm",
    "load_movielens",
    "load_recbole_inter",
    "load_sessions",
    "read_atomic",
    "read_movielens",
    "Interactions",
    "NegativeSampler",
    "PointwiseBatches",
    "Split",
    "StrongSplit",
    "evaluation_negatives",
    "hard_negatives",
    "kfold",
    "leave_one_out",
    "load_user_item_lines",
    "popularity_negatives",
    "random_holdout",
    "read_user_item_lines",
    "strong_generalization",
    "synthetic_arrays",
    "synthetic_interactions",
    "TripletBatches",
    "temporal_split",
    "uniform_negatives",
    "union",
]
