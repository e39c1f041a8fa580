"""Gowalla full ranking (BARS gowalla_m1 / LightGCN split): train a CF model, report Recall@20 / NDCG@20 over all
items with the user's train items excluded, train and evaluation time.

    python benchmarks/quality/cf_gowalla.py mf-bpr [--epochs N] [--valid] [--max-minutes M] [--json out.json]
    python benchmarks/quality/cf_gowalla.py mf-bpr --shared-neg 1024 --batch-size 1024   # negatives shared by a batch
    python benchmarks/quality/cf_gowalla.py neumf --shared-neg 256 --n-neg 4   # each positive: 4 x mean over 256
    python benchmarks/quality/cf_gowalla.py neumf --pretrain-epochs 10   # GMF and MLP first, as the NCF paper
    python benchmarks/quality/cf_gowalla.py neumf --loss bpr --shared-neg 256   # BPR against the mean over 256
    python benchmarks/quality/cf_gowalla.py neumf --optimizer dense_adam   # Adam on every table row each step
    python benchmarks/quality/cf_gowalla.py neumf --pretrained G/epoch100.pt M/epoch20.pt   # GMF, MLP saved by
        # their own runs (cf_gowalla.py gmf / mlp --save-every N --save-dir G), each with its own settings

``--valid`` holds out 10% of each user's train items as validation, trains on the rest and reports validation
metrics every ``--eval-every`` epochs: settings are chosen on it, never on test.txt. Without it the model trains on
all of train.txt for the given epochs and is evaluated once on test.txt. ``--max-minutes`` stops training after the
first epoch that ends past the budget (the row then says how many epochs ran). A test run can save the model every
``--save-every`` epochs while a ``--valid`` run with the same settings runs beside it; ``--load DIR/epoch<N>.pt``
then scores only the epoch the validation curve picked. Run with one thread on a shared machine:
``OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from fastrec import data
from fastrec.evaluate import full_ranking
from fastrec.models import cf

DATA = Path(os.environ.get("FASTREC_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))

PUBLISHED = {"mf-bpr": (0.1627, 0.1378), "neumf": (0.1399, 0.1212), "mult-vae": (0.1641, 0.1335),
             "two-tower": (0.1754, 0.1473), "gmf": None, "mlp": None}  # GMF, MLP: NeuMF's parts, no BARS number


def build(name: str, train: data.Interactions, args: argparse.Namespace):
    """The model and its fit() keyword arguments (the settings each row of the README was measured with)."""
    n_u, n_i = train.shape
    if name == "mf-bpr":
        model = cf.MF(n_u, n_i, args.dim or 64, biases=args.biases, optimizer=args.optimizer or "adagrad",
                      lr=args.lr or 0.05, init_std=0.1, seed=args.seed)
        negatives = dict(shared_neg=args.shared_neg) if args.shared_neg else dict(n_neg=args.n_neg or 4)
        fit = dict(loss="bpr", epochs=args.epochs or 120, batch_size=args.batch_size or 4096,
                   reg=1e-2 if args.reg is None else args.reg, lr_decay=args.lr_decay, margin=args.margin,
                   seed=args.seed, **negatives)
    elif name in ("neumf", "gmf", "mlp"):
        fit = dict(epochs=args.epochs or 10, batch_size=args.batch_size or 4096, n_neg=args.n_neg,
                   shared_neg=args.shared_neg or 0, reg=args.reg or 0.0, loss=args.loss, seed=args.seed)
        dim = args.dim or 32  # GMF width; the MLP tower narrows dim -> dim/2 -> dim/4
        ncf = dict(dim=dim, layers=(dim, dim // 2, dim // 4), optimizer=args.optimizer or "adam", lr=args.lr or 1e-3,
                   init_std=args.init_std, seed=args.seed)
        finetune = dict(alpha=0.5, optimizer=ncf["optimizer"], lr=args.finetune_lr or ncf["lr"])
        if name != "neumf" and (args.pretrained or args.pretrain_epochs):
            raise SystemExit(f"--pretrained / --pretrain-epochs build a NeuMF: run them as neumf, not {name}")
        if args.pretrained:  # the paper's pretraining, GMF and MLP trained by their own runs
            parts = [cf.load_model(p) for p in args.pretrained]
            for path, part in zip(args.pretrained, parts):
                if part.seen is None or part.seen.nnz != train.nnz:
                    raise SystemExit(f"--pretrained {path}: trained on another split than this run's "
                                     f"({train.nnz} train interactions; --valid runs need --valid parts)")
            model = cf.NCF.from_pretrained(*parts, **finetune)
        elif args.pretrain_epochs:  # the paper's pretraining: GMF and MLP alone, then mixed (alpha .5) and fine-tuned
            parts = [cf.NCF(n_u, n_i, kind=kind, **ncf).fit(train, **{**fit, "epochs": args.pretrain_epochs})
                     for kind in ("gmf", "mlp")]
            model = cf.NCF.from_pretrained(*parts, **finetune)
        else:
            model = cf.NCF(n_u, n_i, kind=name, **ncf)
    elif name == "mult-vae":
        model = cf.MultVAE(n_u, n_i, hidden=args.hidden, latent=args.latent, dropout=args.dropout, init=args.init,
                           sparse_input=not args.dense_input, lr=args.lr or 1e-3, seed=args.seed)
        epochs, batch_size = args.epochs or 20, args.batch_size or 500
        steps_per_epoch = -(-int((np.diff(train.indptr) > 0).sum()) // batch_size)
        fit = dict(epochs=epochs, batch_size=batch_size, anneal_cap=args.anneal_cap,
                   anneal_steps=(args.anneal_epochs or epochs) * steps_per_epoch, seed=args.seed,
                   lr_milestones=args.lr_milestones, lr_gamma=args.lr_gamma)
    elif name == "two-tower":
        model = cf.TwoTower(n_u, n_i, args.dim or 64, history=True, user_ids=not args.no_user_ids,
                            shared_history=args.shared_history, layers=args.layers,
                            temperature=args.temperature or 0.1, logq=0.0 if args.no_logq else args.logq,
                            optimizer=args.optimizer or "adagrad", lr=args.lr or 0.05, seed=args.seed)
        fit = dict(epochs=args.epochs or 20, batch_size=args.batch_size or 2048, n_mixed=args.n_neg or 0,
                   lr_decay=args.lr_decay, seed=args.seed)
    else:
        raise SystemExit(f"unknown model {name!r}; one of {sorted(PUBLISHED)}")
    return model, fit


class _OutOfTime(Exception):
    """Raised by the epoch callback when --max-minutes is spent."""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=sorted(PUBLISHED))
    ap.add_argument("--epochs", type=int)
    ap.add_argument("--seed", type=int, default=0, help="initialization and sampling seed (the model's and fit()'s; "
                    "the validation split stays seed 0)")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--dim", type=int, help="embedding width: mf-bpr, two-tower (64), gmf / mlp / neumf (32; MLP "
                    "dim-dim/2-dim/4)")
    ap.add_argument("--lr-decay", type=float, default=1.0, help="mf-bpr, two-tower: lr x this after each epoch")
    ap.add_argument("--n-neg", type=int)
    ap.add_argument("--shared-neg", type=int, help="mf-bpr, gmf, mlp, neumf: N uniform negatives per batch shared "
                    "by its positives (mf-bpr: instead of --n-neg per positive; NCF: --n-neg weighs their mean in the "
                    "log loss)")
    ap.add_argument("--batch-size", type=int,
                    help="mf-bpr, gmf, mlp, neumf (default 4096), two-tower (default 2048), mult-vae (default 500)")
    ap.add_argument("--hidden", type=int, default=600, help="mult-vae: hidden width (the paper's 600)")
    ap.add_argument("--latent", type=int, default=200, help="mult-vae: latent width (the paper's 200)")
    ap.add_argument("--dropout", type=float, default=0.5, help="mult-vae: input dropout rate")
    ap.add_argument("--anneal-cap", type=float, default=0.2, help="mult-vae: the KL weight's cap")
    ap.add_argument("--init", choices=("xavier", "torch"), default="xavier",
                    help="mult-vae: the paper code's initialization (Xavier weights, tiny biases) or nn.Linear's")
    ap.add_argument("--dense-input", action="store_true",
                    help="mult-vae: the first layer a dense matrix under torch's Adam (the paper code) instead of "
                         "a fused table under lazy Adam")
    ap.add_argument("--lr-milestones", type=int, nargs="+", default=(), metavar="E",
                    help="mult-vae: lr x --lr-gamma after each of these many epochs (step decay)")
    ap.add_argument("--lr-gamma", type=float, default=0.1, help="mult-vae: see --lr-milestones")
    ap.add_argument("--anneal-epochs", type=int,
                    help="mult-vae: the KL weight is min(--anneal-cap, epochs so far / this) (the paper code's "
                    "total_anneal_steps, counted in epochs; default: --epochs)")
    ap.add_argument("--reg", type=float, help="L2 weight (mf-bpr, gmf, mlp, neumf)")
    ap.add_argument("--margin", type=float, default=0.0, help="mf-bpr: BPR term softplus(s_neg - s_pos + margin)")
    ap.add_argument("--loss", choices=("log", "bpr"), default="log",
                    help="gmf, mlp, neumf: log loss (the NCF paper) or BPR (NGCF's NeuMF baseline)")
    ap.add_argument("--pretrain-epochs", type=int, default=0,
                    help="neumf: first train GMF and MLP alone for this many epochs each (counted in train_s)")
    ap.add_argument("--finetune-lr", type=float, help="neumf with --pretrain-epochs / --pretrained: lr after "
                    "pretraining (--lr)")
    ap.add_argument("--pretrained", type=Path, nargs=2, metavar=("GMF", "MLP"),
                    help="neumf: start from these saved GMF and MLP models (trained on the same split: --valid runs "
                    "for a --valid run), mixed at alpha .5, then fine-tuned with --optimizer at --finetune-lr")
    ap.add_argument("--init-std", type=float, default=0.01, help="gmf, mlp, neumf: embeddings start N(0, s^2)")
    ap.add_argument("--biases", action="store_true", help="item (and user) biases (mf-bpr)")
    ap.add_argument("--temperature", type=float)
    ap.add_argument("--no-logq", action="store_true", help="two-tower without the log-Q correction")
    ap.add_argument("--logq", type=float, default=1.0, help="two-tower: weight of the log-Q correction")
    ap.add_argument("--no-user-ids", action="store_true", help="two-tower: history-only user tower (YouTube DNN)")
    ap.add_argument("--shared-history", action="store_true", help="two-tower: the history mean reads the item table")
    ap.add_argument("--layers", type=lambda v: tuple(int(x) for x in v.split(",")), default=(),
                    help="two-tower: MLP widths on each tower, e.g. 128,64 (default: none)")
    ap.add_argument("--optimizer", choices=("sgd", "adagrad", "rowwise_adagrad", "adam", "dense_adam"),
                    help="mf-bpr, two-tower, neumf (adam: lazy on the tables; dense_adam: every row each step)")
    ap.add_argument("--valid", action="store_true", help="validate on 10%% of train, never look at test")
    ap.add_argument("--eval-every", type=int, default=10)
    ap.add_argument("--eval-users", type=int, help="--valid only: score a fixed random sample of this many validation "
                    "users (seed 0) instead of all, for models whose full ranking is slow (neumf)")
    ap.add_argument("--max-minutes", type=float, help="stop training after the epoch that passes this budget")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", help="append the result as a JSON line to this file")
    ap.add_argument("--save-every", type=int, help="test runs: save the model every N epochs (with --save-dir), so "
                    "the epoch chosen on a --valid run can be scored later with --load without looking at the others")
    ap.add_argument("--save-dir", type=Path, help="folder for --save-every's epoch<N>.pt files")
    ap.add_argument("--load", type=Path, help="score this saved model on test instead of training one (the row's "
                    "train_s is then null: the training time is the saving run's)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    train = data.load_user_item_lines(DATA / "gowalla" / "train.txt", user_ids="identity", item_ids="identity")
    test = data.load_user_item_lines(DATA / "gowalla" / "test.txt", user_ids=train.user_ids,
                                     item_ids=train.item_ids)
    if args.valid:
        split = data.random_holdout(train, test_ratio=0.1, seed=0, short_users="train")
        train, test = split.train, split.test
    if args.eval_users and not args.valid:
        raise SystemExit("--eval-users needs --valid: test numbers are over every test user")
    if bool(args.save_every) != bool(args.save_dir):
        raise SystemExit("--save-every and --save-dir go together")
    if args.save_dir:
        args.save_dir.mkdir(parents=True, exist_ok=True)
    users = None
    if args.eval_users:
        with_items = np.flatnonzero(np.diff(test.indptr))
        users = np.sort(np.random.default_rng(0).choice(with_items, min(args.eval_users, with_items.size),
                                                        replace=False))
    t0 = time.perf_counter()
    if args.load:
        model, fit = cf.load_model(args.load), {"loaded": str(args.load)}
    else:
        model, fit = build(args.model, train, args)

    def evaluate():
        return full_ranking(model.score_all, test, train, ks=(20,), metrics=("recall", "ndcg"), users=users,
                            block_size=512)

    epochs_run = 0
    curve = {}  # epoch -> validation (recall@20, ndcg@20)

    def callback(m, epoch):
        nonlocal epochs_run
        epochs_run = epoch + 1
        if args.valid and (epoch + 1) % args.eval_every == 0:
            r = evaluate()
            curve[epoch + 1] = (round(r["recall@20"], 4), round(r["ndcg@20"], 4))
            print(f"epoch {epoch + 1}: valid recall@20 {r['recall@20']:.4f} ndcg@20 {r['ndcg@20']:.4f}", flush=True)
        if args.save_every and (epoch + 1) % args.save_every == 0:
            m.save(args.save_dir / f"epoch{epoch + 1}.pt")
        if args.max_minutes and time.perf_counter() - t0 > 60 * args.max_minutes and epochs_run < fit["epochs"]:
            raise _OutOfTime

    if not args.load:
        try:
            model.fit(train, callback=callback, **fit)
        except _OutOfTime:
            model.eval()
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    r = evaluate()
    eval_s = time.perf_counter() - t0
    row = {"model": args.model, "split": "valid" if args.valid else "test", "recall@20": round(r["recall@20"], 4),
           "ndcg@20": round(r["ndcg@20"], 4), "published": PUBLISHED[args.model],
           "train_s": None if args.load else round(train_s, 1), "eval_s": round(eval_s, 1), "epochs_run": epochs_run,
           "valid_curve": curve, "fit": fit, "args": vars(args),
           "load": os.getloadavg()[0]}
    print(json.dumps(row, default=str))
    if args.json:
        with open(args.json, "a") as f:
            f.write(json.dumps(row, default=str) + "\n")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
