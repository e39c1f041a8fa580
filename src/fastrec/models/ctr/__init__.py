"""CTR ranking models, each a documented ``nn.Module`` over ``fastrec.nn`` layers whose embedding lookups all go
through one fused :class:`fastrec.nn.EmbeddingBagCollection` per table set.

Build from feature specs (``fastrec.features``)::

    from fastrec.models.ctr import DeepFM
    model = DeepFM(preprocessor.features, embed_dim=16)
    logits = model(batch)                 # batch: dict feature name -> tensor; logits [B]
    model.save("deepfm.pt", preprocessor) # model, _ = load_model("deepfm.pt")
"""

from fastrec.models.ctr.base import CTRModel, Embedded, FeatureEmbedding, FeaturesLinear, load_model
from fastrec.models.ctr.behaviour import BST, DIN, MMoE, SharedBottom
from fastrec.models.ctr.interaction_models import DLRM, FFM, DCNv2, xDeepFM
from fastrec.models.ctr.models import AFM, DCN, FM, LR, NFM, AutoInt, DeepFM, WideDeep

__all__ = [
    "AFM", "BST", "DCN", "DIN", "DLRM", "FFM", "FM", "LR", "NFM", "AutoInt", "CTRModel", "DCNv2", "DeepFM", "Embedded",
    "FeatureEmbedding", "FeaturesLinear", "MMoE", "SharedBottom", "WideDeep", "load_model", "xDeepFM",
]
