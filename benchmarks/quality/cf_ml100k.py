"""MovieLens-100k explicit ratings, 5-fold CV over the rows in file order as Surprise's benchmark does it
(``surprise.model_selection.KFold(n_splits=5, random_state=0)`` = ``fastrec.data.kfold(n, 5, seed=0)``): mean RMSE /
MAE over the folds, train and prediction time.

    python benchmarks/quality/cf_ml100k.py biased-mf [--surprise] [--valid] [--seed S] [--json out.json]

``--valid`` trains on 90% of fold 1's training rows and reports RMSE on the other 10% (how the settings below were
chosen; the test folds are not looked at). ``--surprise`` runs Surprise's counterpart on the same folds.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from fastrec import data
from fastrec.models import cf

DATA = Path(os.environ.get("FASTREC_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))
ML = DATA / "ml-100k"

# model -> (published RMSE of the Surprise counterpart, its name)
PUBLISHED = {"biased-mf": (0.934, "SVD"), "biased-mf-tuned": (0.934, "SVD"), "mf": (None, None),
             "variational-mf": (0.919, "SVD++"),
             "fm-side": (0.919, "SVD++"), "temporal-mf": (0.919, "SVD++"), "tastes-mf": (0.919, "SVD++"),
             "item-knn-baseline": (0.931, "KNNBaseline"), "user-knn-baseline": (0.931, "KNNBaseline"),
             "i-autorec": (None, None)}


def side_features(user_ext: np.ndarray, item_ext: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """User: one-hot age decade, gender, occupation (each weight 1/3); item: genres (weights summing to 1/2) and
    one-hot release decade (1/2). Rows follow the internal ids (``user_ext[u]`` is u's file id)."""
    users, items = data.read_atomic(ML / "ml-100k.user"), data.read_atomic(ML / "ml-100k.item")

    def one_hot(values):
        _, codes = np.unique(values.astype(str), return_inverse=True)
        return sp.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)))

    u_pos = {int(v): k for k, v in enumerate(users["user_id"])}
    u_mat = sp.hstack([one_hot(users["age"] // 10), one_hot(users["gender"]), one_hot(users["occupation"])]) / 3
    u_mat = sp.csr_matrix(u_mat)[[u_pos[int(v)] for v in user_ext]]
    i_pos = {int(v): k for k, v in enumerate(items["item_id"])}
    genres = sorted({g for gs in items["class"] for g in gs})
    g_idx = {g: k for k, g in enumerate(genres)}
    rows, cols, vals = [], [], []
    for r, gs in enumerate(items["class"]):
        for g in gs:
            rows.append(r), cols.append(g_idx[g]), vals.append(0.5 / len(gs))
    g_mat = sp.csr_matrix((vals, (rows, cols)), shape=(len(items["item_id"]), len(genres)))
    year = np.array([str(int(y) // 10) if str(y).isdigit() else "unknown" for y in items["release_year"]])
    i_mat = sp.csr_matrix(sp.hstack([g_mat, one_hot(year) * 0.5]))[[i_pos[int(v)] for v in item_ext]]
    return sp.csr_matrix(u_mat), i_mat


def build(name: str, n_users: int, n_items: int, feats):
    """Model and fit() arguments. biased-mf is Surprise's SVD setting; the others were chosen with --valid."""
    u_feat, i_feat = feats
    if name == "biased-mf":  # Surprise SVD: 100 factors, lr .005, reg .02, 20 epochs, init N(0, .1), per-sample SGD
        return cf.MF(n_users, n_items, 100, lr=0.005), dict(epochs=20, reg=0.02, per_sample=True)
    if name == "biased-mf-tuned":  # the same model and update; dim, lr, reg and epochs picked with --valid
        return cf.MF(n_users, n_items, 200, lr=0.01), dict(epochs=100, reg=0.1, per_sample=True)
    if name == "mf":
        return cf.MF(n_users, n_items, 100, biases=False, lr=0.005), dict(epochs=20, reg=0.02, per_sample=True)
    if name == "variational-mf":
        return (cf.MF(n_users, n_items, 50, variational=True, noise_std=0.9, prior_std=0.3, lr=0.01),
                dict(epochs=40, batch_size=1024, reg=0.05))
    if name == "fm-side":
        return (cf.FMRatings(n_users, n_items, 50, user_features=u_feat, item_features=i_feat, lr=0.003),
                dict(epochs=40, batch_size=1024, reg=0.05))
    if name == "temporal-mf":
        return (cf.MF(n_users, n_items, 50, time_bins=10, user_features=u_feat, item_features=i_feat, lr=0.003),
                dict(epochs=40, batch_size=1024, reg=0.05))
    if name == "tastes-mf":
        return cf.MF(n_users, n_items, 50, tastes=3, lr=0.003), dict(epochs=40, batch_size=1024, reg=0.05)
    if name == "item-knn-baseline":  # Surprise KNNBaseline defaults, item-based, pearson_baseline similarity
        return cf.KNN(n_users, n_items, "item", "pearson_baseline", k=40), {}
    if name == "user-knn-baseline":
        return cf.KNN(n_users, n_items, "user", "pearson_baseline", k=40), {}
    if name == "i-autorec":
        return (cf.AutoRec(n_users, n_items, "item", (500,), reg=1.0, lr=1e-3),
                dict(epochs=200, batch_size=64))
    raise SystemExit(f"unknown model {name!r}")


def surprise_algo(name: str, seed: int):
    import surprise

    if name in ("biased-mf", "mf"):
        return surprise.SVD(random_state=seed, biased=name == "biased-mf")
    if name == "biased-mf-tuned":
        return surprise.SVD(n_factors=200, n_epochs=100, lr_all=0.01, reg_all=0.1, random_state=seed)
    if name == "item-knn-baseline":
        return surprise.KNNBaseline(k=40, sim_options={"name": "pearson_baseline", "user_based": False},
                                    verbose=False)
    if name == "user-knn-baseline":
        return surprise.KNNBaseline(k=40, sim_options={"name": "pearson_baseline", "user_based": True},
                                    verbose=False)
    return surprise.SVDpp(random_state=seed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(PUBLISHED))
    ap.add_argument("--surprise", action="store_true", help="also run Surprise's counterpart on the same folds")
    ap.add_argument("--valid", action="store_true")
    ap.add_argument("--folds", type=int, default=5, help="run the first N of the 5 folds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0, help="initialization and shuffling seed (both libraries)")
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cols = data.read_atomic(ML / "ml-100k.inter")
    full = data.Interactions.from_arrays(cols["user_id"], cols["item_id"], cols["rating"], cols["timestamp"])
    u, i = full.user_index(cols["user_id"]), full.item_index(cols["item_id"])
    r, t = cols["rating"].astype(np.float64), cols["timestamp"].astype(np.int64)
    feats = side_features(full.user_ids, full.item_ids)

    def part(rows):
        return data.Interactions.from_arrays(u[rows], i[rows], r[rows], t[rows], user_ids="identity",
                                             item_ids="identity", n_users=full.n_users, n_items=full.n_items)

    folds = list(data.kfold(len(r), 5, seed=0))[: args.folds]
    if args.valid:
        tr, _ = folds[0]
        perm = np.random.default_rng(0).permutation(tr)
        cut = int(0.9 * perm.size)
        folds = [(np.sort(perm[:cut]), np.sort(perm[cut:]))]
    res = {"fastrec": [], "surprise": []}
    for k, (tr, te) in enumerate(folds):
        model, fit = build(args.model, full.n_users, full.n_items, feats)
        if args.seed and isinstance(model, (cf.MF, cf.FMRatings)):
            model, fit = type(model)(**{**model._config, "seed": args.seed}), {**fit, "seed": args.seed}
        t0 = time.perf_counter()
        model.fit(part(tr), show_progress=False, **fit)
        t1 = time.perf_counter()
        if isinstance(model, (cf.MF, cf.FMRatings)):
            pred = model.score(u[te], i[te], t[te]).numpy().astype(np.float64)
        else:
            pred = model.score(u[te], i[te]).numpy().astype(np.float64)
        t2 = time.perf_counter()
        pred = np.clip(pred, 1, 5)  # Surprise clips estimates to the rating scale
        res["fastrec"].append((np.sqrt(np.mean((pred - r[te]) ** 2)), np.mean(np.abs(pred - r[te])), t1 - t0,
                               t2 - t1))
        print(f"fold {k + 1}: fastrec rmse {res['fastrec'][-1][0]:.4f} mae {res['fastrec'][-1][1]:.4f} "
              f"train {t1 - t0:.1f}s predict {t2 - t1:.2f}s", flush=True)
        if args.surprise:
            import pandas as pd
            import surprise

            frame = pd.DataFrame({"u": u[tr], "i": i[tr], "r": r[tr]})
            ts = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
            algo = surprise_algo(args.model, args.seed)
            t0 = time.perf_counter()
            algo.fit(ts)
            t1 = time.perf_counter()
            est = np.array([algo.predict(a, b).est for a, b in zip(u[te], i[te])])
            t2 = time.perf_counter()
            res["surprise"].append((np.sqrt(np.mean((est - r[te]) ** 2)), np.mean(np.abs(est - r[te])), t1 - t0,
                                    t2 - t1))
            print(f"fold {k + 1}: surprise {type(algo).__name__} rmse {res['surprise'][-1][0]:.4f} "
                  f"train {t1 - t0:.1f}s", flush=True)
    row = {"model": args.model, "split": "valid" if args.valid else f"{len(folds)}-fold", "seed": args.seed,
           "published": PUBLISHED[args.model], "load": os.getloadavg()[0]}
    for who, vals in res.items():
        if vals:
            a = np.array(vals)
            row[who] = {"rmse": round(a[:, 0].mean(), 4), "mae": round(a[:, 1].mean(), 4),
                        "train_s": round(a[:, 2].mean(), 2), "predict_s": round(a[:, 3].mean(), 2)}
    print(json.dumps(row))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
