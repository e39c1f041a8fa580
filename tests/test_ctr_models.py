"""CTR models: the feature embedding against direct table reads, FM against the brute-force pairwise sum, the dense
layers against their formulas, every model's shapes / training step / save-load round trip, bad input."""

import itertools

import pytest
import torch

from fastrec import optim
from fastrec.features import (
    Categorical,
    DenseFeature,
    MultiHotFeature,
    Preprocessor,
    SequenceFeature,
    SparseFeature,
)
from fastrec.models import ctr
from fastrec.nn import AttentionalPairPooling, CrossNet, MixtureOfExperts, TargetAttention

FEATURES = [SparseFeature("user", 7), SparseFeature("item", 11), MultiHotFeature("tags", 5),
            DenseFeature("age"), DenseFeature("vec", 2), SequenceFeature("hist", 11, 4, table="item")]
ONE_HOT = [SparseFeature("user", 7), SparseFeature("item", 11), SparseFeature("city", 3), DenseFeature("age")]


def batch(b=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    tags = torch.randint(0, 5, (b, 3), generator=g)
    tags[0] = -1  # an empty bag
    tags[1, 1:] = -1
    hist = torch.randint(0, 11, (b, 4), generator=g)
    hist[0] = -1  # an empty history
    hist[2, 2:] = -1
    return {"user": torch.randint(0, 7, (b,), generator=g), "item": torch.randint(0, 11, (b,), generator=g),
            "city": torch.randint(0, 3, (b,), generator=g), "tags": tags, "age": torch.randn(b, generator=g),
            "vec": torch.randn(b, 2, generator=g), "hist": hist}


def test_feature_embedding_matches_table_rows():
    emb = ctr.FeatureEmbedding(FEATURES, 4, optim.FusedSGD(lr=0.1), dense_as_fields=True)
    x = batch()
    e = emb(x)
    assert emb.field_names == ["user", "item", "tags"] and emb.num_fields == 6
    item, user, tags = (emb.ebc.table_weight(n) for n in ("item", "user", "tags"))
    torch.testing.assert_close(e.fields[:, 0], user[x["user"]])
    torch.testing.assert_close(e.fields[:, 1], item[x["item"]])
    for r in range(6):
        ids = x["tags"][r][x["tags"][r] >= 0]
        want = tags[ids].mean(0) if len(ids) else torch.zeros(4)
        torch.testing.assert_close(e.fields[r, 2], want)
        seq, mask = e.sequences["hist"]
        torch.testing.assert_close(mask[r], x["hist"][r] >= 0)
        torch.testing.assert_close(seq[r][mask[r]], item[x["hist"][r][mask[r]]])
        assert (seq[r][~mask[r]] == 0).all()
    dense = torch.cat([x["age"][:, None], x["vec"]], 1)
    torch.testing.assert_close(e.dense, dense)
    torch.testing.assert_close(e.fields[:, 3:], dense[:, :, None] * emb.dense_embedding)


def test_weighted_multi_hot_is_the_weighted_sum():
    emb = ctr.FeatureEmbedding([SparseFeature("user", 7), MultiHotFeature("tags", 5, "sum", weighted=True)], 3)
    x = {"user": torch.tensor([1, 2]), "tags": torch.tensor([[0, 3, -1], [-1, -1, -1]]),
         "tags__weight": torch.tensor([[0.5, 2.0, 9.0], [1.0, 1.0, 1.0]])}
    tags = emb.ebc.table_weight("tags")
    out = emb(x).fields[:, 1]
    torch.testing.assert_close(out[0], 0.5 * tags[0] + 2.0 * tags[3])
    torch.testing.assert_close(out[1], torch.zeros(3))


def test_one_hot_fast_path_matches_jagged_path():
    fast = ctr.FeatureEmbedding(ONE_HOT, 4)
    slow = ctr.FeatureEmbedding(ONE_HOT + [MultiHotFeature("tags", 5)], 4)
    with torch.no_grad():
        for n in ("user", "item", "city"):
            slow.ebc.table_weight(n).copy_(fast.ebc.table_weight(n))
    x = batch()
    torch.testing.assert_close(fast(x).fields, slow(x).fields[:, :3])


def test_fm_equals_brute_force():
    model = ctr.FM(ONE_HOT, 3)
    x = batch()
    e = model.embedding(x).fields  # user, item, city, age*v
    pair = sum((e[:, i] * e[:, j]).sum(1) for i, j in itertools.combinations(range(e.shape[1]), 2))
    lin = model.linear
    w = {n: lin.embedding.ebc.table_weight(n)[:, 0] for n in ("user", "item", "city")}
    linear = sum(w[n][x[n]] for n in w) + lin.dense.weight[0, 0] * x["age"] + lin.bias
    torch.testing.assert_close(model(x), linear + pair, rtol=1e-5, atol=1e-6)


def test_ffm_equals_brute_force():
    model = ctr.FFM(ONE_HOT, 3)
    x = batch()
    v = model.embedding(x).fields.view(6, 4, 4, 3)  # [B, field, other field, K]; field 3 is age * v_age
    pair = sum((v[:, i, j] * v[:, j, i]).sum(1) for i, j in itertools.combinations(range(4), 2))
    torch.testing.assert_close(model(x), model.linear(x) + pair, rtol=1e-5, atol=1e-6)


def test_cross_net_formula():
    net = CrossNet(5, 2)
    with torch.no_grad():
        net.biases.normal_()
    x0 = torch.randn(3, 5)
    x = x0
    for l in range(2):
        x = x0 * (x @ net.weights[l])[:, None] + net.biases[l] + x
    torch.testing.assert_close(net(x0), x)


def test_attentional_pair_pooling_formula():
    pool = AttentionalPairPooling(4, 3, 5)
    e = torch.randn(2, 4, 3)
    pairs = torch.stack([e[:, i] * e[:, j] for i, j in itertools.combinations(range(4), 2)], 1)
    a = torch.softmax(pool.attention(pairs), 1)
    torch.testing.assert_close(pool(e), (a * pairs).sum(1))


def test_target_attention_ignores_padding():
    att = TargetAttention(3, (8,), activation="prelu")
    q, k = torch.randn(2, 3), torch.randn(2, 4, 3)
    mask = torch.tensor([[True, True, False, False], [True, False, False, False]])
    out = att(q, k, mask)
    k2 = k.clone()
    k2[~mask] = 100.0
    torch.testing.assert_close(att(q, k2, mask), out)
    k3 = k.clone()
    k3[0, 1] += 1.0  # a real position matters
    assert not torch.allclose(att(q, k3, mask)[0], out[0])


def test_mixture_of_experts_gates_mix_experts():
    moe = MixtureOfExperts(5, 2, 3, (4,))
    x = torch.randn(6, 5)
    experts = torch.stack([e(x) for e in moe.experts], 1)
    for t, out in enumerate(moe(x)):
        g = torch.softmax(moe.gates[t](x), -1)
        torch.testing.assert_close(out, (g[:, :, None] * experts).sum(1))


MODELS = {
    "LR": lambda f: ctr.LR(f),
    "FM": lambda f: ctr.FM(f, 4),
    "DeepFM": lambda f: ctr.DeepFM(f, 4, (8,), dropout=0.1, batch_norm=True),
    "NFM": lambda f: ctr.NFM(f, 4, (8,)),
    "AFM": lambda f: ctr.AFM(f, 4, 5),
    "WideDeep": lambda f: ctr.WideDeep(f, 4, (8,), wide_only=["city"]),
    "DCN": lambda f: ctr.DCN(f, 4, 2, (8,)),
    "AutoInt": lambda f: ctr.AutoInt(f, 4, 2, 2, 3, (8,)),
    "DIN": lambda f: ctr.DIN(f, 4, attention_hidden=(8,), hidden=(8,)),
    "BST": lambda f: ctr.BST(f, 4, hidden=(8,)),
    "MMoE": lambda f: ctr.MMoE(f, 2, 4, 3, (8,), (4,)),
    "FFM": lambda f: ctr.FFM([g for g in f if not isinstance(g, SequenceFeature)], 3),
    "xDeepFM": lambda f: ctr.xDeepFM(f, 4, (6, 5), (8,)),
    "DCNv2": lambda f: ctr.DCNv2(f, 4, 2, (8,), structure="parallel"),
    "DCNv2-mix": lambda f: ctr.DCNv2(f, 4, 2, (8,), low_rank=3, num_experts=2),
    "DLRM": lambda f: ctr.DLRM(f, 4, (8,), (8,)),
    "SharedBottom": lambda f: ctr.SharedBottom(f, 3, 4, (8,), (4,)),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_trains_and_round_trips(name, tmp_path):
    torch.manual_seed(0)
    features = FEATURES + [SparseFeature("city", 3)]
    model = MODELS[name](features)
    x = batch(8)
    out = model(x)
    assert out.shape == ((8,) if model.num_tasks == 1 else (8, model.num_tasks))
    assert torch.isfinite(out).all()
    tables = [m for m in model.modules() if isinstance(m, torch.nn.Module) and hasattr(m, "optimizer_step")]
    before = [t.weight.detach().clone() for t in tables]
    loss = torch.nn.functional.binary_cross_entropy_with_logits(out, torch.ones_like(out))
    loss.backward()  # the fused optimizer updates the touched rows in here
    assert all(not torch.equal(b, t.weight) for b, t in zip(before, tables))
    model.eval()
    expect = model(x)
    model.save(tmp_path / "m.pt")
    loaded, pre = ctr.load_model(tmp_path / "m.pt")
    assert type(loaded) is type(model) and pre is None
    torch.testing.assert_close(loaded.eval()(x), expect)


def test_save_with_preprocessor(tmp_path):
    data = {"user": [1, 2, 3, 1], "item": [5, 6, 5, 7], "y": [1, 0, 1, 0]}
    pre = Preprocessor([Categorical("user"), Categorical("item")])
    table = pre.fit_transform(data, label="y")
    model = ctr.DeepFM(pre.features, 4, (8,), sparse_optimizer=optim.FusedRowWiseAdagrad(lr=0.05))
    model.save(tmp_path / "m.pt", pre)
    loaded, pre2 = ctr.load_model(tmp_path / "m.pt")
    assert loaded.embedding.ebc.optimizer == optim.FusedRowWiseAdagrad(lr=0.05)
    x, _ = next(iter(pre2.transform({"user": [3, 99], "item": [7, 5]}).batches(2)))  # 99: unseen -> OOV
    assert torch.equal(x["user"], torch.tensor([3, 0]))
    torch.testing.assert_close(loaded.predict_proba(x), model.predict_proba(x))
    assert table.labels.tolist() == [1, 0, 1, 0]


def test_bad_input():
    model = ctr.DeepFM(ONE_HOT, 4, (8,))
    x = batch()
    del x["city"]
    with pytest.raises(KeyError, match="no feature 'city'"):
        model(x)
    x = batch()
    x["item"][0] = 11
    with pytest.raises(IndexError, match="item"):
        model(x)
    with pytest.raises(ValueError, match="SequenceFeature"):
        ctr.DIN(ONE_HOT)
    with pytest.raises(KeyError, match="wide_only"):
        ctr.WideDeep(ONE_HOT, wide_only=["nope"])
    with pytest.raises(ValueError, match="embed_dim"):
        ctr.FM(ONE_HOT, 0)
    with pytest.raises(ValueError, match="different poolings"):
        ctr.FM([MultiHotFeature("a", 3, "sum", table="t"), MultiHotFeature("b", 3, "mean", table="t")])



def _copy_fields(ours, usual):
    for i, e in enumerate(usual.embeddings):
        e.weight.copy_(ours.embedding.ebc.table_weight(f"C{i + 1}"))
    if usual.linear is not None:
        for i, lin in enumerate(usual.linear):
            lin.weight.copy_(ours.linear.embedding.ebc.table_weight(f"C{i + 1}"))
        usual.dense_linear.weight.copy_(ours.linear.dense.weight)
        usual.dense_linear.bias.copy_(ours.linear.bias)


def _copy_deepfm(ours, usual):
    usual.mlp.load_state_dict(ours.mlp.state_dict())


def _copy_xdeepfm(ours, usual):
    usual.mlp.load_state_dict(ours.mlp.state_dict())
    for conv, w, b in zip(usual.convs, ours.cin.weights, ours.cin.biases):
        conv.weight.copy_(w.permute(0, 2, 1).reshape(w.shape[0], -1, 1))  # W[h, i, j] -> conv[h, j * H + i]
        conv.bias.copy_(b)
    usual.cin_out.load_state_dict(ours.cin_out.state_dict())


def _copy_dcnv2(ours, usual):
    for layer, kernel, bias in zip(usual.cross, ours.cross.kernels, ours.cross.bias):
        layer.weight.copy_(kernel)
        layer.bias.copy_(bias)
    usual.mlp.layers[:-1].load_state_dict(ours.mlp.layers.state_dict())
    usual.mlp.layers[-1].load_state_dict(ours.out.state_dict())


def _copy_dlrm(ours, usual):
    usual.bottom.load_state_dict(ours.bottom.state_dict())
    usual.top.load_state_dict(ours.top.state_dict())


@pytest.mark.parametrize("name, copy", [("DeepFM", _copy_deepfm), ("xDeepFM", _copy_xdeepfm), ("DCNv2", _copy_dcnv2),
                                        ("DLRM", _copy_dlrm)])
def test_benchmark_baseline_is_the_same_model(name, copy):
    """The throughput benchmark's usual-way models compute what fastrec's do (same weights, same logits)."""
    from fastrec.bench import ctr as bench

    torch.manual_seed(0)
    ours = bench.fastrec_model(name, 4, 50)
    usual = bench.USUAL[name](4, 50, **bench.CONFIGS[name])
    with torch.no_grad():
        _copy_fields(ours, usual)
        copy(ours, usual)
    sparse, dense, _, feats = bench.criteo_batch(16, 50)
    torch.testing.assert_close(ours.eval()(feats), usual.eval()(sparse, dense), rtol=1e-4, atol=1e-4)
