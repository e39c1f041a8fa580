"""Drop-in torch modules built on fastrec.ops."""

from fastrec.nn.embedding import EmbeddingBag, EmbeddingBagCollection, TableConfig
from fastrec.nn.interaction import BiInteraction, FMInteraction
from fastrec.nn.layers import MLP, AttentionalPairPooling, CrossNet, Dice, MixtureOfExperts, TargetAttention

__all__ = [
    "MLP", "AttentionalPairPooling", "BiInteraction", "CrossNet", "Dice", "EmbeddingBag", "EmbeddingBagCollection",
    "FMInteraction", "MixtureOfExperts", "TableConfig", "TargetAttention",
]
