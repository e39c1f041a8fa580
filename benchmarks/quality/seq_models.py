"""Quality runs of the sequential models on the real data sets of ../shared/data, under the published protocols.

    python benchmarks/quality/seq_models.py {sasrec,bert4rec,gru4rec,caser} {beauty,lastfm,diginetica} [--seed 0]
        [--max-minutes M] [--set key=value ...]   (e.g. --set epochs=300 patience=10)

- ``beauty``: S3-Rec's Beauty.txt, leave-one-out, 99 random unseen negatives per user
  (``fastrec.data.evaluation_negatives(seed=0)``, the same rows for valid and test), HR/NDCG@10; plus full ranking
  over all items with the user's history excluded.
- ``lastfm``: S3-Rec's LastFM.txt with the exact negatives of LastFM_sample.txt (for valid and test).
- ``diginetica``: SR-GNN's sessions; the last 10% of train_sessions.txt (file order) is the validation set, the
  published test prefixes are the test; P@20 (= HR@20) and MRR@20 over all items, history items kept.

Caser gets a user embedding per user on Beauty and LastFM (the paper's model), none on Diginetica's sessions.
Early stopping watches the validation split only; the test split is evaluated once, on the best validation model.
Prints one JSON line with the settings, the validation history, the test metrics and the times; ``--out`` also
writes it to a file. Set ``OMP_NUM_THREADS``/``--threads`` to share the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from fastrec import data
from fastrec.models import seq

DATA = Path(os.environ.get("FASTREC_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))

# defaults per (model, data set): the published papers' settings where they give them (S3-Rec's for the Beauty/LastFM
# rows: width 64, 2 blocks, 2 heads, dropout 0.5, max_len 50, batch 256, lr 1e-3; Caser's code: L=5, T=3, d=50,
# 16 horizontal and 4 vertical filters, 3 negatives, batch 512, L2 1e-6)
MODELS = {
    "sasrec": (seq.SASRec, dict(max_len=50, dim=64, heads=2, layers=2, dropout=0.5), {}),
    "bert4rec": (seq.BERT4Rec, dict(max_len=50, dim=64, heads=2, layers=2, dropout=0.2, mask_prob=0.2), {}),
    "gru4rec": (seq.GRU4Rec, dict(max_len=50, dim=64, hidden=64, dropout=0.2, loss="bpr-max", n_sample=256), {}),
    "caser": (seq.Caser, dict(max_len=5, dim=50, n_h=16, n_v=4, dropout=0.5, targets=3, n_neg=3),
              dict(batch_size=512, weight_decay=1e-6, eval_every=1)),
}
FIT = dict(epochs=200, batch_size=256, lr=1e-3, warmup_steps=0, lr_decay="none", weight_decay=0.0, optimizer="adam",
           patience=5, eval_every=2)
PER_DATA = {
    ("gru4rec", "diginetica"): (dict(max_len=70, dim=100, hidden=100, dropout=0.0, loss="softmax", n_sample=2048),
                                dict(epochs=10, batch_size=512, lr=2e-3, patience=2, eval_every=1)),
    # picked on Beauty's validation split (benchmarks/quality/results/gru4rec_beauty_s0_tune_*.json): cross-entropy
    # over popularity negatives beat BPR-max, batch 256 at lr 2e-3 beat batch 64 at 1e-3; tied input/output item
    # vectors beat separate ones (gru4rec_beauty_s0_evloss*.json)
    ("gru4rec", "beauty"): (dict(dim=128, hidden=128, dropout=0.5, loss="softmax", n_sample=4096, tied=True),
                            dict(batch_size=256, lr=2e-3, eval_every=1, patience=8)),
    # LastFM has 1,090 users (5 batches an epoch): validation sits at the popularity level for ~70 epochs before the
    # models pick up the histories, so early stopping needs a long horizon there
    ("sasrec", "lastfm"): ({}, dict(epochs=400, eval_every=10, patience=10)),
    # batch 64, mask 0.4, dropout 0.1, random windows over long histories, AdamW with decay 1.0: picked on
    # validation (benchmarks/quality/results/bert4rec_lastfm_s0_b*.json); depth by the mean validation NDCG@10 over
    # seeds 0-4: 3 layers over 2, then 4 over 3, 4 heads and a 100-item window
    # (bert4rec_lastfm_s*_..._mask_prob_0.4{,_layers_3,_layers_4,_layers_3_heads_4,_layers_3_max_len_100}.json)
    ("bert4rec", "lastfm"): (dict(layers=4, mask_prob=0.4, dropout=0.1, random_windows=True),
                             dict(epochs=400, eval_every=10, patience=10, batch_size=64, optimizer="adamw",
                                  weight_decay=1.0)),
}


def leave_one_out_data(name: str):
    """(train interactions, valid cases, test cases, negatives [n_users, 99] by user id) of Beauty or LastFM."""
    if name == "beauty":
        x = data.load_user_item_lines(DATA / "beauty" / "Beauty.txt", positions_as_timestamps=True)
    else:
        x = data.load_user_item_lines(DATA / "lastfm" / "LastFM.txt", user_ids="identity", item_ids="identity",
                                      positions_as_timestamps=True)
    s = data.leave_one_out(x)
    valid, test = seq.leave_one_out_cases(s.train, s.valid, s.test)
    if name == "beauty":
        neg = data.evaluation_negatives([s.train, s.valid, s.test], 99, seed=0)
    else:
        line_users, _, neg_items, _ = data.read_user_item_lines(DATA / "lastfm" / "LastFM_sample.txt")
        neg = np.full((x.n_users, 99), -1, np.int64)
        neg[line_users] = neg_items.reshape(line_users.size, 99)
    return s.train, valid, test, neg


def beauty_or_lastfm(name: str):
    train, valid, test, neg = leave_one_out_data(name)
    n_items = train.n_items
    evals = {"valid": seq.sampled_evaluator(valid, neg[valid.users]),
             "test": seq.sampled_evaluator(test, neg[test.users])}
    if name == "beauty":
        evals["test_full"] = seq.full_evaluator(test, ks=(10, 20), metrics=("hr", "ndcg"))
    return train, n_items, evals, "ndcg@10"


def diginetica():
    sessions = data.load_sessions(DATA / "diginetica" / "train_sessions.txt")
    test = data.load_sessions(DATA / "diginetica" / "test_prefix_label.tsv")
    n_items = int(max(sessions.items.max(), test.items.max(), test.labels.max())) + 1
    cut = int(len(sessions) * 0.9)
    rows = np.arange(len(sessions))
    train = seq.Cases(sessions.offsets, sessions.items, np.zeros(len(sessions), np.int64)).subset(rows[:cut])
    held = seq.Cases(sessions.offsets, sessions.items, np.zeros(len(sessions), np.int64)).subset(rows[cut:])
    held_sessions = data.Sessions(held.offsets, held.items).prefix_targets()
    valid = seq.Cases(held_sessions.offsets, held_sessions.items, held_sessions.labels.astype(np.int64))
    test_cases = seq.Cases(test.offsets, test.items, test.labels.astype(np.int64))
    kw = dict(exclude_history=False, ks=20, metrics=("hr", "mrr"))
    evals = {"valid": seq.full_evaluator(valid, **kw), "test": seq.full_evaluator(test_cases, **kw)}
    return data.Sessions(train.offsets, train.items), n_items, evals, "mrr@20"


def parse_value(v: str):
    for cast in (int, float):
        try:
            return cast(v)
        except ValueError:
            pass
    return None if v == "None" else v


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", choices=sorted(MODELS))
    p.add_argument("dataset", choices=["beauty", "lastfm", "diginetica"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu", help="e.g. cuda")
    p.add_argument("--max-minutes", type=float, default=None, help="training time budget")
    p.add_argument("--set", nargs="*", default=[], help="model or fit settings, key=value")
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    cls, model_kw, model_fit = MODELS[args.model]
    model_kw, fit_kw = dict(model_kw), {**FIT, **model_fit}
    extra_model, extra_fit = PER_DATA.get((args.model, args.dataset), ({}, {}))
    model_kw.update(extra_model)
    fit_kw.update(extra_fit)
    for item in args.set:
        k, _, v = item.partition("=")
        (fit_kw if k in FIT else model_kw)[k] = parse_value(v)
    t0 = time.perf_counter()
    if args.dataset == "diginetica":
        train, n_items, evals, monitor = diginetica()
    else:
        train, n_items, evals, monitor = beauty_or_lastfm(args.dataset)
    if cls is seq.Caser and args.dataset != "diginetica":
        model_kw.setdefault("n_users", train.n_users)  # the paper's model: a user embedding per training row
    model = cls(n_items, seed=args.seed, **model_kw).to(args.device)
    res = model.fit(train, valid=evals["valid"], monitor=monitor, seed=args.seed, progress=not args.no_progress,
                    max_seconds=None if args.max_minutes is None else args.max_minutes * 60, **fit_kw)
    test = {name: fn(model) for name, fn in evals.items() if name != "valid"}
    out = {"model": args.model, "dataset": args.dataset, "seed": args.seed, "threads": args.threads,
           "device": args.device,
           "model_settings": model_kw, "fit_settings": fit_kw, "best_epoch": res.best_epoch, "valid": res.best,
           "test": test, "train_seconds": round(res.train_seconds, 1), "eval_seconds": round(res.eval_seconds, 1),
           "total_seconds": round(time.perf_counter() - t0, 1),
           "sequences_per_second": round(res.sequences_per_second, 1), "epochs_run": len(res.history),
           "history": res.history, "load_average": os.getloadavg(), "command": " ".join(sys.argv)}
    line = json.dumps(out)
    print(line)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(line + "\n")
    return out


if __name__ == "__main__":
    main()
