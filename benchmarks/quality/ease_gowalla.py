"""EASE on Gowalla (LightGCN split), the BARS protocol: full ranking over all 40,981 items, train items excluded,
Recall@20 and NDCG@20 over test users. Published: EASE^R (lambda=80) .1765 / .1467.

lambda is chosen on a validation split carved from train (20% of each user's train items, seed 0), never on test;
the model is then refit on the whole train set and evaluated once on test. A full-catalog solve is n^3 = 6.9e13
flops (~25 min on one core of the 2-core development machine), so the validation grid may run on the
``--valid-items`` most popular items only (their Gram entries, and so lambda's scale, are those of the full model;
validation users' held-out items outside that catalog are dropped). Also measured: fit time per phase, peak
memory, serving speed of the fused top-k (dense B, and B pruned by ``EASE.prune`` to at most 128 weights per
source item and per target item, each re-fitted on its kept pattern) and the pruned models' Recall@20 relative
to the exact one.

    python benchmarks/quality/ease_gowalla.py [--lambdas 40,80,160] [--solver dense] [--json out.json]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import time

import numpy as np
import torch

from fastrec._atomic import write_text_atomically
from fastrec import data
from fastrec.evaluate import full_ranking
from fastrec.linear import EASE


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def evaluate(model: EASE, test, train) -> dict[str, float]:
    r = full_ranking(model.score, test, train, ks=(20,), metrics=("recall", "ndcg"), block_size=1024)
    return {"recall@20": r["recall@20"], "ndcg@20": r["ndcg@20"]}


def topk_metrics(ids: torch.Tensor, test_csr, users: np.ndarray) -> dict[str, float]:
    """Recall@20 / NDCG@20 of given top-20 lists (no ties among distinct scores matter here)."""
    rec, ndcg = [], []
    disc = 1.0 / np.log2(np.arange(2, 22))
    for row, u in zip(ids.numpy(), users):
        rel = set(test_csr.indices[test_csr.indptr[u]:test_csr.indptr[u + 1]].tolist())
        hits = np.array([i in rel for i in row[:20]], dtype=float)
        rec.append(hits.sum() / len(rel))
        ndcg.append((hits * disc).sum() / disc[: min(20, len(rel))].sum())
    return {"recall@20": float(np.mean(rec)), "ndcg@20": float(np.mean(ndcg))}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.environ.get("FASTREC_DATA", "../shared/data"))
    ap.add_argument("--lambdas", default="40,80,160")
    ap.add_argument("--solver", default="dense")
    ap.add_argument("--prune", type=int, default=128)
    ap.add_argument("--valid-items", type=int, default=0, help="validation catalog: the N most popular items (0: all)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--threads", type=int, default=0, help="torch (and MKL) threads; 0: torch's default")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    root = os.path.join(args.data, "gowalla")
    train = data.load_user_item_lines(os.path.join(root, "train.txt"), user_ids="identity", item_ids="identity")
    test = data.load_user_item_lines(os.path.join(root, "test.txt"), user_ids=train.user_ids,
                                     item_ids=train.item_ids)
    print(f"gowalla: {train.n_users} users, {train.n_items} items, {train.nnz} train / {test.nnz} test pairs, "
          f"torch threads {torch.get_num_threads()}", flush=True)
    out: dict = {"solver": args.solver, "validation": {}}
    split = data.random_holdout(train, test_ratio=0.2, seed=0, short_users="train")
    v_train, v_test = split.train.to_scipy(), split.test.to_scipy()
    if args.valid_items:
        keep = np.sort(np.argsort(-np.diff(v_train.tocsc().indptr), kind="stable")[: args.valid_items])
        v_train, v_test = v_train[:, keep], v_test[:, keep]
        out["valid_items"] = int(keep.size)
    for l2 in [float(v) for v in args.lambdas.split(",")]:
        model = EASE(l2=l2, solver=args.solver).fit(v_train)
        res = evaluate(model, v_test, v_train)
        out["validation"][l2] = {**res, "fit_seconds": model.fit_seconds}
        print(f"validation l2={l2:g}: {res} fit {model.fit_seconds} peak {peak_gib():.2f} GiB", flush=True)
        del model
        gc.collect()
    best = max(out["validation"], key=lambda v: out["validation"][v]["ndcg@20"])
    model = EASE(l2=best, solver=args.solver).fit(train)
    res = evaluate(model, test, train)
    out["test"] = {"l2": best, **res, "fit_seconds": model.fit_seconds, "peak_gib": peak_gib()}
    print(f"test l2={best:g}: {res} fit {model.fit_seconds} peak {peak_gib():.2f} GiB", flush=True)

    test_csr = test.to_scipy()
    users = np.flatnonzero(np.diff(test_csr.indptr) > 0)
    t0 = time.perf_counter()
    _, ids = model.recommend(users, 20)
    t_dense = time.perf_counter() - t0
    exact = topk_metrics(ids, test_csr, users)
    out["serving"] = {"users": int(users.size), "users_per_s_full": users.size / t_dense, "top_m": args.prune,
                      "recall_exact_topk": exact["recall@20"], "ndcg_exact_topk": exact["ndcg@20"]}
    # B at most top_m weights per source item (the default) and per target item (the co-occurrence pattern, which
    # kept more than B's own largest weights per target), each re-fitted on its pattern; or the sparse solver's B.
    prunings = {"per_source": {"per": "source"},
                "per_target_cooccurrence": {"per": "target", "pattern": "cooccurrence"}}
    dense_b = model.weights
    for name, kwargs in prunings.items() if isinstance(dense_b, torch.Tensor) else [("sparse_solver", None)]:
        t0 = time.perf_counter()
        if kwargs is not None:
            model.weights = dense_b
            model.prune(args.prune, **kwargs)
        t_prune = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, ids = model.recommend(users, 20)
        t_pruned = time.perf_counter() - t0
        pruned = topk_metrics(ids, test_csr, users)
        out["serving"][name] = {"prune_seconds": t_prune, "users_per_s": users.size / t_pruned,
                                "recall": pruned["recall@20"], "ndcg": pruned["ndcg@20"],
                                "nnz": int(model.weights.nnz),
                                "recall_ratio": pruned["recall@20"] / exact["recall@20"],
                                "ndcg_ratio": pruned["ndcg@20"] / exact["ndcg@20"]}
    print(f"serving: {out['serving']}", flush=True)
    print(f"load average: {os.getloadavg()}")
    if args.json:
        write_text_atomically(args.json, json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
