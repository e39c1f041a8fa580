"""Sparse EASE at catalog scale on synthetic data: n items, n users with ~50 interactions each (log-normal user
activity, Zipf item popularity), as in the issue's 1M-item target (~50M interactions, 8 GB, 30 minutes).
Reports each phase's seconds, peak memory (ru_maxrss), the nnz of B and the fused serving speed (users/s, top-20).

    python benchmarks/quality/sparse_ease_scale.py --items 1000000 [--per-user 50] [--top-m 32] [--gram-top-m 32] \\
        [--density 16]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np
import torch

from fastrec._atomic import write_text_atomically
from fastrec.data import synthetic_interactions
from fastrec.linear import EASE


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--per-user", type=int, default=50)
    ap.add_argument("--top-m", type=int, default=32, help="weights of B kept per item")
    ap.add_argument("--gram-top-m", type=int, default=32, help="Gram entries kept per item (0: exact)")
    ap.add_argument("--density", type=float, default=16.0)
    ap.add_argument("--l2", type=float, default=200.0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    x = synthetic_interactions(args.items, args.items, args.items * args.per_user, seed=0)
    t_data = time.perf_counter() - t0
    print(f"data: {x.n_users} users x {x.n_items} items, {x.nnz} interactions ({t_data:.1f} s)", flush=True)
    t0 = time.perf_counter()
    model = EASE(l2=args.l2, solver="sparse", sparse_top_m=args.top_m,
                 sparse_gram_top_m=args.gram_top_m, sparse_density=args.density,
                 progress=True).fit(x)
    t_fit = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"fit {t_fit:.1f} s {model.fit_seconds}, B nnz {model.weights.nnz}, peak {peak:.2f} GiB", flush=True)
    users = np.random.default_rng(1).choice(x.n_users, min(20_000, x.n_users), replace=False)
    t0 = time.perf_counter()
    model.recommend(users, 20)
    ups = users.size / (time.perf_counter() - t0)
    print(f"serving: {ups:.0f} users/s (top-20, seen items excluded), load average {os.getloadavg()}", flush=True)
    if args.json:
        write_text_atomically(args.json, json.dumps(
            {"items": args.items, "nnz": int(x.nnz), "fit_seconds": t_fit, "phases": model.fit_seconds,
             "b_nnz": int(model.weights.nnz), "peak_gib": peak, "users_per_s": ups,
             "threads": torch.get_num_threads(), "loadavg": os.getloadavg()}, indent=1))


if __name__ == "__main__":
    main()
