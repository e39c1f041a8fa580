"""fastrec.train.Trainer: learning, seeds that repeat, checkpoints that resume exactly, early stopping, schedules,
accumulation, multi-task, bad labels."""

import math

import numpy as np
import pytest
import torch

from fastrec import optim
from fastrec.features import DenseFeature, FeatureTable, SparseFeature
from fastrec.models import ctr
from fastrec.train import Trainer, seed_everything

FEATURES = [SparseFeature("a", 20), SparseFeature("b", 30), DenseFeature("x")]


def synthetic(n=3000, seed=0, tasks=1):
    rng = np.random.default_rng(seed)
    a, b, x = rng.integers(0, 20, n), rng.integers(0, 30, n), rng.normal(size=n).astype(np.float32)
    wa, wb = np.random.default_rng(99).normal(size=20), np.random.default_rng(98).normal(size=30)
    logit = 2 * wa[a] + 2 * wb[b] + x + (a % 3 == b % 3)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float32)
    labels = y if tasks == 1 else np.stack([y, (rng.random(n) < 1 / (1 + np.exp(logit))).astype(np.float32)], 1)
    names = ["click"] if tasks == 1 else ["click", "like"]
    return FeatureTable({"a": a, "b": b, "x": x}, labels, names)


def model(seed=0, dropout=0.2):
    seed_everything(seed)
    return ctr.DeepFM(FEATURES, 4, (16,), dropout=dropout, sparse_optimizer=optim.FusedAdam(lr=0.01))


def weights(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


def test_learns_and_evaluates():
    train, valid = synthetic(), synthetic(1000, seed=1)
    t = Trainer(model(), lr=0.01, epochs=4, batch_size=256, progress=False)
    history = t.fit(train, valid)
    assert len(history) == 4 and history[-1]["train_loss"] < history[0]["train_loss"]
    res = t.evaluate(valid, metrics=("auc", "logloss", "gauc"), groups="a")
    assert res["auc"] > 0.8 and res["logloss"] < 0.55 and 0.5 < res["gauc"] <= 1
    p = t.predict(valid)
    assert p.shape == (1000,) and ((p > 0) & (p < 1)).all()


def test_same_seed_repeats_the_run():
    runs = []
    for _ in range(2):
        m = model(seed=3)
        Trainer(m, lr=0.01, epochs=2, batch_size=256, seed=5, progress=False).fit(synthetic())
        runs.append(weights(m))
    for k in runs[0]:
        assert torch.equal(runs[0][k], runs[1][k]), k


def test_resume_continues_exactly(tmp_path):
    straight = model()
    Trainer(straight, lr=0.01, epochs=3, batch_size=256, seed=1, progress=False).fit(synthetic(), synthetic(500, 1))
    resumed = model()
    Trainer(resumed, lr=0.01, epochs=1, batch_size=256, seed=1, checkpoint_dir=tmp_path, progress=False).fit(
        synthetic(), synthetic(500, 1))
    fresh = model(seed=123)  # different initial weights: everything must come from the checkpoint
    torch.manual_seed(77)  # and a different generator state
    t = Trainer(fresh, lr=0.01, epochs=3, batch_size=256, seed=1, checkpoint_dir=tmp_path, progress=False)
    history = t.fit(synthetic(), synthetic(500, 1), resume=True)
    assert [h["epoch"] for h in history] == [0, 1, 2]
    for k, v in weights(straight).items():
        assert torch.equal(v, fresh.state_dict()[k]), k


def test_early_stopping_restores_the_best_epoch():
    train, valid = synthetic(600), synthetic(600, seed=1)
    m = model(dropout=0.0)
    t = Trainer(m, lr=0.05, epochs=30, batch_size=64, patience=2, metric="logloss", progress=False)
    history = t.fit(train, valid)
    assert len(history) < 30  # overfits a small set, stops
    best = min(h["valid_logloss"] for h in history)
    assert t.best_metric == best and len(history) == t.best_epoch + 3
    assert t.evaluate(valid)["logloss"] == pytest.approx(best, rel=1e-6)


def test_schedule_factors_and_fused_lr():
    m = model()
    t = Trainer(m, lr=0.1, schedule="cosine", warmup_steps=4, min_lr_ratio=0.1, progress=False)
    assert [t._lr_factor(s, 14) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert t._lr_factor(9, 14) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert t._lr_factor(14, 14) == pytest.approx(0.1)
    t._set_lr(0.5)
    assert t.optimizer.param_groups[0]["lr"] == 0.05 and m.embedding.ebc.optimizer.lr == 0.005
    assert t.fused == [m.embedding.ebc.optimizer]  # shared by the linear and the embedding tables


def test_accumulation_counts_optimizer_steps():
    m = model()
    t = Trainer(m, epochs=1, batch_size=100, accumulation_steps=4, clip_grad_norm=1.0, progress=False)
    t.fit(synthetic(1000))  # 10 batches -> 3 Adam steps (the last one partial)
    state = t.optimizer.state_dict()["state"]
    assert {int(s["step"]) for s in state.values()} == {3}
    assert int(m.embedding.ebc.optimizer_step) == 10  # fused updates: one per batch


def test_multi_task():
    seed_everything(0)
    m = ctr.MMoE(FEATURES, 2, 4, 2, (8,), (4,))
    t = Trainer(m, lr=0.01, epochs=5, batch_size=256, task_weights=(1.0, 0.5), progress=False)
    t.fit(synthetic(tasks=2), synthetic(500, 1, tasks=2))
    res = t.evaluate(synthetic(500, 2, tasks=2))
    assert set(res) == {"auc", "logloss", "auc_click", "auc_like", "logloss_click", "logloss_like"}
    assert res["auc_click"] > 0.7 and res["auc_like"] > 0.7
    assert t.predict(synthetic(10, 3, tasks=2)).shape == (10, 2)


def test_bad_labels_and_arguments():
    data = synthetic(100)
    data.labels[3] = 2.0
    t = Trainer(model(), progress=False)
    with pytest.raises(ValueError, match="label column 'click' must hold 0 or 1"):
        t.fit(data)
    with pytest.raises(ValueError, match="2 column"):
        t.fit(synthetic(100, tasks=2))
    with pytest.raises(ValueError, match="metric"):
        Trainer(model(), metric="ndcg")
    with pytest.raises(ValueError, match="resume"):
        Trainer(model(), progress=False).fit(synthetic(100), resume=True)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_training_matches_cpu():
    """The same model trained for one epoch on CUDA and on CPU (fused embedding updates and Adam) ends close."""
    import copy

    cpu = model(dropout=0.0)
    gpu = copy.deepcopy(cpu)
    on_cpu = Trainer(cpu, lr=0.01, epochs=1, batch_size=256, progress=False)
    on_cpu.fit(synthetic(1000))
    on_gpu = Trainer(gpu, lr=0.01, epochs=1, batch_size=256, progress=False, device="cuda")
    on_gpu.fit(synthetic(1000))
    for k, v in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[k].cpu(), v, rtol=1e-3, atol=1e-4, msg=k)
    expected = on_cpu.evaluate(synthetic(500, 1))
    for name, value in on_gpu.evaluate(synthetic(500, 1)).items():
        assert value == pytest.approx(expected[name], abs=1e-4), name
