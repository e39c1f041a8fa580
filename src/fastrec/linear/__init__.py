"""fastrec.linear: closed-form item-item models on the native Gram machinery.

- :class:`EASE`: Steck's EASE, exact dense closed form or an approximate sparse (SANSA-like) solver;
- :class:`ItemKNN`: item-based nearest neighbours, cosine similarity with shrinkage, top-k neighbours per item.

Both serve top-k with the fused kernels of :mod:`fastrec.ops.linear` (no [users, items] score matrix).
"""

from fastrec.linear._base import ItemItemModel
from fastrec.linear.ease import EASE, dense_memory_estimate
from fastrec.linear.knn import ItemKNN

__all__ = ["EASE", "ItemItemModel", "ItemKNN", "dense_memory_estimate"]
