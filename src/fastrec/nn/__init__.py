"""Drop-in torch modules built on fastrec.ops."""

from fastrec.nn.embedding import EmbeddingBag, EmbeddingBagCollection, TableConfig
from fastrec.nn.interaction import CIN, BiInteraction, CrossNetV2, DotInteraction, FFMInteraction, FMInteraction
from fastrec.nn.layers import MLP, AttentionalPairPooling, CrossNet, Dice, MixtureOfExperts, TargetAttention

__all__ = [
    "CIN",
    "MLP",
    "AttentionalPairPooling",
    "BiInteraction",
    "CrossNet",
    "CrossNetV2",
    "Dice",
    "DotInteraction",
    "EmbeddingBag",
    "EmbeddingBagCollection",
    "FFMInteraction",
    "FMInteraction",
    "MixtureOfExperts",
    "TableConfig",
    "TargetAttention",
]
