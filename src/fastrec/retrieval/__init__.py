"""Top-k retrieval over item vectors: exact blocked search and FAISS indexes behind one interface.

>>> index = FaissIndex("hnsw", "ip").build(item_vectors)       # or ExactIndex(item_vectors, "cosine")
>>> scores, ids = index.search(user_vectors, 10, exclude=seen)  # seen: CSR [n_queries, n_items] or id lists
>>> index.save("items.idx"); index = load_index("items.idx")
>>> tune_search(index, held_out_queries, ExactIndex(item_vectors), target_recall=0.95)
"""

from fastrec.retrieval.base import Index, load_index, recall_at_k
from fastrec.retrieval.exact import ExactIndex
from fastrec.retrieval.faiss_index import FaissIndex
from fastrec.retrieval.tune import TuneResult, tune_search

__all__ = ["ExactIndex", "FaissIndex", "Index", "TuneResult", "load_index", "recall_at_k", "tune_search"]
