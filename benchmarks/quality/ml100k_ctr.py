"""MovieLens-100k CTR quality in RecBole's context-aware setup.

Label = rating >= 4; fields user_id, item_id, age, gender, occupation, release_year (tokens) and the genres
(multi-hot, mean pooling); random 8:1:1 split of the rows per seed; vocabularies over all rows (RecBole remaps ids on
the whole dataset; no label is used); embedding size 10, Adam lr 1e-3 (dense) and fused lazy Adam lr 1e-3
(embeddings), batch 2048, up to 300 epochs with early stopping after 10 epochs without a better validation AUC, the
best validation epoch's weights tested. Model hyperparameters are RecBole's defaults for each model.
DLRM adds age as a standardized dense input (its bottom MLP needs one). DIN and BST add a behaviour sequence (the user's last 20 items rated before the row's timestamp, sharing the item
table); SharedBottom and MMoE learn a second task (rating == 5) beside the label and report the label's metrics;
early stopping of the multi-task models uses the mean validation AUC of both tasks.

    python benchmarks/quality/ml100k_ctr.py --models LR,FM,DeepFM --seeds 0,1,2 [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fastrec._atomic import write_text_atomically
from fastrec.data import read_atomic
from fastrec.features import Categorical, MultiHot, Numeric, Preprocessor, Sequence
from fastrec.models import ctr
from fastrec.train import Trainer, seed_everything

# RecBole's default hyperparameters per model (recbole/properties/model/*.yaml), embedding size 10 everywhere.
MODELS = {
    "LR": lambda f: ctr.LR(f),
    "FM": lambda f: ctr.FM(f, 10),
    "DeepFM": lambda f: ctr.DeepFM(f, 10, (64, 64, 64), dropout=0.2),
    "NFM": lambda f: ctr.NFM(f, 10, (64, 64, 64), dropout=0.0),
    "AFM": lambda f: ctr.AFM(f, 10, 25, dropout=0.3),
    "WideDeep": lambda f: ctr.WideDeep(f, 10, (32, 16, 8), dropout=0.1),
    "DCN": lambda f: ctr.DCN(f, 10, 6, (256, 256, 256), dropout=0.2),
    "AutoInt": lambda f: ctr.AutoInt(f, 10, 3, 2, 8, (64, 64, 64), dropout=0.2),
    "FFM": lambda f: ctr.FFM(f, 10),
    "xDeepFM": lambda f: ctr.xDeepFM(f, 10, (100, 100, 100), (128, 128, 128), dropout=0.2),
    "DCNv2": lambda f: ctr.DCNv2(f, 10, 2, (256, 256), dropout=0.2),
    # not in RecBole: age also as a dense (standardized) input for the bottom MLP
    "DLRM": lambda f: ctr.DLRM(f, 10, (32,), (64, 64)),
    # with the behaviour sequence (the user's last 20 items before the row, by timestamp): the DIN paper's widths
    # (RecBole's 256-256-256 attention MLP costs about 90 s an epoch here at one thread), a one-layer BST
    "DIN": lambda f: ctr.DIN(f, 10, attention_hidden=(80, 40), hidden=(200, 80), dropout=0.0),
    "BST": lambda f: ctr.BST(f, 10, num_layers=1, heads=2, hidden=(256, 128), dropout=0.2),
    # two tasks: rating >= 4 (the label above, reported) and rating == 5
    "SharedBottom": lambda f: ctr.SharedBottom(f, 2, 10, (64, 64), (64,), dropout=0.2),
    "MMoE": lambda f: ctr.MMoE(f, 2, 10, 4, (64, 64), (64,), dropout=0.2),
}
SEQUENCE_MODELS = {"DIN", "BST"}
DENSE_MODELS = {"DLRM"}
MULTI_TASK = {"SharedBottom", "MMoE"}
HISTORY = 20


def load_table(root: Path) -> dict[str, np.ndarray]:
    inter = read_atomic(root / "ml-100k.inter")
    user = read_atomic(root / "ml-100k.user")
    item = read_atomic(root / "ml-100k.item")
    u = np.searchsorted(user["user_id"], inter["user_id"])
    i = np.searchsorted(item["item_id"], inter["item_id"])
    assert (user["user_id"][u] == inter["user_id"]).all() and (item["item_id"][i] == inter["item_id"]).all()
    return {"user_id": inter["user_id"], "item_id": inter["item_id"], "age": user["age"][u],
            "gender": user["gender"][u], "occupation": user["occupation"][u],
            "release_year": item["release_year"][i], "class": item["class"][i],
            "label": (inter["rating"] >= 4).astype(np.float32), "love": (inter["rating"] == 5).astype(np.float32),
            "history": histories(inter["user_id"], inter["item_id"], inter["timestamp"])}


def histories(users: np.ndarray, items: np.ndarray, times: np.ndarray) -> np.ndarray:
    """For each row, the user's last HISTORY items rated strictly before the row's timestamp (oldest first)."""
    order = np.lexsort((times, users))
    out = np.empty(users.size, dtype=object)
    start = 0
    for end in np.append(np.flatnonzero(np.diff(users[order])) + 1, users.size):
        rows = order[start:end]
        t = times[rows]
        first = np.searchsorted(t, t, side="left")  # rows before the first one at the same timestamp
        for k, r in enumerate(rows):
            out[r] = tuple(items[rows[max(0, first[k] - HISTORY):first[k]]].tolist())
        start = end
    return out


def run(name: str, seed: int, table: dict[str, np.ndarray], threads: int) -> dict[str, float]:
    torch.set_num_threads(threads)
    transforms = [Categorical(c) for c in ("user_id", "item_id", "age", "gender", "occupation", "release_year")]
    transforms.append(MultiHot("class", pooling="mean"))
    if name in DENSE_MODELS:
        transforms.append(Numeric("age", name="age_value"))
    if name in SEQUENCE_MODELS:
        transforms.append(Sequence("history", HISTORY, vocabulary="item_id"))
    pre = Preprocessor(transforms)
    data = pre.fit_transform(table, label=["label", "love"] if name in MULTI_TASK else "label")
    train, valid, test = data.split((0.8, 0.1, 0.1), seed=seed)
    seed_everything(seed)
    model = MODELS[name](pre.features)
    trainer = Trainer(model, lr=1e-3, epochs=300, batch_size=2048, metric="auc", patience=10, seed=seed,
                      progress=False)
    t0 = time.perf_counter()
    trainer.fit(train, valid)
    seconds = time.perf_counter() - t0
    res = trainer.evaluate(test)
    if name in MULTI_TASK:
        res = {"auc": res["auc_label"], "logloss": res["logloss_label"]}
    return {"model": name, "seed": seed, "test_auc": res["auc"], "test_logloss": res["logloss"],
            "valid_auc": trainer.best_metric, "best_epoch": trainer.best_epoch, "seconds": seconds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="LR,FM,DeepFM")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default=os.environ.get("FASTREC_DATA", "../shared/data"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    table = load_table(Path(args.data) / "ml-100k")
    rows = []
    for name in args.models.split(","):
        if name not in MODELS:
            raise SystemExit(f"unknown model {name!r}; choose from {sorted(MODELS)}")
        for seed in (int(s) for s in args.seeds.split(",")):
            r = run(name, seed, table, args.threads)
            print(json.dumps(r), flush=True)
            rows.append(r)
    print("\n| model | test AUC (mean of seeds) | test logloss | seeds | epochs (best) | s per run |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == name]
        print(f"| {name} | {np.mean([r['test_auc'] for r in rs]):.4f} | {np.mean([r['test_logloss'] for r in rs]):.4f}"
              f" | {len(rs)} | {np.mean([r['best_epoch'] for r in rs]):.0f} | {np.mean([r['seconds'] for r in rs]):.0f} |")
    if args.json:
        write_text_atomically(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
