"""Drop-in torch modules built on fastrec.ops."""

from fastrec.nn.embedding import EmbeddingBag, EmbeddingBagCollection, TableConfig
from fastrec.nn.interaction import CIN, BiInteraction, CrossNetV2, DotInteraction, FFMInteraction, FMInteraction

__all__ = [
    "CIN",
    "BiInteraction",
    "CrossNetV2",
    "DotInteraction",
    "EmbeddingBag",
    "EmbeddingBagCollection",
    "FFMInteraction",
    "FMInteraction",
    "TableConfig",
]
