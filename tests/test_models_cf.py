"""The CF zoo: every model learns a planted structure, recommends without seen items, scores pairs as it scores
all items, round-trips through save/load exactly, and rejects bad input; KNN agrees with Surprise."""

from __future__ import annotations

import copy
import math
import re

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import nn

from fastrec.data import Interactions, NegativeSampler, PointwiseBatches, TripletBatches
from fastrec.models.cf import (
    CDAE,
    KNN,
    MF,
    NCF,
    AutoRec,
    DeepRec,
    FMRatings,
    MultDAE,
    MultVAE,
    Recommender,
    TwoTower,
    load_model,
)
from fastrec.models.cf.base import entry_batches

N_USERS, N_ITEMS, GROUPS = 80, 40, 4


def _ids(users, items, values=None, times=None) -> Interactions:
    return Interactions.from_arrays(users, items, values, times, user_ids="identity", item_ids="identity",
                                    n_users=N_USERS, n_items=N_ITEMS)


@pytest.fixture(scope="module")
def implicit():
    """Users of group g interact with ~70% of the items of group g; one of them per user is held out."""
    rng = np.random.default_rng(0)
    users, items, held = [], [], []
    per = N_ITEMS // GROUPS
    for u in range(N_USERS):
        g = u % GROUPS
        chosen = [i for i in range(g * per, (g + 1) * per) if rng.random() < 0.7]
        k = int(rng.integers(len(chosen)))
        held.append(chosen[k])
        users += [u] * (len(chosen) - 1)
        items += chosen[:k] + chosen[k + 1 :]
    return _ids(np.array(users), np.array(items)), np.array(held)


@pytest.fixture(scope="module")
def ratings():
    """Ratings from a rank-2 model plus biases and noise, clipped to 1..5, with timestamps; 80/20 split."""
    rng = np.random.default_rng(1)
    p, q = rng.normal(size=(N_USERS, 2)), rng.normal(size=(N_ITEMS, 2))
    bu, bi = rng.normal(0, 0.3, N_USERS), rng.normal(0, 0.3, N_ITEMS)
    mask = rng.random((N_USERS, N_ITEMS)) < 0.5
    u, i = np.nonzero(mask)
    r = np.clip(np.round(3.5 + bu[u] + bi[i] + (p[u] * q[i]).sum(1) + rng.normal(0, 0.3, u.size)), 1, 5)
    t = 1_000_000_000 + rng.integers(0, 86400 * 300, u.size)
    test = rng.random(u.size) < 0.2
    return _ids(u[~test], i[~test], r[~test], t[~test]), (u[test], i[test], r[test], t[test])


def _hit_rate(model: Recommender, held: np.ndarray, k: int = 5) -> float:
    _, top = model.recommend(np.arange(N_USERS), k)
    return float(np.mean([held[u] in top[u].tolist() for u in range(N_USERS)]))


def _rmse(model: Recommender, test) -> float:
    u, i, r, t = test
    pred = model.score(u, i, t) if isinstance(model, (MF, FMRatings)) else model.score(u, i)
    return float(np.sqrt(np.mean((pred.numpy() - r) ** 2)))


def _check_common(model: Recommender, tmp_path, train: Interactions) -> None:
    users = np.array([0, 3, 7, 11])
    full = model.score_all(users)
    assert full.shape == (4, N_ITEMS)
    items = torch.tensor([[0, 5, 39], [1, 2, 3], [10, 20, 30], [39, 38, 0]])
    torch.testing.assert_close(model.score(users, items), full.gather(1, items), rtol=1e-4, atol=1e-4)
    scores, top = model.recommend(users, 10)
    seen = train.to_scipy()
    for r, u in enumerate(users):
        assert not set(top[r].tolist()) & set(seen[u].indices.tolist())
        assert torch.all(scores[r, :-1] >= scores[r, 1:])
    path = tmp_path / "model.pt"
    model.save(path)
    loaded = load_model(path)
    assert type(loaded) is type(model)
    assert torch.equal(loaded.score_all(users), full)
    assert torch.equal(type(model).load(path).recommend(users, 10)[1], top)
    with pytest.raises(IndexError, match="outside"):
        model.score_all([N_USERS])
    with pytest.raises(ValueError, match="k must"):
        model.recommend(users, 0)


FAST = dict(show_progress=False)


@pytest.mark.parametrize("name, make, fit", [
    ("mf-bpr", lambda: MF(N_USERS, N_ITEMS, 16, biases=False, optimizer="adagrad", lr=0.1),
     dict(loss="bpr", epochs=30, batch_size=64, reg=1e-3, n_neg=2)),
    ("mf-bpr-shared", lambda: MF(N_USERS, N_ITEMS, 16, biases=False, optimizer="adagrad", lr=0.1),
     dict(loss="bpr", epochs=30, batch_size=64, reg=1e-3, shared_neg=16)),
    ("mf-bpr-shared-biases-features", lambda: MF(N_USERS, N_ITEMS, 16, user_features=sp.eye(N_USERS).tocsr()[:, :10],
                                                 optimizer="adagrad", lr=0.1),
     dict(loss="bpr", epochs=30, batch_size=64, reg=1e-3, shared_neg=16)),
    ("gmf", lambda: NCF(N_USERS, N_ITEMS, "gmf", 16, lr=0.01), dict(epochs=30, batch_size=128)),
    ("neumf", lambda: NCF(N_USERS, N_ITEMS, "neumf", 16, (32, 16, 8), lr=0.01), dict(epochs=30, batch_size=128)),
    ("neumf-shared", lambda: NCF(N_USERS, N_ITEMS, "neumf", 16, (32, 16, 8), lr=0.01),
     dict(epochs=30, batch_size=128, shared_neg=16)),
    ("mlp-shared", lambda: NCF(N_USERS, N_ITEMS, "mlp", 16, (32, 16, 8), lr=0.03),
     dict(epochs=30, batch_size=128, shared_neg=16)),
    ("neumf-bpr", lambda: NCF(N_USERS, N_ITEMS, "neumf", 16, (32, 16, 8), lr=0.01),
     dict(epochs=30, batch_size=128, loss="bpr", n_neg=2)),
    ("neumf-bpr-shared", lambda: NCF(N_USERS, N_ITEMS, "neumf", 16, (32, 16, 8), lr=0.01),
     dict(epochs=30, batch_size=128, loss="bpr", shared_neg=16)),
    ("neumf-bpr-shared-dense-adam", lambda: NCF(N_USERS, N_ITEMS, "neumf", 16, (32, 16, 8), optimizer="dense_adam",
                                                lr=0.01), dict(epochs=30, batch_size=128, loss="bpr", shared_neg=16)),
    ("mult-vae", lambda: MultVAE(N_USERS, N_ITEMS, 32, 8, lr=0.01), dict(epochs=60, batch_size=16,
                                                                         anneal_steps=200)),
    ("mult-vae-torch-init", lambda: MultVAE(N_USERS, N_ITEMS, 32, 8, init="torch", lr=0.01),
     dict(epochs=60, batch_size=16, anneal_steps=200)),
    ("mult-vae-dense-input", lambda: MultVAE(N_USERS, N_ITEMS, 32, 8, sparse_input=False, lr=0.01),
     dict(epochs=60, batch_size=16, anneal_steps=200)),
    ("mult-dae", lambda: MultDAE(N_USERS, N_ITEMS, 32, 8, lr=0.01), dict(epochs=60, batch_size=16)),
    ("cdae", lambda: CDAE(N_USERS, N_ITEMS, 16, lr=0.01), dict(epochs=60, batch_size=16)),
    ("two-tower", lambda: TwoTower(N_USERS, N_ITEMS, 16, temperature=0.1, lr=0.1), dict(epochs=30, batch_size=64)),
    ("two-tower-mixed", lambda: TwoTower(N_USERS, N_ITEMS, 16, history=False, layers=(16,), temperature=0.2,
                                         lr=0.1), dict(epochs=30, batch_size=64, n_mixed=32)),
    ("two-tower-history-only", lambda: TwoTower(N_USERS, N_ITEMS, 16, user_ids=False, temperature=0.1, lr=0.1),
     dict(epochs=30, batch_size=64)),
    ("two-tower-shared-history", lambda: TwoTower(N_USERS, N_ITEMS, 16, user_ids=False, shared_history=True,
                                                  temperature=0.1, lr=0.1), dict(epochs=30, batch_size=64)),
])
def test_implicit_models_learn_groups(implicit, tmp_path, name, make, fit):
    train, held = implicit
    model = make().fit(train, **fit, **FAST)
    assert _hit_rate(model, held) > 0.6, name  # random: about 5 / 33
    _check_common(model, tmp_path, train)


@pytest.mark.parametrize("name, make, fit", [
    ("mf", lambda: MF(N_USERS, N_ITEMS, 4, biases=False, lr=0.05), dict(epochs=40, batch_size=128, reg=0.05)),
    ("biased-mf", lambda: MF(N_USERS, N_ITEMS, 4, lr=0.05), dict(epochs=40, batch_size=128, reg=0.05)),
    ("biased-mf-per-sample", lambda: MF(N_USERS, N_ITEMS, 4, lr=0.01), dict(epochs=40, reg=0.05, per_sample=True)),
    ("side-features", lambda: MF(N_USERS, N_ITEMS, 4, user_features=sp.eye(N_USERS).tocsr()[:, :10] * 0.5,
                                 item_features=sp.random(N_ITEMS, 6, 0.3, random_state=0), lr=0.05),
     dict(epochs=40, batch_size=128, reg=0.05)),
    ("temporal", lambda: MF(N_USERS, N_ITEMS, 4, time_bins=5, lr=0.05), dict(epochs=40, batch_size=128, reg=0.05)),
    ("tastes", lambda: MF(N_USERS, N_ITEMS, 4, tastes=3, lr=0.05), dict(epochs=40, batch_size=128, reg=0.05)),
    ("variational", lambda: MF(N_USERS, N_ITEMS, 4, variational=True, noise_std=0.5, lr=0.05),
     dict(epochs=40, batch_size=128, reg=0.05)),
    ("fm", lambda: FMRatings(N_USERS, N_ITEMS, 4, item_features=sp.random(N_ITEMS, 6, 0.3, random_state=0),
                             time_bins=3, lr=0.02), dict(epochs=60, batch_size=64, reg=0.05)),
    ("i-autorec", lambda: AutoRec(N_USERS, N_ITEMS, "item", (32,), lr=0.01), dict(epochs=150, batch_size=8)),
    ("u-autorec", lambda: AutoRec(N_USERS, N_ITEMS, "user", (32,), lr=0.01), dict(epochs=150, batch_size=8)),
    ("deeprec", lambda: DeepRec(N_USERS, N_ITEMS, layers=(32, 16), dropout=0.2, lr=0.003),
     dict(epochs=80, batch_size=8)),
    ("item-knn", lambda: KNN(N_USERS, N_ITEMS, "item", k=10), {}),
    ("user-knn-pearson", lambda: KNN(N_USERS, N_ITEMS, "user", "pearson", k=10, center="mean"), {}),
    ("item-knn-pruned", lambda: KNN(N_USERS, N_ITEMS, "item", k=10, max_neighbors=15, block_size=16), {}),
])
def test_rating_models_beat_the_mean(ratings, tmp_path, name, make, fit):
    train, test = ratings
    model = make().fit(train, **fit, **FAST)
    mean_rmse = float(np.sqrt(np.mean((test[2] - train.values.mean()) ** 2)))
    assert _rmse(model, test) < 0.85 * mean_rmse, name
    _check_common(model, tmp_path, train)
    if isinstance(model, KNN) and model.max_neighbors:
        assert np.diff(model.sim.indptr).max() <= model.max_neighbors


def _funk_svd_reference(train: Interactions, init: dict, epochs: int, lr: float, reg: float, seed: int,
                        lr_decay: float) -> dict:
    """Per-sample SGD written as plain Python loops: float64 arithmetic, float32 storage."""
    w = {k: v.numpy().copy() for k, v in init.items()}
    users, items, ratings = train.rowids(), train.indices, train.values.astype(np.float64)
    mean = float(ratings.mean()) if "user_bias" in w else 0.0  # vanilla MF: <p_u, q_i> alone, as Surprise
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        for n in rng.permutation(train.nnz):
            u, i = users[n], items[n]
            est = mean
            if "user_bias" in w:
                est += float(w["user_bias"][u, 0]) + float(w["item_bias"][i, 0])
            for f in range(w["user"].shape[1]):
                est += float(w["user"][u, f]) * float(w["item"][i, f])
            err = ratings[n] - est
            if "user_bias" in w:
                bu, bi = float(w["user_bias"][u, 0]), float(w["item_bias"][i, 0])
                w["user_bias"][u, 0] = bu + lr * (err - reg * bu)
                w["item_bias"][i, 0] = bi + lr * (err - reg * bi)
            for f in range(w["user"].shape[1]):
                pf, qf = float(w["user"][u, f]), float(w["item"][i, f])
                w["user"][u, f] = pf + lr * (err * qf - reg * pf)
                w["item"][i, f] = qf + lr * (err * pf - reg * qf)
        lr *= lr_decay
    return w


@pytest.mark.parametrize("make", [lambda: MF(N_USERS, N_ITEMS, 3, lr=0.02, seed=4),
                                  lambda: MF(N_USERS, N_ITEMS, 3, biases=False, lr=0.02, seed=4),
                                  lambda: FMRatings(N_USERS, N_ITEMS, 3, lr=0.02, seed=4)])
def test_per_sample_sgd_equals_the_python_loop(ratings, make):
    train, _ = ratings
    model = make()
    names = ["user", "item"] + (["user_bias", "item_bias"] if model.biases else [])
    init = {k: model.tables.weight(k).detach().clone() for k in names}
    model.fit(train, epochs=3, reg=0.03, lr_decay=0.9, seed=7, per_sample=True, **FAST)
    expected = _funk_svd_reference(train, init, epochs=3, lr=0.02, reg=0.03, seed=7, lr_decay=0.9)
    for k in names:
        assert torch.equal(model.tables.weight(k).detach(), torch.from_numpy(expected[k])), k
    assert not torch.equal(model.tables.weight("user").detach(), init["user"])
    again = make().fit(train, epochs=3, reg=0.03, lr_decay=0.9, seed=7, per_sample=True, **FAST)
    assert torch.equal(again.score_all(np.arange(N_USERS)), model.score_all(np.arange(N_USERS)))


def test_mf_lr_decay_restarts_from_lr_in_each_fit(ratings):
    train, _ = ratings
    model, seen = MF(N_USERS, N_ITEMS, 4, lr=0.02), []
    for epochs in (3, 1):
        model.fit(train, epochs=epochs, lr_decay=0.5, callback=lambda m, e: seen.append(m.tables.ebc.optimizer.lr),
                  **FAST)
    assert seen == pytest.approx([0.01, 0.005, 0.0025, 0.01])


def test_per_sample_sgd_rejects_other_models(ratings, implicit):
    train, _ = ratings
    with pytest.raises(ValueError, match="loss='mse'"):
        MF(N_USERS, N_ITEMS, 4).fit(implicit[0], loss="bpr", per_sample=True, **FAST)
    with pytest.raises(ValueError, match="optimizer='sgd'"):
        MF(N_USERS, N_ITEMS, 4, optimizer="adagrad").fit(train, per_sample=True, **FAST)
    with pytest.raises(ValueError, match="tastes"):
        MF(N_USERS, N_ITEMS, 4, tastes=2).fit(train, per_sample=True, **FAST)
    with pytest.raises(ValueError, match="side features"):
        FMRatings(N_USERS, N_ITEMS, 4, time_bins=2).fit(train, per_sample=True, **FAST)


@pytest.mark.parametrize("biases, margin", [(True, 0.0), (False, 0.0), (False, -1.5), (True, 0.7)])
def test_shared_negatives_step_equals_the_formula(implicit, biases, margin):
    """One SGD step on the whole train set with shared negatives equals autograd on the written-out objective:
    mean BPR over the N negatives, the user's own items left out, per-pair regularizer averaged over the negatives."""
    train, _ = implicit
    n_shared, lr, reg, seed = 64, 0.5, 0.1, 3
    model = MF(N_USERS, N_ITEMS, 4, biases=biases, optimizer="sgd", lr=lr)
    names = ["user", "item"] + (["user_bias", "item_bias"] if biases else [])
    w = {k: model.tables.weight(k).detach().clone().requires_grad_() for k in names}
    rng = np.random.default_rng(seed)  # the draws of fit: the batch order, then the negatives
    order = rng.permutation(train.nnz)
    neg = torch.from_numpy(rng.integers(0, N_ITEMS, n_shared))
    u, i = torch.from_numpy(train.rowids()[order]).long(), torch.from_numpy(train.indices[order]).long()
    pos = (w["user"][u] * w["item"][i]).sum(1)
    negs = w["user"][u] @ w["item"][neg].T
    if biases:
        pos = pos + w["user_bias"][u, 0] + w["item_bias"][i, 0]
        negs = negs + w["user_bias"][u] + w["item_bias"][neg, 0]
    own = torch.from_numpy(train.to_scipy().toarray()[u.numpy()][:, neg.numpy()] > 0)
    assert own.any() and neg.unique().numel() < n_shared  # the case covers accidental positives and repeats
    bpr = torch.where(own, 0.0, F.softplus(negs - pos[:, None] + margin)).sum() / n_shared
    touched = [(k, ids) for k, ids in (("user", u), ("user_bias", u), ("item", i), ("item_bias", i)) if k in w]
    sq = sum(w[k][ids].square().sum() for k, ids in touched)
    sq = sq + sum(w[k][neg].square().sum() for k in ("item", "item_bias") if k in w) * (u.numel() / n_shared)
    (bpr + 0.5 * reg * sq).backward()
    model.fit(train, loss="bpr", epochs=1, batch_size=train.nnz, reg=reg, shared_neg=n_shared, margin=margin,
              seed=seed, **FAST)
    for k in names:
        torch.testing.assert_close(model.tables.weight(k).detach(), (w[k] - lr * w[k].grad).detach(), msg=k)


@pytest.mark.parametrize("margin", [0.0, -1.0])
def test_per_pair_bpr_step_equals_the_formula(implicit, margin):
    """One SGD step of per-pair BPR (the whole train set as one batch) equals autograd on
    sum softplus(s_neg - s_pos + margin) over the sampler's triplets plus the per-pair regularizer."""
    train, _ = implicit
    lr, reg, seed, n_neg = 0.5, 0.1, 3, 2
    model = MF(N_USERS, N_ITEMS, 4, biases=False, optimizer="sgd", lr=lr)
    w = {k: model.tables.weight(k).detach().clone().requires_grad_() for k in ("user", "item")}
    (u, p, n), = TripletBatches(train, batch_size=train.nnz, n_neg=n_neg, seed=seed,
                                sampler=NegativeSampler(train, seed=seed))
    u, p, n = u.repeat_interleave(n_neg), p.repeat_interleave(n_neg), n.reshape(-1)
    s_pos, s_neg = (w["user"][u] * w["item"][p]).sum(1), (w["user"][u] * w["item"][n]).sum(1)
    sq = w["user"][u].square().sum() + w["item"][p].square().sum() + w["item"][n].square().sum()
    (F.softplus(s_neg - s_pos + margin).sum() + 0.5 * reg * sq).backward()
    model.fit(train, loss="bpr", epochs=1, batch_size=train.nnz, n_neg=n_neg, reg=reg, margin=margin, seed=seed,
              **FAST)
    for k in w:
        torch.testing.assert_close(model.tables.weight(k).detach(), (w[k] - lr * w[k].grad).detach(), msg=k)


def test_margin_rejects_bad_values(implicit, ratings):
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="margin must be a finite number"):
            MF(N_USERS, N_ITEMS, 4).fit(implicit[0], loss="bpr", margin=bad, **FAST)
    with pytest.raises(ValueError, match="0 unless loss='bpr'"):
        MF(N_USERS, N_ITEMS, 4).fit(ratings[0], margin=-1.0, **FAST)


def test_shared_negatives_reject_bad_values(implicit, ratings):
    train = implicit[0]
    bpr = dict(loss="bpr", epochs=1, **FAST)
    for bad in (-1, 2.5, True, "64"):
        with pytest.raises(ValueError, match="shared_neg must be an int >= 0"):
            MF(N_USERS, N_ITEMS, 4).fit(train, shared_neg=bad, **bpr)
    with pytest.raises(ValueError, match="loss='bpr'"):
        MF(N_USERS, N_ITEMS, 4).fit(ratings[0], shared_neg=8, **FAST)
    with pytest.raises(ValueError, match="leave n_neg at 1"):
        MF(N_USERS, N_ITEMS, 4).fit(train, shared_neg=8, n_neg=4, **bpr)
    for model in (MF(N_USERS, N_ITEMS, 4, tastes=2), MF(N_USERS, N_ITEMS, 4, variational=True),
                  MF(N_USERS, N_ITEMS, 4, item_features=sp.eye(N_ITEMS).tocsr())):
        with pytest.raises(ValueError, match="supports neither"):
            model.fit(train, shared_neg=8, **bpr)
    with pytest.raises(ValueError, match="MF only, not FMRatings"):
        FMRatings(N_USERS, N_ITEMS, 4).fit(train, shared_neg=8, **bpr)


def test_mf_bpr_is_reproducible(implicit):
    train, _ = implicit
    a = MF(N_USERS, N_ITEMS, 8, biases=False).fit(train, loss="bpr", epochs=2, batch_size=64, **FAST)
    b = MF(N_USERS, N_ITEMS, 8, biases=False).fit(train, loss="bpr", epochs=2, batch_size=64, **FAST)
    assert torch.equal(a.score_all([0, 1]), b.score_all([0, 1]))
    c, d = (MF(N_USERS, N_ITEMS, 8).fit(train, loss="bpr", epochs=2, batch_size=64, shared_neg=16, seed=s, **FAST)
            for s in (5, 5))
    assert torch.equal(c.score_all([0, 1]), d.score_all([0, 1]))


@pytest.mark.parametrize("kind, loss", [("neumf", "log"), ("gmf", "log"), ("neumf", "bpr")])
def test_ncf_shared_negatives_step_equals_the_formula(implicit, kind, loss):
    """One SGD step on the whole train set with shared negatives equals autograd on the written-out objective,
    every logit from a forward per (user, item) pair. Log loss: (sum of the positives' log losses + n_neg * each
    positive's mean negative log loss over the N negatives, the user's own items left out, + the per-pair L2 terms
    averaged the same way) / (B * (1 + n_neg)). BPR: the mean over positives of the mean BPR term over its N pairs
    (own items again left out), with each pair's L2 terms averaged the same way."""
    train, _ = implicit
    n_shared, n_neg, lr, reg, seed = 64, (3 if loss == "log" else None), 0.5, 0.1, 3
    model = NCF(N_USERS, N_ITEMS, kind, 4, (8, 6, 4), optimizer="sgd", lr=lr, init_std=0.3)
    names = ["user_gmf", "item_gmf"] + (["user_mlp", "item_mlp"] if kind == "neumf" else [])
    w = {k: model.tables.weight(k).detach().clone().requires_grad_() for k in names}
    ref = copy.deepcopy(nn.ModuleDict({"mlp": model.mlp, "output": model.output}) if kind == "neumf"
                        else nn.ModuleDict({"output": model.output}))

    def logits(u, i):
        parts = [w["user_gmf"][u] * w["item_gmf"][i]]
        if kind == "neumf":
            parts.append(ref["mlp"](torch.cat([w["user_mlp"][u], w["item_mlp"][i]], 1)))
        return ref["output"](torch.cat(parts, 1)).squeeze(1)

    rng = np.random.default_rng(seed)  # the draws of fit: the batch order, then the negatives
    order = rng.permutation(train.nnz)
    neg = torch.from_numpy(rng.integers(0, N_ITEMS, n_shared))
    u, i = torch.from_numpy(train.rowids()[order]).long(), torch.from_numpy(train.indices[order]).long()
    b = u.numel()
    negs = logits(u.repeat_interleave(n_shared), neg.repeat(b)).view(b, n_shared)
    own = torch.from_numpy(train.to_scipy().toarray()[u.numpy()][:, neg.numpy()] > 0)
    assert own.any() and neg.unique().numel() < n_shared  # the case covers accidental positives and repeats
    pos = logits(u, i)

    def sq(side, ids):
        return sum(w[k][ids].square().sum(-1) for k in names if k.startswith(side))

    if loss == "log":
        negative = torch.where(own, 0.0, F.softplus(negs)).sum(1) / n_shared
        pair_l2 = sq("user", u) + sq("item", i) + n_neg * (sq("user", u) + sq("item", neg).mean())  # per positive
        ((F.softplus(-pos) + n_neg * negative + 0.5 * reg * pair_l2).sum() / (b * (1 + n_neg))).backward()
    else:
        pairs = torch.where(own, 0.0, F.softplus(negs - pos[:, None])).sum(1) / n_shared
        pair_l2 = sq("user", u) + sq("item", i) + sq("item", neg).mean()
        ((pairs + 0.5 * reg * pair_l2).sum() / b).backward()
    model.fit(train, epochs=1, batch_size=train.nnz, n_neg=n_neg, shared_neg=n_shared, reg=reg, loss=loss, seed=seed,
              **FAST)
    for k in names:
        torch.testing.assert_close(model.tables.weight(k).detach(), (w[k] - lr * w[k].grad).detach(), msg=k)
    trained = dict(model.named_parameters())
    for k, p in ref.named_parameters():
        torch.testing.assert_close(trained[k].detach(), (p - lr * p.grad).detach(), msg=k)


def test_ncf_shared_negatives_reject_bad_values(implicit):
    for bad in (-1, 2.5, True, "64"):
        with pytest.raises(ValueError, match="shared_neg must be an int >= 0"):
            NCF(N_USERS, N_ITEMS, "gmf", 4).fit(implicit[0], epochs=1, shared_neg=bad, **FAST)
    with pytest.raises(ValueError, match="n_neg must be a positive int"):
        NCF(N_USERS, N_ITEMS, "gmf", 4).fit(implicit[0], epochs=1, shared_neg=8, n_neg=0, **FAST)
    with pytest.raises(ValueError, match="reg must be >= 0"):
        NCF(N_USERS, N_ITEMS, "gmf", 4).fit(implicit[0], epochs=1, reg=-1.0, **FAST)
    with pytest.raises(ValueError, match="loss must be one of"):
        NCF(N_USERS, N_ITEMS, "gmf", 4).fit(implicit[0], epochs=1, loss="hinge", **FAST)
    with pytest.raises(ValueError, match="leave n_neg unset, got 4"):
        NCF(N_USERS, N_ITEMS, "gmf", 4).fit(implicit[0], epochs=1, loss="bpr", shared_neg=8, n_neg=4, **FAST)


@pytest.mark.parametrize("loss", ["log", "bpr"])
def test_ncf_per_pair_step_equals_the_formula(implicit, loss):
    """One SGD step with per-pair negatives and reg on the batch fit draws equals autograd with every logit from a
    plain forward. Log loss: the mean log loss over the B * (1 + n_neg) examples + 0.5 reg * each example's rows.
    BPR: the mean of softplus(s_neg - s_pos) over the B x n_neg pairs + 0.5 reg * each pair's user, positive and
    negative rows (a row that is both a positive and a negative gets one aggregated update)."""
    train, _ = implicit
    lr, reg, n_neg, seed = 0.5, 0.1, 3, 4
    model = NCF(N_USERS, N_ITEMS, "neumf", 4, (8, 4), optimizer="sgd", lr=lr, init_std=0.3)
    names = ["user_gmf", "item_gmf", "user_mlp", "item_mlp"]
    w = {k: model.tables.weight(k).detach().clone().requires_grad_() for k in names}
    ref = copy.deepcopy(nn.ModuleDict({"mlp": model.mlp, "output": model.output}))

    def logits(u, i):
        h = torch.cat([w["user_gmf"][u] * w["item_gmf"][i], ref["mlp"](torch.cat([w["user_mlp"][u],
                                                                                  w["item_mlp"][i]], -1))], -1)
        return ref["output"](h).squeeze(-1)

    def sq(side, ids):
        return sum(w[k][ids].square().sum(-1) for k in names if k.startswith(side))

    batching = TripletBatches if loss == "bpr" else PointwiseBatches
    batches = batching(train, batch_size=train.nnz, n_neg=n_neg, seed=seed, sampler=NegativeSampler(train, seed=seed))
    if loss == "log":
        u, i, y = next(iter(batches))
        l2 = (sq("user", u) + sq("item", i)).mean()
        objective = F.binary_cross_entropy_with_logits(logits(u, i), y) + 0.5 * reg * l2
    else:
        u, i, n = next(iter(batches))
        assert np.isin(n.numpy(), i.numpy()).any()  # some items are positives of one pair and negatives of another
        l2 = (n_neg * (sq("user", u) + sq("item", i)) + sq("item", n).sum(1)).sum() / n.numel()
        objective = F.softplus(logits(u[:, None].expand_as(n), n) - logits(u, i)[:, None]).mean() + 0.5 * reg * l2
    objective.backward()
    model.fit(train, epochs=1, batch_size=train.nnz, n_neg=n_neg, reg=reg, loss=loss, seed=seed, **FAST)
    for k in names:
        torch.testing.assert_close(model.tables.weight(k).detach(), (w[k] - lr * w[k].grad).detach(), msg=k)
    trained = dict(model.named_parameters())
    for k, p in ref.named_parameters():
        torch.testing.assert_close(trained[k].detach(), (p - lr * p.grad).detach(), msg=k)


def test_neumf_from_pretrained_scores_as_the_mix(implicit):
    train, _ = implicit
    gmf = NCF(N_USERS, N_ITEMS, "gmf", 8).fit(train, epochs=2, **FAST)
    mlp = NCF(N_USERS, N_ITEMS, "mlp", 8, (16, 8)).fit(train, epochs=2, **FAST)
    neumf = NCF.from_pretrained(gmf, mlp, alpha=0.3)
    users = np.arange(5)
    torch.testing.assert_close(neumf.score_all(users), 0.3 * gmf.score_all(users) + 0.7 * mlp.score_all(users))
    with pytest.raises(ValueError, match="'gmf' and an 'mlp'"):
        NCF.from_pretrained(mlp, gmf)


def test_two_tower_index_matches_exact(implicit):
    train, _ = implicit
    model = TwoTower(N_USERS, N_ITEMS, 8).fit(train, epochs=3, **FAST)
    users = np.arange(10)
    exact_scores, exact_items = model.recommend(users, 5)
    for kind in ("exact", "flat"):
        scores, items = model.recommend(users, 5, index=model.build_index(kind))
        torch.testing.assert_close(scores, exact_scores, rtol=1e-5, atol=1e-5)
        assert (items == exact_items).float().mean() > 0.95  # ties may swap


def test_two_tower_shared_history_reads_the_item_table(implicit):
    train, _ = implicit
    model = TwoTower(N_USERS, N_ITEMS, 8, user_ids=False, shared_history=True).fit(train, epochs=2, **FAST)
    table = model.tables.weight("item").detach()
    m = train.to_scipy()
    history_mean = torch.stack([table[m.indices[m.indptr[u]:m.indptr[u + 1]]].mean(0) for u in range(N_USERS)])
    torch.testing.assert_close(model.user_vectors(), torch.nn.functional.normalize(history_mean, dim=-1))
    torch.testing.assert_close(model.item_vectors(), torch.nn.functional.normalize(table, dim=-1))
    separate = TwoTower(N_USERS, N_ITEMS, 8, user_ids=False)
    assert sum(p.numel() for p in separate.state_dict().values()) > sum(p.numel() for p in model.state_dict().values())


@pytest.mark.parametrize("logq", [False, 0.5, True])
def test_two_tower_logq_weight_scales_the_correction(implicit, logq):
    train, _ = implicit
    model = TwoTower(N_USERS, N_ITEMS, 8, logq=logq, temperature=0.5).fit(train, epochs=1, **FAST)
    g = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(3, 8, generator=g), dim=-1)
    cands = torch.nn.functional.normalize(torch.randn(5, 8, generator=g), dim=-1)
    pos, cand_ids = torch.tensor([4, 7, 4]), torch.tensor([4, 7, 4, 1, 9])  # 3 positives, 2 mixed negatives
    pop = np.bincount(train.to_scipy().indices, minlength=N_ITEMS)
    expected_count = np.concatenate([pop[pos.numpy()] / train.nnz * 3, np.full(2, 2 / N_ITEMS)])
    want = (u @ cands.T).double() / 0.5 - float(logq) * torch.from_numpy(np.log(expected_count))
    want[0, 2] = want[2, 0] = -torch.inf  # the other copy of item 4 is not a negative of rows 0 and 2
    torch.testing.assert_close(model._batch_logits(u, cands, pos, cand_ids), want.float())
    with pytest.raises(ValueError, match="logq"):
        TwoTower(N_USERS, N_ITEMS, 8, logq=-1.0)


def test_two_tower_lr_decay_scales_tables_and_towers_per_epoch(implicit):
    train, _ = implicit
    make = lambda: TwoTower(N_USERS, N_ITEMS, 8, history=False, layers=(8,), lr=0.1)  # noqa: E731
    seen = []

    def record(m, epoch):
        seen.append(m.tables.ebc.optimizer.lr)

    model = make().fit(train, epochs=3, lr_decay=0.5, callback=record, **FAST)
    assert [round(lr, 12) for lr in seen] == [0.1, 0.05, 0.025]
    assert model.tables.ebc.optimizer.lr == 0.1  # the next fit starts from the constructor's lr
    # a decay of 1e-12 freezes everything after the first epoch: the weights equal a one-epoch fit's
    frozen = make().fit(train, epochs=3, lr_decay=1e-12, **FAST)
    one = make().fit(train, epochs=1, **FAST)
    weights = [n for n in one.state_dict() if "optimizer" not in n and n != "log_popularity"]
    assert any("mlp" in n for n in weights)
    for name in weights:
        torch.testing.assert_close(frozen.state_dict()[name], one.state_dict()[name], rtol=0, atol=1e-7, msg=name)
    with pytest.raises(ValueError, match="lr_decay"):
        make().fit(train, epochs=1, lr_decay=0.0, **FAST)


def test_mult_vae_xavier_init_follows_the_paper_code():
    """init="xavier" (the default): each weight uniform within +-sqrt(6 / (fan_in + fan_out)) and spread over it,
    the input table counted as the [n_items -> hidden] layer it is; biases within +-0.002 with std about 0.001."""
    n_items, hidden, latent = 3000, 60, 20
    model = MultVAE(N_USERS, n_items, hidden, latent, seed=1)  # the default
    dense = MultVAE(N_USERS, n_items, hidden, latent, sparse_input=False, seed=1)
    weights = {"input": model.tables.weight("input"), "encoder": model.encoder.weight,
               "decoder_hidden": model.decoder[0].weight, "decoder_out": model.decoder[2].weight,
               "dense input": dense.input_weight}
    for name, w in weights.items():
        bound = math.sqrt(6 / sum(w.shape))
        assert w.abs().max() <= bound and w.abs().max() > 0.99 * bound, name
        assert abs(w.std().item() - bound / math.sqrt(3)) < 0.02 * bound, name
    biases = torch.cat([model.input_bias, model.encoder.bias, model.decoder[0].bias, model.decoder[2].bias])
    assert biases.abs().max() <= 0.002 and 0.0006 < biases.std() < 0.0011
    torch_init = MultVAE(N_USERS, n_items, hidden, latent, init="torch", seed=1)  # the input table +-1/sqrt(n_items)
    assert torch_init.tables.weight("input").abs().max() <= 1 / math.sqrt(n_items) < 0.5 * math.sqrt(6 / (n_items + 60))
    with pytest.raises(ValueError, match="init must be 'torch' or 'xavier', got 'he'"):
        MultVAE(N_USERS, n_items, init="he")
    with pytest.raises(TypeError, match="sparse_input must be a bool, got 'no'"):
        MultVAE(N_USERS, n_items, sparse_input="no")


@pytest.mark.parametrize(("variational", "milestones"), [(False, ()), (True, ()), (True, (1, 2))])
def test_mult_vae_dense_input_trains_as_torch_adam_on_a_dense_first_layer(implicit, variational, milestones):
    """sparse_input=False trains as the paper's code does: the first layer a dense [n_items, hidden] matrix under
    torch's Adam, so a row no item of the batch touches still moves through its momentum. A plain loop over the
    same batches (dense input rows times a dense matrix, Adam on every parameter, L2 on every weight, the lr
    stepped down as torch's MultiStepLR does) reaches the same weights; the fused lazy table (sparse_input=True,
    the default) does not."""
    train, _ = implicit
    epochs, batch, lr, reg, gamma = 3, 16, 0.01, 0.01, 0.3
    schedule = dict(lr_milestones=milestones, lr_gamma=gamma)

    def make(sparse):  # dropout 0: the VAE's noise is the only draw left, replayed below from fit's seed
        return MultVAE(N_USERS, N_ITEMS, 16, 4, dropout=0.0, variational=variational, reg=reg, sparse_input=sparse,
                       lr=lr, seed=3)

    fitted = make(False).fit(train, epochs=epochs, batch_size=batch, seed=5, anneal_steps=10, show_progress=False,
                             **schedule)
    lazy = make(True).fit(train, epochs=epochs, batch_size=batch, seed=5, anneal_steps=10, show_progress=False,
                          **schedule)
    ref = make(False)
    m = train.to_scipy().tocsr().astype(np.float32)
    rows_with_data, rng = np.flatnonzero(np.diff(m.indptr) > 0), np.random.default_rng(5)
    opt = torch.optim.Adam(ref.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(opt, list(milestones), gamma)
    torch.manual_seed(5)
    step = 0
    for _ in range(epochs):
        for b in entry_batches(rows_with_data.size, batch, rng):
            x = torch.from_numpy(m[np.sort(rows_with_data[b])].toarray())
            code = ref.encoder(torch.tanh(F.normalize(x, dim=1) @ ref.input_weight + ref.input_bias))
            if variational:
                mu, logvar = code.chunk(2, dim=1)
                kl = 0.5 * (logvar.exp() + mu.square() - 1 - logvar).sum(1).mean() * min(0.2, step / 10)
                code = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # fit's draws: seeded as fit seeds them
            else:
                code, kl = torch.tanh(code), 0.0
            nll = -(F.log_softmax(ref.decoder(code), dim=1) * x).sum() / x.shape[0]
            l2 = sum(w.square().sum() for w in (ref.input_weight, ref.encoder.weight, ref.decoder[0].weight,
                                                 ref.decoder[2].weight))
            opt.zero_grad()
            (nll + kl + 0.5 * reg * l2).backward()
            opt.step()
            step += 1
        scheduler.step()
    for name, want in ref.state_dict().items():
        torch.testing.assert_close(fitted.state_dict()[name], want, rtol=1e-4, atol=1e-5, msg=name)
    assert not torch.allclose(lazy.tables.weight("input"), ref.input_weight, atol=1e-3)


@pytest.mark.parametrize("sparse_input", [True, False])
def test_autoencoder_lr_milestones_step_the_input_table_and_the_layers(implicit, sparse_input):
    """After a milestone with a vanishing lr_gamma nothing moves any more, the fused input table included; the
    next fit starts again from the constructor's lr. Bad milestones and gammas are refused by name."""
    train, _ = implicit

    def fit(model, epochs, **schedule):
        return model.fit(train, epochs=epochs, batch_size=16, seed=2, show_progress=False, **schedule)

    def make():
        return MultVAE(N_USERS, N_ITEMS, 16, 4, sparse_input=sparse_input, lr=0.01, seed=3)

    one = fit(make(), 1)
    frozen = fit(make(), 3, lr_milestones=(1,), lr_gamma=1e-12)
    for name, want in one.state_dict().items():  # the weights; the Adam moments and step count go on
        if "optimizer" not in name:
            torch.testing.assert_close(frozen.state_dict()[name], want, rtol=0, atol=1e-6, msg=name)
    table = frozen._input_table().detach().clone()
    fit(frozen, 1)  # no milestones: the constructor's lr again
    assert (frozen._input_table() - table).abs().max() > 1e-3
    for kwargs, match in (({"lr_milestones": (0,)}, "lr_milestones must be a positive int, got 0"),
                          ({"lr_milestones": (2.5,)}, "lr_milestones must be a positive int, got 2.5"),
                          ({"lr_gamma": 0.0}, "lr_gamma must be a positive number, got 0.0")):
        with pytest.raises(ValueError, match=re.escape(match)):
            fit(make(), 1, **kwargs)
    with pytest.raises(TypeError, match="lr_milestones must be a sequence of epoch counts, got 30"):
        fit(make(), 1, lr_milestones=30)


def test_mult_vae_kl_weight_is_the_paper_codes_schedule():
    """beta = min(anneal_cap, update / anneal_steps): linear from 0 at a slope of 1 / anneal_steps, flat at the
    cap (the paper's code: 200000 steps, cap 0.2, so 0.2 from update 40000 on)."""
    model = MultVAE(N_USERS, N_ITEMS, 8, 4)
    model._set_loss_args(anneal_steps=200, anneal_cap=0.6)
    logits, kl = torch.zeros(2, N_ITEMS), torch.tensor(3.0)
    bags = (torch.tensor([1, 5]), torch.tensor([1, 1]), torch.ones(2), torch.tensor([0, 1]))
    base = model._loss((logits, kl), bags, 2, 0)
    assert base.item() == pytest.approx(math.log(N_ITEMS))  # the multinomial NLL alone at update 0
    for step, beta in ((50, 0.25), (100, 0.5), (120, 0.6), (1000, 0.6)):
        assert (model._loss((logits, kl), bags, 2, step) - base).item() == pytest.approx(beta * 3.0), step
    with pytest.raises(ValueError, match="anneal_cap"):
        model._set_loss_args(anneal_steps=200, anneal_cap=-0.1)


def test_recommend_pads_when_items_run_out(implicit):
    train, _ = implicit
    model = MF(N_USERS, N_ITEMS, 4).fit(train, loss="bpr", epochs=1, **FAST)
    n_seen = int(train.user_degrees()[0])
    scores, items = model.recommend([0], N_ITEMS)
    assert (items[0, N_ITEMS - n_seen:] == -1).all() and torch.isneginf(scores[0, N_ITEMS - n_seen:]).all()
    assert (items[0, : N_ITEMS - n_seen] >= 0).all()
    assert model.recommend([0], 3, exclude_seen=False)[1].shape == (1, 3)


def test_bad_arguments(implicit):
    train, _ = implicit
    with pytest.raises(ValueError, match="dim"):
        MF(N_USERS, N_ITEMS, 0)
    with pytest.raises(ValueError, match="n_users"):
        MF(0, N_ITEMS)
    with pytest.raises(ValueError, match="optimizer"):
        MF(N_USERS, N_ITEMS, optimizer="lbfgs")
    with pytest.raises(ValueError, match="loss"):
        MF(N_USERS, N_ITEMS).fit(train, loss="hinge")
    with pytest.raises(ValueError, match="shape"):
        MF(N_USERS + 1, N_ITEMS).fit(train)
    with pytest.raises(ValueError, match="kind"):
        NCF(N_USERS, N_ITEMS, "deep")
    with pytest.raises(ValueError, match="shared_history"):
        TwoTower(N_USERS, N_ITEMS, history=False, shared_history=True)
    with pytest.raises(ValueError, match="similarity"):
        KNN(N_USERS, N_ITEMS, similarity="jaccard")
    with pytest.raises(RuntimeError, match="fit"):
        MF(N_USERS, N_ITEMS).recommend([0], 3)
    with pytest.raises(ValueError, match="same length"):
        MF(N_USERS, N_ITEMS).score([0, 1], [0])
    with pytest.raises(ValueError, match="time_bins"):
        MF(N_USERS, N_ITEMS, time_bins=-1)
    with pytest.raises(ValueError, match="user_ids=False"):
        TwoTower(N_USERS, N_ITEMS, user_ids=False, history=False)


def test_knn_matches_surprise(ratings):
    surprise = pytest.importorskip("surprise")
    train, test = ratings
    rows, cols, vals = train.rowids(), train.indices, train.values
    import pandas as pd

    frame = pd.DataFrame({"u": rows, "i": cols, "r": vals})
    trainset = surprise.Dataset.load_from_df(frame, surprise.Reader(rating_scale=(1, 5))).build_full_trainset()
    cases = [
        (dict(kind="item", similarity="pearson_baseline", k=10), surprise.KNNBaseline,
         dict(k=10, sim_options={"name": "pearson_baseline", "user_based": False})),
        (dict(kind="user", similarity="pearson", k=5, center="mean", shrinkage=0), surprise.KNNWithMeans,
         dict(k=5, sim_options={"name": "pearson", "user_based": True})),
        (dict(kind="item", similarity="cosine", k=7, center="none", shrinkage=0), surprise.KNNBasic,
         dict(k=7, sim_options={"name": "cosine", "user_based": False})),
    ]
    for ours, cls, theirs in cases:
        algo = cls(verbose=False, **theirs)
        algo.fit(trainset)
        expected = np.array([algo.predict(u, i, clip=False).est for u, i in zip(test[0][:200], test[1][:200])])
        got = KNN(N_USERS, N_ITEMS, **ours).fit(train, **FAST).score(test[0][:200], test[1][:200]).numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=str(ours))


def test_two_stage_ranks_the_retrievers_candidates(implicit, tmp_path):
    from fastrec.models.cf import TwoStage

    train, held = implicit
    retriever = TwoTower(N_USERS, N_ITEMS, 8, temperature=0.1, lr=0.1).fit(train, epochs=10, **FAST)
    ranker = MF(N_USERS, N_ITEMS, 8, biases=False, optimizer="adagrad", lr=0.1).fit(
        train, loss="bpr", epochs=20, batch_size=64, **FAST)
    pipe = TwoStage(retriever, ranker, n_candidates=12)
    users = np.arange(N_USERS)
    scores, items = pipe.recommend(users, 5)
    _, cands = retriever.recommend(users, 12)
    for u in range(N_USERS):
        assert set(items[u].tolist()) <= set(cands[u].tolist())
        expected = ranker.score(np.full(12, u), cands[u]).topk(5).values
        torch.testing.assert_close(scores[u], expected)
    assert np.mean([held[u] in items[u].tolist() for u in users]) > 0.6
    pipe.save(tmp_path / "pipe")
    again = TwoStage.load(tmp_path / "pipe")
    assert torch.equal(again.recommend(users, 5)[1], items)
    with pytest.raises(ValueError, match="n_candidates"):
        pipe.recommend(users, 13)
    with pytest.raises(ValueError, match="features"):
        TwoStage(retriever, nn.Linear(2, 1))


def test_two_stage_with_a_feature_model(implicit):
    from fastrec.models.cf import TwoStage

    train, _ = implicit
    retriever = MF(N_USERS, N_ITEMS, 8, biases=False).fit(train, loss="bpr", epochs=2, **FAST)

    class ItemPrior(nn.Module):  # a "CTR model" that prefers low item ids
        def forward(self, batch):
            return -batch["item"].float()

    pipe = TwoStage(retriever, ItemPrior(), n_candidates=10, features=lambda u, i: {"user": u, "item": i})
    scores, items = pipe.recommend([0, 1], 3)
    _, cands = retriever.recommend([0, 1], 10)
    assert torch.equal(items, cands.sort(dim=1).values[:, :3])


def test_two_stage_ease_candidates_ranked_by_deepfm(implicit, tmp_path):
    """The issue's pipeline: EASE candidates (seen items excluded) ranked by a DeepFM trained on user/item ids."""
    from fastrec.data import PointwiseBatches
    from fastrec.features import FeatureTable, SparseFeature
    from fastrec.linear import EASE
    from fastrec.models.cf import TwoStage
    from fastrec.models.ctr import DeepFM
    from fastrec.optim import FusedAdam
    from fastrec.train import Trainer

    train, held = implicit
    ease = EASE(l2=10.0).fit(train)
    u, i, y = map(torch.cat, zip(*PointwiseBatches(train, batch_size=10_000, n_neg=4, seed=0)))
    table = FeatureTable({"user": u.numpy(), "item": i.numpy()}, y.numpy())
    deepfm = DeepFM([SparseFeature("user", N_USERS), SparseFeature("item", N_ITEMS)], embed_dim=8, hidden=(16,),
                    sparse_optimizer=FusedAdam(lr=0.02))
    Trainer(deepfm, lr=0.01, epochs=15, batch_size=256, progress=False).fit(table)

    def features(users, items):
        return {"user": users, "item": items}

    pipe = TwoStage(ease, deepfm, n_candidates=15, features=features)
    users = np.arange(N_USERS)
    scores, items = pipe.recommend(users, 5)
    _, cands = ease.recommend(users, 15)
    seen = train.to_scipy()
    for r in range(N_USERS):
        assert set(items[r].tolist()) <= set(cands[r].tolist())
        assert not set(items[r].tolist()) & set(seen[r].indices.tolist())
    assert np.mean([held[r] in items[r].tolist() for r in users]) > 0.6
    pipe.save(tmp_path / "pipe")
    again = TwoStage.load(tmp_path / "pipe", features=features)
    assert type(again.retriever) is EASE and type(again.ranker) is DeepFM
    assert torch.equal(again.recommend(users, 5)[1], items)
