"""Frappe side by side: fastrec's DeepFM / xDeepFM against DeepCTR-Torch's under the same hyperparameters.

Data (../shared/data/frappe): the NFM split's validation file is the training data (its train file is missing), the
test file is the test set; 10% of the training rows (seeded) are held out to pick the epoch. Each of the 10
one-hot fields is label-encoded (by fastrec.features.Categorical) and both libraries get the same arrays.
Hyperparameters, both libraries: K=16, MLP 256-128 (ReLU, no dropout, no batch norm), xDeepFM CIN 64-64 (split
half), no L2 regularization, Adam lr 1e-3 (fastrec: fused lazy Adam for the embeddings), batch 1024, 20 epochs, the
weights of the epoch with the best validation AUC tested (no early stopping: with patience 3-5, DeepCTR-Torch's runs
often stopped on an early plateau, which made the comparison one of stopping luck).

    python benchmarks/quality/frappe_vs_deepctr.py --models DeepFM,xDeepFM --seeds 0,1,2
    python benchmarks/quality/frappe_vs_deepctr.py --models DeepFM --seeds 0,1,2 --init deepctr

``--init deepctr`` starts fastrec's model from DeepCTR-Torch's initialization (every embedding table and every
hidden MLP weight from N(0, 1e-4^2); DeepCTR-Torch's defaults), so that the two runs differ only in the code and
the embedding optimizer (fastrec: lazy Adam on the touched rows; DeepCTR-Torch: dense Adam on all rows). The
default keeps fastrec's own initialization (tables N(0, 1e-2^2), PyTorch's default for the MLP).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
from functools import partial
from pathlib import Path

import numpy as np
import torch

from fastrec._atomic import write_text_atomically
from fastrec.data import load_libsvm
from fastrec.features import Categorical, Preprocessor
from fastrec.metrics import auc, log_loss
from fastrec.models import ctr
from fastrec.nn import EmbeddingBagCollection
from fastrec.train import Trainer, seed_everything

K, HIDDEN, CIN, BATCH, EPOCHS = 16, (256, 128), (64, 64), 1024, 20


def load(root: Path, seed: int):
    train_raw, test_raw = load_libsvm(root / "frappe.validation.libfm"), load_libsvm(root / "frappe.test.libfm")
    width = train_raw.fixed_width()
    names = [f"f{i}" for i in range(width)]

    def table(d):
        ids = d.indices.reshape(-1, width)
        return {**{n: ids[:, i] for i, n in enumerate(names)}, "label": d.binary_labels()}

    pre = Preprocessor([Categorical(n) for n in names])
    train_all = pre.fit_transform(table(train_raw), label="label")
    test = pre.transform(table(test_raw), label="label")
    rng = np.random.default_rng(seed)
    hold = np.zeros(len(train_all), bool)
    hold[rng.permutation(len(train_all))[: len(train_all) // 10]] = True
    return pre, train_all.take(~hold), train_all.take(hold), test


DEEPCTR_INIT_STD = 1e-4


def deepctr_init(model: torch.nn.Module) -> None:
    """DeepCTR-Torch's initialization: embedding tables and the hidden layers' weights of the MLP from
    N(0, DEEPCTR_INIT_STD^2); the MLP's output layer, the biases and the CIN keep their defaults (as there)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, EmbeddingBagCollection):
                module.weight.normal_(0.0, DEEPCTR_INIT_STD)
        hidden = [m for m in model.mlp.modules() if isinstance(m, torch.nn.Linear)][:-1]
        for layer in hidden:
            layer.weight.normal_(0.0, DEEPCTR_INIT_STD)


def run_fastrec(name, pre, train, valid, test, seed, init="fastrec"):
    seed_everything(seed)
    model = ctr.DeepFM(pre.features, K, HIDDEN) if name == "DeepFM" else ctr.xDeepFM(pre.features, K, CIN, HIDDEN)
    if init == "deepctr":
        deepctr_init(model)
    t = Trainer(model, lr=1e-3, epochs=EPOCHS, batch_size=BATCH, seed=seed, progress=False)
    t.fit(train, valid)
    r = t.evaluate(test)
    return r["auc"], r["logloss"], t.best_epoch


def run_deepctr(name, pre, train, valid, test, seed):
    from deepctr_torch.inputs import SparseFeat
    from deepctr_torch.models import DeepFM, xDeepFM

    seed_everything(seed)
    cols = [SparseFeat(f.name, f.vocab_size, embedding_dim=K) for f in pre.features]
    common = {"dnn_hidden_units": HIDDEN, "l2_reg_linear": 0.0, "l2_reg_embedding": 0.0, "l2_reg_dnn": 0.0,
              "seed": seed, "device": "cpu"}
    model = DeepFM(cols, cols, **common) if name == "DeepFM" else xDeepFM(cols, cols, cin_layer_size=CIN, **common)
    model.compile("adam", "binary_crossentropy")
    x = {k: v for k, v in train.columns.items()}
    best, best_state, best_epoch = -1.0, None, -1
    for epoch in range(EPOCHS):
        model.fit(x, train.labels, batch_size=BATCH, epochs=1, verbose=0, shuffle=True)
        v = auc(valid.labels, model.predict(valid.columns, batch_size=8192).reshape(-1))
        if v > best:
            best, best_state, best_epoch = v, copy.deepcopy(model.state_dict()), epoch
    model.load_state_dict(best_state)
    p = model.predict(test.columns, batch_size=8192).reshape(-1).astype(np.float64)
    return auc(test.labels, p), log_loss(test.labels, p), best_epoch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="DeepFM,xDeepFM")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--data", default=os.environ.get("FASTREC_DATA", "../shared/data"))
    ap.add_argument("--json", default=None)
    ap.add_argument("--init", choices=("fastrec", "deepctr"), default="fastrec",
                    help="fastrec's model initialization: its own, or DeepCTR-Torch's (see the module docstring)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        pre, train, valid, test = load(Path(args.data) / "frappe", seed)
        for name in args.models.split(","):
            for lib, fn in (("fastrec", partial(run_fastrec, init=args.init)), ("DeepCTR-Torch", run_deepctr)):
                a, ll, ep = fn(name, pre, train, valid, test, seed)
                rows.append({"model": name, "library": lib, "seed": seed, "test_auc": a, "test_logloss": ll,
                             "best_epoch": ep, "fastrec_init": args.init})
                print(json.dumps(rows[-1]), flush=True)
    print("\n| model | fastrec AUC | DeepCTR-Torch AUC | difference | fastrec logloss | DeepCTR-Torch logloss |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in args.models.split(","):
        m = {lib: [r for r in rows if r["model"] == name and r["library"] == lib] for lib in ("fastrec", "DeepCTR-Torch")}
        a = {lib: np.mean([r["test_auc"] for r in rs]) for lib, rs in m.items()}
        ll = {lib: np.mean([r["test_logloss"] for r in rs]) for lib, rs in m.items()}
        print(f"| {name} | {a['fastrec']:.4f} | {a['DeepCTR-Torch']:.4f} | {a['fastrec'] - a['DeepCTR-Torch']:+.4f} | "
              f"{ll['fastrec']:.4f} | {ll['DeepCTR-Torch']:.4f} |")
    if args.json:
        write_text_atomically(args.json, json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
