"""fastrec.data: CSR interaction storage, id maps, dataset loaders, splits, numba negative samplers, batching."""

from fastrec.data.interactions import DUPLICATE_POLICIES, Interactions
from fastrec.data.loaders import load_user_item_lines, read_user_item_lines

__all__ = ["DUPLICATE_POLICIES", "Interactions", "load_user_item_lines", "read_user_item_lines"]
