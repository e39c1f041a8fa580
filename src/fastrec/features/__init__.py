"""fastrec.features: feature specifications for CTR models and DataFrame preprocessing (label encoding with an
out-of-vocabulary bucket, hashing, binning, normalization, crosses) whose fitted state saves with the model."""

from fastrec.features.preprocessing import (
    Binned,
    Categorical,
    Cross,
    FeatureBatches,
    FeatureTable,
    Hashed,
    MultiHot,
    Numeric,
    Preprocessor,
    Sequence,
)
from fastrec.features.specs import (
    DenseFeature,
    Feature,
    MultiHotFeature,
    SequenceFeature,
    SparseFeature,
    check_features,
    feature_from_dict,
    feature_to_dict,
)

__all__ = [
    "Binned", "Categorical", "Cross", "DenseFeature", "Feature", "FeatureBatches", "FeatureTable", "Hashed", "MultiHot",
    "MultiHotFeature", "Numeric", "Preprocessor", "Sequence", "SequenceFeature", "SparseFeature", "check_features",
    "feature_from_dict", "feature_to_dict",
]
