"""Why validation recall on Gowalla runs above test recall: the same two untrained scorers on both splits.

    python benchmarks/quality/gowalla_split_gap.py [--json out.json]

The validation split of ``cf_gowalla.py --valid`` (10% of each user's train.txt items, seed 0) and the test protocol
(train.txt -> test.txt) are scored by the same ``full_ranking`` call (train items excluded, every user with a
held-out item, Recall@20 / NDCG@20). Two scorers that need no training and no settings, popularity and a user-based
co-occurrence score (``x_u X_n^T X_n``, columns of X scaled by 1/sqrt(item degree)), show how far the two splits
differ for the same method, and the held-out items' statistics show how the test items differ from a random
holdout of train.txt.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
import scipy.sparse as sp
import torch

from cf_gowalla import DATA
from fastrec._atomic import write_text_atomically
from fastrec import data
from fastrec.evaluate import full_ranking


def _scorers(train: sp.csr_matrix) -> dict:
    pop = torch.from_numpy(np.asarray(train.sum(0)).ravel().astype(np.float32))
    x = train.astype(np.float32)
    xn = x @ sp.diags(1.0 / np.sqrt(np.maximum(np.asarray(x.sum(0)).ravel(), 1.0)))

    def cooccurrence(users: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(((x[users.numpy()] @ xn.T) @ xn).toarray().astype(np.float32))

    return {"popularity": lambda users: pop.expand(users.numel(), -1).clone(), "user co-occurrence": cooccurrence}


def _held_out_stats(train: sp.csr_matrix, held: sp.csr_matrix) -> dict:
    per_user = np.diff(held.indptr)
    pop = np.asarray(train.sum(0)).ravel()[held.indices]
    return {"pairs": int(held.nnz), "mean items per user": round(float(per_user[per_user > 0].mean()), 2),
            "median items per user": float(np.median(per_user[per_user > 0])),
            "mean train count of the items per 1M train pairs": round(float(pop.mean() / train.nnz * 1e6), 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the result to this file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    train = data.load_user_item_lines(DATA / "gowalla" / "train.txt", user_ids="identity", item_ids="identity")
    test = data.load_user_item_lines(DATA / "gowalla" / "test.txt", user_ids=train.user_ids,
                                     item_ids=train.item_ids)
    valid = data.random_holdout(train, test_ratio=0.1, seed=0, short_users="train")
    out = {}
    for split, (tr, held) in {"test": (train, test), "valid": (valid.train, valid.test)}.items():
        tr_m, held_m = tr.to_scipy().tocsr(), held.to_scipy().tocsr()
        row = _held_out_stats(tr_m, held_m)
        for name, fn in _scorers(tr_m).items():
            r = full_ranking(fn, held_m, tr_m, ks=(20,), block_size=256)
            row[name] = [round(r["recall@20"], 4), round(r["ndcg@20"], 4)]
        out[split] = row
        print(split, json.dumps(row), flush=True)
    out["load"] = os.getloadavg()[0]
    if args.json:
        write_text_atomically(args.json, json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
