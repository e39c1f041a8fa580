"""Drop-in torch modules built on fastrec.ops."""

from fastrec.nn.interaction import BiInteraction, FMInteraction

__all__ = ["BiInteraction", "FMInteraction"]
