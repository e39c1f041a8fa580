"""Drop-in torch modules built on fastrec.ops."""

from fastrec.nn.embedding import EmbeddingBag, EmbeddingBagCollection, TableConfig
from fastrec.nn.interaction import BiInteraction, FMInteraction

__all__ = ["BiInteraction", "EmbeddingBag", "EmbeddingBagCollection", "FMInteraction", "TableConfig"]
