"""fastrec's table-batched embedding bag against plain torch: per-table nn.functional.embedding_bag (values and
row-sparse gradients), the fused optimizers against their float64 reference and torch.optim, the modules against
torch.nn.EmbeddingBag, state round-trips, opcheck, and bad input."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from fastrec import KeyedJagged, ops
from fastrec.nn import EmbeddingBag, EmbeddingBagCollection, TableConfig
from fastrec.nn._huge_pages import huge_pages_status, system_setting
from fastrec.ops import reference
from fastrec.optim import FusedAdagrad, FusedAdam, FusedRowWiseAdagrad, FusedSGD

from conftest import CUDA, DEVICES

# (rows, dim, pooling) per table; dims hit the kernel's fixed-size paths (8, 16, 64, 128) and the generic one.
MIXED_TABLES = [(50, 16, 0), (7, 3, 1), (1000, 8, 0), (20, 17, 1), (300, 64, 0), (5, 128, 1)]


def make_layout(tables):
    layout, element, first = [], 0, 0
    for num_rows, dim, pooling in tables:
        layout += [element, dim, num_rows, first, pooling]
        element += num_rows * dim
        first += num_rows
    return layout, element, first


def make_batch(tables, feature_tables, batch, max_len, seed, index_dtype=torch.int64, weighted=False):
    """Feature-major indices/offsets with empty bags, duplicates and the first and last row of every table."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(0, max_len + 1, (len(feature_tables) * batch,), generator=gen)
    indices = []
    for g, length in enumerate(lengths.tolist()):
        num_rows = tables[feature_tables[g // batch]][0]
        ids = torch.randint(0, num_rows, (length,), generator=gen)
        if length >= 3:
            ids[0], ids[1], ids[2] = 0, num_rows - 1, ids[-1]  # edges and a duplicate
        indices.append(ids)
    indices = torch.cat(indices).to(index_dtype) if indices else torch.zeros(0, dtype=index_dtype)
    offsets = torch.cat([torch.zeros(1, dtype=torch.int64), lengths.cumsum(0)]).to(index_dtype)
    weights = torch.rand(indices.numel(), generator=gen) if weighted else None
    return indices, offsets, weights


CASES = [
    # (tables, feature -> table, batch, max bag length)
    (MIXED_TABLES, [0, 1, 2, 3, 4, 5, 2, 0], 9, 5),
    ([(100, 16, 0)], [0], 33, 1),
    ([(100, 16, 1), (40, 16, 0)], [1, 0, 1], 17, 20),
    (MIXED_TABLES[:2], [0, 1], 0, 3),  # empty batch
    ([(3, 4, 0)], [0, 0], 5, 0),  # all bags empty
]


def _weights(total_rows, dim_or_elements, uniform, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    shape = (total_rows, dim_or_elements) if uniform else (dim_or_elements,)
    return torch.randn(shape, generator=gen).to(dtype)


@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
def test_forward_and_sparse_gradient_match_reference(case, weighted, index_dtype):
    tables, feature_tables, batch, max_len = CASES[case]
    layout, elements, total_rows = make_layout(tables)
    dims = {t[1] for t in tables}
    uniform = len(dims) == 1
    weights = _weights(total_rows, next(iter(dims)) if uniform else elements, uniform, torch.float32).requires_grad_()
    ft = list(feature_tables)
    indices, offsets, psw = make_batch(tables, feature_tables, batch, max_len, seed=case, index_dtype=index_dtype,
                                       weighted=weighted)
    out = ops.embedding_bag(weights, layout, ft, indices, offsets, psw)
    expected = reference.embedding_bag(weights, layout, ft, indices, offsets, psw)
    assert out.shape == (batch, sum(tables[t][1] for t in feature_tables))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, weights, grad_out)
    (expected_grad,) = torch.autograd.grad(expected, weights, grad_out)
    assert grad.is_sparse and grad.is_coalesced()
    torch.testing.assert_close(grad.to_dense(), expected_grad, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("case", [0, 2, 3])
def test_per_sample_weights_gradient_matches_reference(case, device):
    tables, feature_tables, batch, max_len = CASES[case]
    layout, elements, _ = make_layout(tables)
    weights = _weights(0, elements, False, torch.float32).to(device).requires_grad_()
    ft = list(feature_tables)
    indices, offsets, psw = make_batch(tables, feature_tables, batch, max_len, seed=case, weighted=True)
    indices, offsets, psw = indices.to(device), offsets.to(device), psw.to(device).requires_grad_()
    out = ops.embedding_bag(weights, layout, ft, indices, offsets, psw)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (weights, psw), grad_out)
    w64, psw64 = weights.detach().double().requires_grad_(), psw.detach().double().requires_grad_()
    expected = torch.autograd.grad(reference.embedding_bag(w64, layout, ft, indices, offsets, psw64), (w64, psw64),
                                   grad_out.double())
    torch.testing.assert_close(grads[0].to_dense().double(), expected[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(grads[1].double(), expected[1], rtol=1e-5, atol=1e-5)


def test_per_sample_weights_gradient_with_fused_optimizer_uses_rows_before_the_update():
    collection = EmbeddingBagCollection([TableConfig("tags", 12, 8, ("tags",), pooling="mean")],
                                        optimizer=FusedSGD(lr=0.5))
    before = collection.weight.detach().clone()
    values, lengths = torch.tensor([1, 1, 3, 7]), torch.tensor([3, 0, 1])
    weights = torch.rand(4, requires_grad=True)
    out = collection(KeyedJagged(["tags"], values, lengths=lengths, weights=weights), concat=True)
    grad_out = torch.randn_like(out)
    out.backward(grad_out)
    plain = EmbeddingBagCollection([TableConfig("tags", 12, 8, ("tags",), pooling="mean")])
    plain.weight.data.copy_(before)
    w = weights.detach().clone().requires_grad_()
    plain(KeyedJagged(["tags"], values, lengths=lengths, weights=w), concat=True).backward(grad_out)
    torch.testing.assert_close(weights.grad, w.grad)
    assert not torch.equal(collection.weight, before)  # and the rows were updated


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_weights_accumulate_in_float32(dtype):
    tables, feature_tables, batch, max_len = CASES[0]
    layout, elements, total_rows = make_layout(tables)
    weights = _weights(total_rows, elements, False, dtype)
    ft = list(feature_tables)
    indices, offsets, psw = make_batch(tables, feature_tables, batch, max_len, seed=3, weighted=True)
    out = ops.embedding_bag(weights, layout, ft, indices, offsets, psw)
    assert out.dtype == torch.float32
    expected = reference.embedding_bag(weights.float(), layout, ft, indices, offsets, psw)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("weighted", [False, True])
def test_large_output_written_with_streaming_stores_matches_reference(weighted):
    # Outputs of >= 4 MiB take the kernel's streaming-store path for aligned rows of <= 64 floats; the 17- and
    # 7-float rows, the 128-float row after them and the mean-pooled table keep normal stores in the same call.
    tables = [(500, 64, 0), (90, 17, 1), (30, 7, 0), (800, 128, 0), (300, 32, 1), (20, 8, 0), (5000, 16, 0)]
    feature_tables = list(range(len(tables)))
    batch = 4000  # 4000 x 272 floats = 4.15 MiB
    layout, elements, _ = make_layout(tables)
    weights = _weights(0, elements, False, torch.float32)
    indices, offsets, psw = make_batch(tables, feature_tables, batch, 3, seed=7, weighted=weighted)
    out = ops.embedding_bag(weights, layout, feature_tables, indices, offsets, psw)
    assert out.numel() * 4 >= 4 << 20
    torch.testing.assert_close(out, reference.embedding_bag(weights, layout, feature_tables, indices, offsets, psw),
                               rtol=1e-5, atol=1e-5)


def test_large_ids_in_a_large_table():
    rows = 3_000_000
    layout, elements, _ = make_layout([(5, 2, 0), (rows, 1, 0)])
    weights = torch.randn(elements)
    indices = torch.tensor([4, rows - 1, rows - 2, 0])
    offsets = torch.tensor([0, 1, 3, 4])  # feature 0: bags [4], feature 1 (2nd table): bags [rows-1, rows-2]...
    ft = [0, 1]
    with pytest.raises(ValueError, match="num_features \\* batch_size \\+ 1"):
        ops.embedding_bag(weights, layout, ft, indices, offsets)
    offsets = torch.tensor([0, 1, 1, 3, 4])  # B=2: feature 0 bags [4], []; feature 1 bags [rows-1, rows-2], [0]
    indices = torch.tensor([4, rows - 1, rows - 2, 0])
    out = ops.embedding_bag(weights.requires_grad_(), layout, ft, indices, offsets)
    torch.testing.assert_close(out, reference.embedding_bag(weights, layout, ft, indices, offsets))


def test_opcheck():
    tables, feature_tables, batch, max_len = CASES[2]
    layout, _, total_rows = make_layout(tables)
    weights = torch.randn(total_rows, 16, requires_grad=True)
    ft = list(feature_tables)
    indices, offsets, psw = make_batch(tables, feature_tables, batch, max_len, seed=5, weighted=True)
    torch.library.opcheck(torch.ops.fastrec.embedding_bag_forward.default, (weights, layout, ft, indices, offsets, psw))
    torch.library.opcheck(torch.ops.fastrec.embedding_bag_forward.default, (weights, layout, ft, indices, offsets, None))
    grad = torch.randn(batch, 48)
    torch.library.opcheck(torch.ops.fastrec.embedding_bag_backward_per_sample_weights.default,
                          (grad, weights.detach(), layout, ft, indices, offsets))
    state = torch.zeros(total_rows)
    torch.library.opcheck(
        torch.ops.fastrec.embedding_bag_backward_fused.default,
        (grad, weights.detach().clone(), state, torch.zeros(0), layout, ft, indices, offsets, psw, 2, 0.1, 1e-8, 0.0,
         0.0, 0.0, 1),
        test_utils=("test_schema", "test_faketensor"),
    )
    moments = torch.zeros(weights.numel()), torch.zeros(weights.numel())
    torch.library.opcheck(
        torch.ops.fastrec.embedding_bag_backward_fused.default,
        (grad, weights.detach().clone(), *moments, layout, ft, indices, offsets, psw, 4, 0.1, 1e-8, 0.9, 0.999, 0.0,
         1),
        test_utils=("test_schema", "test_faketensor"),
    )
    with pytest.raises(ValueError, match=r"optimizer must be 0 \(SGD\), .* or 4 \(dense Adam\), got 5"):
        torch.ops.fastrec.embedding_bag_backward_fused.default(
            grad, weights.detach().clone(), *moments, layout, ft, indices, offsets, psw, 5, 0.1, 1e-8, 0.9, 0.999,
            0.0, 1)


@pytest.mark.filterwarnings("ignore:Input #0 requires gradient and is not a double")
def test_gradcheck_on_weights():
    # The op is linear in the weights and accumulates in float32: finite differences with a coarse eps are exact
    # up to float32 rounding, so float32 gradcheck with float32 tolerances is meaningful here.
    tables, feature_tables = [(6, 3, 0), (4, 2, 1)], [0, 1, 0]
    layout, elements, _ = make_layout(tables)
    weights = torch.randn(elements, requires_grad=True)
    ft = list(feature_tables)
    indices, offsets, psw = make_batch(tables, feature_tables, 3, 4, seed=7, weighted=True)

    def fn(w):  # gradcheck compares dense Jacobians: densify the row-sparse gradient on the way back
        return ops.embedding_bag(ops.with_dense_gradient(w), layout, ft, indices, offsets, psw)

    assert torch.autograd.gradcheck(fn, (weights,), eps=1e-2, atol=1e-3, rtol=1e-3)


BAD_OP_INPUTS = [
    (dict(indices=torch.tensor([0, 10])), IndexError, r"id 10 at indices\[1\] \(feature 0, table 0\) is out of range \[0, 10\)"),
    (dict(indices=torch.tensor([-1, 0])), IndexError, r"id -1 at indices\[0\]"),
    (dict(offsets=torch.tensor([0, 2, 1, 2])), ValueError, "offsets must be non-decreasing"),
    (dict(offsets=torch.tensor([0, 1, 1, 1])), ValueError, r"offsets\[-1\] must equal len\(indices\) = 2"),
    (dict(offsets=torch.tensor([1, 1, 1, 2])), ValueError, r"offsets\[0\] must be 0"),
    (dict(offsets=torch.tensor([0, 2])), ValueError, r"num_features \* batch_size \+ 1 = 3 \* B \+ 1 entries, got 2"),
    (dict(indices=torch.tensor([0.0, 1.0])), TypeError, "indices must be int64 or int32"),
    (dict(indices=torch.tensor([0, 1], dtype=torch.int32)), TypeError, "must have the same dtype"),
    (dict(psw=torch.ones(3)), ValueError, "one weight per index"),
    (dict(psw=torch.ones(2, dtype=torch.float64)), TypeError, "per_sample_weights must be float32"),
    (dict(weights=torch.zeros(10, 4, dtype=torch.int64)), TypeError, "weights must be float32, float16 or bfloat16"),
    (dict(weights=torch.zeros(9, 4)), ValueError, "does not fit in weights"),
    (dict(feature_tables=[0, 1, 5]), ValueError, "feature 2 maps to table 5"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("override, error, message", BAD_OP_INPUTS)
def test_bad_input_raises_before_reading(override, error, message, device):
    layout, _, _ = make_layout([(10, 4, 0), (10, 4, 0)])
    args = dict(weights=torch.zeros(20, 4), feature_tables=[0, 1, 0], indices=torch.tensor([0, 1]),
                offsets=torch.tensor([0, 1, 1, 2]), psw=None)
    if "offsets" not in override and "feature_tables" not in override:
        args["feature_tables"] = [0]
        args["offsets"] = torch.tensor([0, 1, 1, 2])
    args.update(override)
    args = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in args.items()}
    with pytest.raises(error, match=message):
        ops.embedding_bag(args["weights"], layout, args["feature_tables"], args["indices"], args["offsets"],
                          args["psw"])
    if device == "cuda" and "weights" not in override:  # the CUDA backward flags bad input the same way
        grad = torch.zeros(1, 4 * len(args["feature_tables"]), device=device)
        with pytest.raises(error, match=message):
            torch.ops.fastrec.embedding_bag_backward_sparse(grad, layout, args["feature_tables"], args["indices"],
                                                            args["offsets"], args["psw"])


# ---- fused optimizers ----

OPTIMIZERS = [
    FusedSGD(lr=0.1),
    FusedSGD(lr=0.05, weight_decay=0.01),
    FusedAdagrad(lr=0.1),
    FusedRowWiseAdagrad(lr=0.1, eps=1e-6),
    FusedAdam(lr=0.05),
    FusedAdam(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.001),
    FusedAdam(lr=0.05, lazy=False),
    FusedAdam(lr=0.01, betas=(0.8, 0.9), eps=1e-6, weight_decay=0.001, lazy=False),
]

COLLECTION_TABLES = [
    TableConfig("user", 40, 8, ("user",)),
    TableConfig("item", 30, 8, ("item", "last_item"), pooling="mean"),
    TableConfig("tags", 12, 8, ("tags",)),
]


def _reference_state(optimizer, weight):
    adam = ["exp_avg", "exp_avg_sq"]
    names = {"sgd": [], "adagrad": ["sum"], "rowwise_adagrad": ["sum"], "adam": adam, "dense_adam": adam}
    state = {}
    for name in names[optimizer.reference_name]:
        shape = weight.shape[:1] if optimizer.reference_name == "rowwise_adagrad" else weight.shape
        state[name] = torch.zeros(shape, dtype=torch.float64)
    return state


def _random_kjt(batch, seed):
    gen = torch.Generator().manual_seed(seed)
    keys = ["user", "item", "last_item", "tags"]
    rows = [40, 30, 30, 12]
    lengths = torch.cat([torch.ones(batch, dtype=torch.int64), torch.ones(batch, dtype=torch.int64),
                         torch.ones(batch, dtype=torch.int64), torch.randint(0, 4, (batch,), generator=gen)])
    values = torch.cat([torch.randint(0, r, (int(lengths[i * batch:(i + 1) * batch].sum()),), generator=gen)
                        for i, r in enumerate(rows)])
    values[:3] = 5  # duplicate user ids inside the batch
    return KeyedJagged(keys, values, lengths=lengths, weights=torch.rand(values.numel(), generator=gen))


@pytest.mark.parametrize("optimizer", OPTIMIZERS, ids=lambda o: repr(o))
def test_fused_optimizer_steps_match_reference(optimizer):
    torch.manual_seed(0)
    collection = EmbeddingBagCollection(COLLECTION_TABLES, optimizer=copy.deepcopy(optimizer))
    weight = collection.weight.detach().double().clone()
    state = _reference_state(optimizer, weight)
    layout = collection._layout
    for step in range(1, 4):
        kjt = _random_kjt(batch=16, seed=step)
        grad_out = torch.randn(16, 32)
        out = collection(kjt, concat=True)
        out.backward(grad_out)
        # The reference: the same lookups in float64 plain torch, the dense gradient, the plain update rule.
        w = weight.clone().requires_grad_()
        ft = collection._feature_tables(kjt.keys)
        expected = reference.embedding_bag(w, layout, ft, kjt.values, kjt.offsets, kjt.weights.double())
        torch.testing.assert_close(out.double(), expected, rtol=1e-5, atol=1e-5)
        (grad,) = torch.autograd.grad(expected, w, grad_out.double())
        reference.sparse_optimizer_step(optimizer.reference_name, weight, grad, state, lr=optimizer.lr,
                                        eps=getattr(optimizer, "eps", 0.0), betas=getattr(optimizer, "betas", (0, 0)),
                                        weight_decay=optimizer.weight_decay, step=step)
        torch.testing.assert_close(collection.weight.double(), weight, rtol=1e-5, atol=1e-6)
    assert int(collection.optimizer_step) == 3
    for i, value in enumerate(state.values()):
        torch.testing.assert_close(getattr(collection, f"optimizer_state{i + 1}").double(), value.reshape(-1),
                                   rtol=1e-5, atol=1e-6)


def _torch_optimizer_twin(optimizer, params):
    if isinstance(optimizer, FusedSGD):
        return torch.optim.SGD(params, lr=optimizer.lr)
    if isinstance(optimizer, FusedRowWiseAdagrad):
        return None
    if isinstance(optimizer, FusedAdagrad):
        return torch.optim.Adagrad(params, lr=optimizer.lr, eps=optimizer.eps)
    if not optimizer.lazy:
        return torch.optim.Adam(params, lr=optimizer.lr, betas=optimizer.betas, eps=optimizer.eps,
                                weight_decay=optimizer.weight_decay)
    return torch.optim.SparseAdam(params, lr=optimizer.lr, betas=optimizer.betas, eps=optimizer.eps)


@pytest.mark.parametrize("optimizer", [FusedSGD(lr=0.1), FusedAdagrad(lr=0.1), FusedAdam(lr=0.05),
                                       # torch.optim.Adam adds eps after the bias correction, fastrec (as Keras,
                                       # TF and SparseAdam) before: a tiny eps makes the two rules the same
                                       FusedAdam(lr=0.05, eps=1e-12, lazy=False),
                                       FusedAdam(lr=0.05, eps=1e-12, weight_decay=0.01, lazy=False)], ids=repr)
def test_fused_training_equals_sparse_gradients_with_torch_optimizer(optimizer):
    torch.manual_seed(1)
    fused = EmbeddingBagCollection(COLLECTION_TABLES, optimizer=optimizer)
    plain = EmbeddingBagCollection(COLLECTION_TABLES)
    with torch.no_grad():
        plain.weight.copy_(fused.weight)
    torch_optimizer = _torch_optimizer_twin(optimizer, [plain.weight])
    for step in range(3):
        kjt = _random_kjt(batch=8, seed=10 + step)
        grad_out = torch.randn(8, 32)
        fused(kjt, concat=True).backward(grad_out)
        torch_optimizer.zero_grad()
        plain(kjt, concat=True).backward(grad_out)
        assert plain.weight.grad.is_sparse
        if isinstance(torch_optimizer, torch.optim.Adam):  # non-lazy Adam is torch's Adam on the dense gradient
            plain.weight.grad = plain.weight.grad.to_dense()
        torch_optimizer.step()
        torch.testing.assert_close(fused.weight, plain.weight, rtol=1e-5, atol=1e-6)


def test_duplicate_ids_are_aggregated_once():
    collection = EmbeddingBagCollection([TableConfig("t", 4, 2)], optimizer=FusedRowWiseAdagrad(lr=1.0))
    with torch.no_grad():
        collection.weight.zero_()
    ids = torch.tensor([[1], [1], [1]])
    collection(ids).sum().backward()
    # one row-wise update with the aggregated gradient (3, 3): s = 9, w = -1 * 3 / sqrt(9)
    torch.testing.assert_close(collection.weight[1], torch.tensor([-1.0, -1.0]))
    torch.testing.assert_close(collection.optimizer_state1, torch.tensor([0.0, 9.0, 0.0, 0.0]))
    assert collection.weight[[0, 2, 3]].abs().sum() == 0


def test_dense_adam_moves_the_rows_and_tables_a_step_did_not_touch():
    tables = [TableConfig("a", 4, 2), TableConfig("b", 3, 2)]
    lazy, dense = (EmbeddingBagCollection(tables, optimizer=FusedAdam(lr=0.1, lazy=is_lazy))
                   for is_lazy in (True, False))
    with torch.no_grad():
        dense.weight.copy_(lazy.weight)
    start = lazy.weight.detach().clone()
    for module in (lazy, dense):  # step 1 touches row 1 of table a; step 2 touches row 0 of table a only
        module(KeyedJagged(["a"], torch.tensor([1]), lengths=torch.tensor([1])), concat=True).sum().backward()
        module(KeyedJagged(["a"], torch.tensor([0]), lengths=torch.tensor([1])), concat=True).sum().backward()
    lazy_moved = (lazy.weight != start).any(1)
    dense_moved = (dense.weight != start).any(1)
    assert lazy_moved.tolist() == [True, True, False, False, False, False, False]
    # row 1 keeps moving along its momentum in step 2; untouched rows and table b have zero moments: no step
    assert dense_moved.tolist() == [True, True, False, False, False, False, False]
    assert not torch.equal(dense.weight[1], lazy.weight[1])
    assert dense.optimizer_state2[:4].ne(0).all() and dense.optimizer_state2[4:].eq(0).all()  # rows 0, 1 of a
    with pytest.raises(TypeError, match="lazy must be a bool, got 'no'"):
        FusedAdam(lazy="no")


def test_dense_adam_benchmark_cases_run():
    from fastrec.bench.embedding import dense_adam_cases

    (mode, shape, fastrec, baselines), = dense_adam_cases(batch=8, users=20, items=30, dims=(4,))
    assert mode == "fwd+bwd fused dense Adam" and "B=8 D=4" in shape
    for step in (fastrec, *baselines.values()):
        step()


def test_state_dict_round_trip_resumes_exactly(tmp_path):
    torch.manual_seed(2)
    original = EmbeddingBagCollection(COLLECTION_TABLES, optimizer=FusedAdam(lr=0.05))
    original(_random_kjt(8, seed=1), concat=True).sum().backward()
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    restored = EmbeddingBagCollection(COLLECTION_TABLES, optimizer=FusedAdam(lr=0.05))
    restored.load_state_dict(torch.load(buffer))
    for module in (original, restored):
        module(_random_kjt(8, seed=2), concat=True).sum().backward()
    assert torch.equal(original.weight, restored.weight)
    assert torch.equal(original.optimizer_state2, restored.optimizer_state2)
    assert int(restored.optimizer_step) == 2


def test_dense_ids_and_keyed_jagged_agree_with_torch_modules():
    torch.manual_seed(3)
    tables = [TableConfig("a", 10, 4, ("fa", "fb")), TableConfig("b", 7, 6, ("fc",), "mean"),
              TableConfig("seq", 9, 4, ("history",), "none")]
    collection = EmbeddingBagCollection(tables)
    modules = collection.to_embedding_modules()
    ids = torch.tensor([[1, 2, 3, 4], [9, 0, 6, 8]])
    out = collection(ids)
    assert out.shape == (2, 4 + 4 + 6 + 4)
    expected = torch.cat([modules["a"](ids[:, :1]), modules["a"](ids[:, 1:2]), modules["b"](ids[:, 2:3]),
                          modules["seq"](ids[:, 3])], dim=1)
    torch.testing.assert_close(out, expected)

    kjt = KeyedJagged(["history", "fc"], torch.tensor([1, 2, 3, 4, 5, 6]), lengths=torch.tensor([2, 1, 0, 3]))
    result = collection(kjt)
    assert list(result) == ["history", "fc"]
    torch.testing.assert_close(result["history"], modules["seq"](torch.tensor([1, 2, 3])))
    torch.testing.assert_close(result["fc"], modules["b"](torch.tensor([4, 5, 6]), torch.tensor([0, 0])))

    back = EmbeddingBagCollection.from_embedding_modules(modules, {"a": ["fa", "fb"], "b": ["fc"], "seq": ["history"]})
    assert torch.equal(back.weight, collection.weight)


def test_sequence_features_share_one_update():
    # Two sequence features on one table: the row both touch is updated once, with the summed gradient.
    collection = EmbeddingBagCollection([TableConfig("items", 6, 2, ("clicks", "buys"), "none")],
                                        optimizer=FusedRowWiseAdagrad(lr=1.0))
    with torch.no_grad():
        collection.weight.zero_()
    kjt = KeyedJagged(["clicks", "buys"], torch.tensor([3, 1, 3, 3]), lengths=torch.tensor([2, 1, 1, 0]))
    out = collection(kjt)
    assert out["clicks"].shape == (3, 2) and out["buys"].shape == (1, 2)
    (out["clicks"].sum() + out["buys"].sum()).backward()
    torch.testing.assert_close(collection.optimizer_state1[3], torch.tensor(9.0))  # gradient (3, 3), once
    torch.testing.assert_close(collection.weight[3], torch.tensor([-1.0, -1.0]))
    assert int(collection.optimizer_step) == 1


def test_uniform_dims_give_3d_output_and_half_storage():
    collection = EmbeddingBagCollection([TableConfig("a", 10, 8), TableConfig("b", 5, 8)], dtype=torch.bfloat16)
    assert collection.weight.dtype == torch.bfloat16
    out = collection(torch.tensor([[1, 2], [3, 4], [0, 0]]))
    assert out.shape == (3, 2, 8) and out.dtype == torch.float32


def test_module_errors_name_the_feature():
    collection = EmbeddingBagCollection([TableConfig("users", 10, 4, ("user_id",)), TableConfig("items", 5, 4)])
    with pytest.raises(IndexError, match=r"id 7 .*\(feature 'items', table 'items'\) is out of range \[0, 5\)"):
        collection(torch.tensor([[1, 7]]))
    with pytest.raises(KeyError, match="unknown features"):
        collection(KeyedJagged(["nope"], torch.tensor([1]), lengths=torch.tensor([1])))
    with pytest.raises(ValueError, match="dense ids must be"):
        collection(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="pooling must be"):
        TableConfig("x", 3, 4, pooling="max")
    with pytest.raises(ValueError, match="num_embeddings must be a positive int"):
        TableConfig("x", 0, 4)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        FusedSGD(lr=-1.0)
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        KeyedJagged(["a"], torch.tensor([1]), lengths=torch.tensor([2, -1]))
    with pytest.raises(ValueError, match="give exactly one of lengths and offsets"):
        KeyedJagged(["a"], torch.tensor([1]))


# ---- the nn.EmbeddingBag drop-in ----

@pytest.mark.parametrize("mode", ["sum", "mean"])
@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("padding_idx", [None, 0, -1])
def test_embedding_bag_matches_torch(mode, sparse, padding_idx):
    torch.manual_seed(4)
    ours = EmbeddingBag(20, 6, mode=mode, sparse=sparse, padding_idx=padding_idx)
    theirs = nn.EmbeddingBag(20, 6, mode=mode, sparse=sparse, padding_idx=padding_idx)
    with torch.no_grad():
        theirs.weight.copy_(ours.weight)
    inputs = [
        (torch.tensor([0, 3, 19, 3, 5, 0, 7]), torch.tensor([0, 2, 2, 6]), None),
        (torch.tensor([[1, 19, 0], [4, 4, 2]]), None, None),
    ]
    if mode == "sum":
        inputs.append((torch.tensor([1, 2, 19, 0]), torch.tensor([0, 3]), torch.rand(4)))
    for input, offsets, psw in inputs:
        out, expected = ours(input, offsets, psw), theirs(input, offsets, psw)
        torch.testing.assert_close(out, expected)
        ours.zero_grad(), theirs.zero_grad()
        grad_out = torch.randn_like(out)
        out.backward(grad_out)
        expected.backward(grad_out)
        assert ours.weight.grad.is_sparse == sparse
        torch.testing.assert_close(ours.weight.grad.to_dense(), theirs.weight.grad.to_dense())


def test_embedding_bag_include_last_offset_and_errors():
    ours = EmbeddingBag(10, 3, mode="sum", include_last_offset=True)
    theirs = nn.EmbeddingBag.from_pretrained(ours.weight.detach().clone(), mode="sum", include_last_offset=True)
    input, offsets = torch.tensor([1, 2, 3, 4]), torch.tensor([0, 1, 4])
    torch.testing.assert_close(ours(input, offsets), theirs(input, offsets))
    with pytest.raises(ValueError, match="mode must be 'sum' or 'mean'"):
        EmbeddingBag(10, 3, mode="max")
    with pytest.raises(ValueError, match="per_sample_weights is only supported for mode='sum'"):
        EmbeddingBag(10, 3)(input, torch.tensor([0, 2]), torch.rand(4))
    with pytest.raises(ValueError, match="needs 1-D offsets"):
        ours(input)
    with pytest.raises(IndexError, match="out of range"):
        ours(torch.tensor([11]), torch.tensor([0, 1]))
    pretrained = EmbeddingBag.from_pretrained(torch.randn(4, 2))
    assert not pretrained.weight.requires_grad


def test_torch_compile_fullgraph_with_sparse_gradients():
    torch.manual_seed(5)
    collection = EmbeddingBagCollection([TableConfig("a", 10, 4), TableConfig("b", 7, 4, pooling="mean")])
    compiled = torch.compile(collection, fullgraph=True)
    ids = torch.tensor([[1, 2], [3, 4], [9, 6]])
    torch.testing.assert_close(compiled(ids), collection(ids))
    grad_out = torch.randn(3, 2, 4)
    compiled(ids).backward(grad_out)
    compiled_grad = collection.weight.grad.to_dense()
    collection.weight.grad = None
    collection(ids).backward(grad_out)
    torch.testing.assert_close(compiled_grad, collection.weight.grad.to_dense())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_fused_update_of_half_precision_weights(dtype):
    # The update is computed in float32 and rounded once to the storage type.
    torch.manual_seed(6)
    half = EmbeddingBagCollection(COLLECTION_TABLES, optimizer=FusedRowWiseAdagrad(lr=0.1), dtype=dtype)
    full = EmbeddingBagCollection(COLLECTION_TABLES, optimizer=FusedRowWiseAdagrad(lr=0.1))
    with torch.no_grad():
        full.weight.copy_(half.weight.float())
    kjt = _random_kjt(batch=8, seed=3)
    grad_out = torch.randn(8, 32)
    half(kjt, concat=True).backward(grad_out)
    full(kjt, concat=True).backward(grad_out)
    torch.testing.assert_close(half.weight.float(), full.weight.to(dtype).float(), rtol=0, atol=0)


# ---- CUDA kernels against the CPU kernels (which the tests above check against the reference) ----


@CUDA
@pytest.mark.parametrize("case", range(len(CASES)))
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("index_dtype", [torch.int64, torch.int32])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_cuda_forward_and_sparse_gradient_match_cpu(case, weighted, index_dtype, dtype):
    tables, feature_tables, batch, max_len = CASES[case]
    layout, elements, _ = make_layout(tables)
    weights = _weights(0, elements, False, dtype)
    ft = list(feature_tables)
    indices, offsets, psw = make_batch(tables, feature_tables, batch, max_len, seed=case, index_dtype=index_dtype,
                                       weighted=weighted)
    cuda = [t.cuda() if t is not None else None for t in (weights, indices, offsets, psw)]
    out = torch.ops.fastrec.embedding_bag_forward(weights, layout, ft, indices, offsets, psw)
    out_cuda = torch.ops.fastrec.embedding_bag_forward(cuda[0], layout, ft, *cuda[1:])
    torch.testing.assert_close(out_cuda.cpu(), out, rtol=1e-5, atol=1e-5)
    grad_out = torch.randn_like(out)
    rows, values = torch.ops.fastrec.embedding_bag_backward_sparse(grad_out, layout, ft, indices, offsets, psw)
    rows_cuda, values_cuda = torch.ops.fastrec.embedding_bag_backward_sparse(grad_out.cuda(), layout, ft, *cuda[1:])
    torch.testing.assert_close(rows_cuda.cpu(), rows)
    torch.testing.assert_close(values_cuda.cpu(), values, rtol=1e-5, atol=1e-5)


@CUDA
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("optimizer", [*OPTIMIZERS, FusedRowWiseAdagrad(lr=0.1, weight_decay=0.01)], ids=repr)
def test_cuda_fused_optimizer_steps_match_cpu(optimizer, dtype):
    torch.manual_seed(0)
    cpu = EmbeddingBagCollection(COLLECTION_TABLES, optimizer=copy.deepcopy(optimizer), dtype=dtype)
    gpu = copy.deepcopy(cpu).cuda()
    for step in range(1, 4):
        kjt = _random_kjt(batch=64, seed=step)
        kjt_cuda = KeyedJagged(kjt.keys, kjt.values.cuda(), offsets=kjt.offsets.cuda(), weights=kjt.weights.cuda())
        grad_out = torch.randn(64, 32)
        cpu(kjt, concat=True).backward(grad_out)
        gpu(kjt_cuda, concat=True).backward(grad_out.cuda())
    tolerance = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    for name, value in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[name].cpu(), value, **tolerance)


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages of the mapping of this process that contains ``address``."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and not head.endswith(":"):
                start, end = (int(x, 16) for x in head.split("-"))
                inside = start <= address < end
            elif inside and head == "AnonHugePages:":
                return int(line.split()[1])
    raise AssertionError(f"no mapping holds address {address:#x}")


@pytest.mark.skipif(system_setting() == "never", reason="no transparent huge pages on this system")
def test_large_tables_and_their_optimizer_state_are_backed_by_huge_pages(monkeypatch):
    tables = [TableConfig("big", 1 << 20, 16), TableConfig("small", 10, 16)]  # 64 MiB + 640 bytes
    ebc = EmbeddingBagCollection(tables, optimizer=FusedAdam(lr=0.01))
    for buffer in (ebc.weight, ebc.optimizer_state1, ebc.optimizer_state2):
        assert _anon_huge_kib(buffer.data_ptr() + buffer.numel() * buffer.element_size() // 2) > 0
    bound = 1.0 / 1024  # TorchRec's init is unchanged: uniform in +-sqrt(1 / num_embeddings)
    assert ebc.table_weight("big").abs().max() <= bound and ebc.table_weight("big").std() > bound / 3
    assert ebc.optimizer_state1.abs().max() == 0 and ebc.optimizer_state2.abs().max() == 0
    bag = EmbeddingBag(1 << 20, 16, mode="sum")
    assert _anon_huge_kib(bag.weight.data_ptr() + (1 << 25)) > 0
    assert huge_pages_status().startswith("on for tables")  # what `fastrec info` prints
    monkeypatch.setenv("FASTREC_HUGE_PAGES", "0")
    assert huge_pages_status() == "off (FASTREC_HUGE_PAGES=0)"
    if system_setting() == "madvise":  # with "always" the kernel uses huge pages without being asked
        plain = EmbeddingBagCollection(tables)
        assert _anon_huge_kib(plain.weight.data_ptr() + (1 << 25)) == 0
