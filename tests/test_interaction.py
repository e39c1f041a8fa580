"""The interaction ops and modules beyond the FM (CIN, FFM, DLRM dot, DCN-v2 cross, sparse-input FM): values and
gradients against the plain-torch references and against brute-force definitions, the published implementations
(pytorch-fm, DeepCTR-Torch) where installed, opcheck, gradcheck, torch.compile and bad input."""

from __future__ import annotations

import itertools

import pytest
import torch

import fastrec
from fastrec import ops
from fastrec.ops import reference

from conftest import DEVICES

TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=1e-4, atol=1e-4)}


def _randn(*shape, dtype=torch.float64, device="cpu", seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype).to(device)


def _assert_same_values_and_grads(fn, expected_fn, inputs, tol):
    """fn(*inputs) against expected_fn(*inputs): values, then gradients of every floating input for one random
    cotangent."""
    inputs = [t.detach().requires_grad_() if isinstance(t, torch.Tensor) and t.is_floating_point() else t
              for t in inputs]
    out, expected = fn(*inputs), expected_fn(*inputs)
    torch.testing.assert_close(out, expected, **tol)
    differentiable = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
    if out.numel() == 0 or not differentiable:
        return
    grad_out = _randn(*out.shape, dtype=out.dtype, device=out.device, seed=7)
    grads = torch.autograd.grad(out, differentiable, grad_out, allow_unused=True)
    expected_grads = torch.autograd.grad(expected, differentiable, grad_out, allow_unused=True)
    for got, want in zip(grads, expected_grads):
        if got is None or want is None:
            assert got is None and want is None or (got if want is None else want).abs().max() == 0
            continue
        torch.testing.assert_close(got.to_dense(), want.to_dense(), **tol)


# ------------------------------------------------------------------------------------------------------------- CIN


def cin_brute_force(x, weights, biases, split_half, activation):
    """CIN from its definition, one output element at a time, in float64."""
    act = reference.ACTIVATIONS[activation]
    batch, fields, dim = x.shape
    x = x.double()
    hidden, pooled = x, []
    for k, (w, b) in enumerate(zip(weights, biases)):
        w = w.double()
        out = torch.zeros(batch, w.shape[0], dim, dtype=torch.float64)
        for h, i, j in itertools.product(range(w.shape[0]), range(w.shape[1]), range(fields)):
            out[:, h] += w[h, i, j] * hidden[:, i] * x[:, j]
        out = act(out + b.double()[:, None])
        if split_half and k < len(weights) - 1:
            hidden, out = out[:, : out.shape[1] // 2], out[:, out.shape[1] // 2 :]
        else:
            hidden = out
        pooled.append(out.sum(2))
    return torch.cat(pooled, 1)


CIN_CONFIGS = [  # (batch, fields, dim, layer_sizes, split_half, activation)
    (5, 4, 3, (6, 4), True, "relu"),
    (3, 3, 1, (2,), True, "identity"),
    (4, 5, 7, (3, 5, 2), False, "sigmoid"),
    (2, 2, 5, (4, 4, 3), True, "tanh"),
    (0, 4, 3, (6, 4), True, "relu"),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("config", CIN_CONFIGS, ids=str)
def test_cin_matches_definition_and_reference(config, device):
    batch, fields, dim, sizes, split_half, activation = config
    torch.manual_seed(0)
    cin = fastrec.nn.CIN(fields, dim, sizes, split_half, activation).double()
    with torch.no_grad():  # spread the biases so that relu cuts some maps and not others
        for b in cin.biases:
            b.normal_()
    x = _randn(batch, fields, dim)
    expected = cin_brute_force(x, cin.weights, cin.biases, split_half, activation)
    cin.to(device)
    x = x.to(device)
    assert cin(x).shape == (batch, cin.output_dim)
    torch.testing.assert_close(cin(x).cpu(), expected)
    params = list(cin.weights) + list(cin.biases)
    _assert_same_values_and_grads(
        lambda x, *p: torch.func.functional_call(cin, dict(zip(_cin_names(cin), p)), (x,)),
        lambda x, *p: reference.cin(x, p[: len(sizes)], p[len(sizes) :], split_half, activation),
        [x, *params],
        TOLERANCES[torch.float64],
    )


def _cin_names(cin):
    return [name for name, _ in cin.named_parameters() if name.startswith("weights")] + [
        name for name, _ in cin.named_parameters() if name.startswith("biases")
    ]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_cin_layer_matches_reference(device, dtype):
    for batch, dim, hidden_in, fields, hidden_out, with_bias, activation in [
        (4, 3, 5, 6, 7, True, "relu"),
        (9, 16, 39, 39, 12, True, "relu"),
        (3, 1, 1, 1, 1, False, "tanh"),
        (2, 5, 8, 3, 33, True, "sigmoid"),
        (0, 4, 3, 2, 5, True, "identity"),
    ]:
        x_prev = _randn(batch, dim, hidden_in, dtype=dtype, device=device, seed=1)
        x0 = _randn(batch, dim, fields, dtype=dtype, device=device, seed=2)
        weight = _randn(hidden_out, hidden_in, fields, dtype=dtype, device=device, seed=3) * 0.3
        bias = _randn(hidden_out, dtype=dtype, device=device, seed=4) if with_bias else None
        _assert_same_values_and_grads(
            lambda *t: ops.cin_layer(*t, activation),
            lambda *t: reference.cin_layer(*t, activation),
            [x_prev, x0, weight, bias],
            TOLERANCES[dtype],
        )
        # the first layer (x_prev = x0, symmetric): its packed weights and their gradients
        weight = _randn(hidden_out, fields, fields, dtype=dtype, device=device, seed=5) * 0.3
        _assert_same_values_and_grads(
            lambda *t: ops.cin_layer(None, *t, activation),
            lambda *t: reference.cin_layer(None, *t, activation),
            [x0, weight, bias],
            TOLERANCES[dtype],
        )


def test_cin_matches_pytorch_fm_both_ways():
    torchfm_layer = pytest.importorskip("torchfm.layer")
    torch.manual_seed(0)
    x = torch.randn(6, 5, 4, dtype=torch.float64)
    for sizes, split_half in [((6, 4), True), ((4, 6, 3), True), ((3, 5), False)]:
        theirs = torchfm_layer.CompressedInteractionNetwork(5, sizes, split_half).double()
        ours = fastrec.nn.CIN(5, 4, sizes, split_half).double()
        ours.load_torchfm_weights([(c.weight, c.bias) for c in theirs.conv_layers])
        torch.testing.assert_close(theirs.fc(ours(x)), theirs(x))
        # and back: weights taken from fastrec give pytorch-fm the same function
        fresh = fastrec.nn.CIN(5, 4, sizes, split_half).double()
        for conv, (w, b) in zip(theirs.conv_layers, fresh.torchfm_weights()):
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
        torch.testing.assert_close(theirs.fc(fresh(x)), theirs(x))


def test_cin_matches_deepctr_torch():
    interaction = pytest.importorskip("deepctr_torch.layers.interaction")
    torch.manual_seed(0)
    x = torch.randn(6, 5, 4, dtype=torch.float64)
    theirs = interaction.CIN(5, (6, 4), "relu", split_half=True).double()
    ours = fastrec.nn.CIN(5, 4, (6, 4)).double()
    with torch.no_grad():  # the same layout: DeepCTR's channel i * F + j is weight[h, i, j]
        for conv, w, b in zip(theirs.conv1ds, ours.weights, ours.biases):
            conv.weight.copy_(w.reshape(w.shape[0], -1, 1))
            conv.bias.copy_(b)
    torch.testing.assert_close(ours(x), theirs(x))


def test_cin_module_attributes():
    assert fastrec.nn.CIN(39, 16).output_dim == 64 + 128
    assert fastrec.nn.CIN(39, 16, (100, 50, 7), split_half=False).output_dim == 157
    assert fastrec.nn.CIN(3, 2, (5,)).output_dim == 5  # the last layer never splits
    assert "output_dim=192" in repr(fastrec.nn.CIN(39, 16))


# ------------------------------------------------------------------------------------------------------------- FFM


def ffm_brute_force(x, values):
    batch, fields = x.shape[:2]
    v = torch.ones(batch, fields, dtype=x.dtype) if values is None else values
    return torch.stack([
        sum((x[b, i, j] * x[b, j, i]).sum() * v[b, i] * v[b, j] for i in range(fields) for j in range(i + 1, fields))
        if fields > 1 else torch.zeros((), dtype=x.dtype)
        for b in range(batch)
    ]) if batch else x.new_zeros(0)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_ffm_matches_reference(device, dtype):
    for (batch, fields, dim), with_values, reduce in itertools.product(
        [(4, 5, 3), (7, 39, 4), (3, 1, 4), (2, 2, 1), (0, 3, 2), (5, 6, 33)], (False, True), (True, False)
    ):
        x = _randn(batch, fields, fields, dim, dtype=dtype, device=device, seed=fields)
        values = _randn(batch, fields, dtype=dtype, device=device, seed=3) if with_values else None
        _assert_same_values_and_grads(
            lambda x, v: ops.ffm_interaction(x, v, reduce),
            lambda x, v: reference.ffm_interaction(x, v, reduce),
            [x, values],
            TOLERANCES[dtype],
        )


def test_ffm_matches_definition_and_module_layouts():
    x = _randn(3, 4, 4, 5)
    values = _randn(3, 4, seed=1)
    torch.testing.assert_close(ops.ffm_interaction(x, values), ffm_brute_force(x, values))
    module = fastrec.nn.FFMInteraction(4)
    torch.testing.assert_close(module(x.reshape(3, 4, 20)), module(x))  # the embedding collection's [B, F, F*K]
    assert fastrec.nn.FFMInteraction(4, keepdim=True)(x).shape == (3, 1)
    pairs = fastrec.nn.FFMInteraction(4, reduce=False)
    assert pairs(x).shape == (3, pairs.output_dim) == (3, 6)
    torch.testing.assert_close(pairs(x)[:, 1], (x[:, 0, 2] * x[:, 2, 0]).sum(1))  # pair (0, 2) is second


def test_ffm_matches_pytorch_fm():
    torchfm_layer = pytest.importorskip("torchfm.layer")
    field_dims = [3, 4, 2]
    theirs = torchfm_layer.FieldAwareFactorizationMachine(field_dims, 5).double()
    ids = torch.tensor([[0, 1, 1], [2, 3, 0], [1, 0, 1]])
    offsets = torch.tensor([0, 3, 7])
    # pytorch-fm: table j holds every feature's vector for field j; x[b, i, j] = table_j[feature of field i]
    x = torch.stack([t(ids + offsets) for t in theirs.embeddings], dim=2)
    torch.testing.assert_close(ops.ffm_interaction(x), theirs(ids).sum((1, 2)))


# -------------------------------------------------------------------------------------------------------- DLRM dot


def dot_brute_force(dense, sparse, self_interaction, concat_dense):
    t = torch.cat([dense.unsqueeze(1), sparse], 1)
    cols = [(t[:, i] * t[:, j]).sum(1) for i in range(t.shape[1]) for j in range(i + (1 if self_interaction else 0))]
    out = torch.stack(cols, 1) if cols else dense.new_zeros(dense.shape[0], 0)
    return torch.cat([dense, out], 1) if concat_dense else out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_dot_interaction_matches_reference(device, dtype):
    for (batch, num_sparse, dim), self_interaction, concat_dense in itertools.product(
        [(4, 5, 3), (6, 26, 16), (3, 0, 4), (2, 1, 1), (0, 3, 2), (5, 8, 65)], (False, True), (True, False)
    ):
        dense = _randn(batch, dim, dtype=dtype, device=device, seed=1)
        sparse = _randn(batch, num_sparse, dim, dtype=dtype, device=device, seed=2)
        _assert_same_values_and_grads(
            lambda d, s: ops.dot_interaction(d, s, self_interaction, concat_dense),
            lambda d, s: reference.dot_interaction(d, s, self_interaction, concat_dense),
            [dense, sparse],
            TOLERANCES[dtype],
        )


@pytest.mark.parametrize("self_interaction, concat_dense", list(itertools.product((False, True), (True, False))))
def test_dot_interaction_matches_definition(self_interaction, concat_dense):
    dense, sparse = _randn(3, 4), _randn(3, 5, 4, seed=1)
    module = fastrec.nn.DotInteraction(self_interaction, concat_dense)
    out = module(dense, sparse)
    torch.testing.assert_close(out, dot_brute_force(dense, sparse, self_interaction, concat_dense))
    assert out.shape == (3, module.output_dim(5, 4))


# ------------------------------------------------------------------------------------------------------- CrossNetV2


def test_crossnet_v2_full_and_low_rank_match_the_formula():
    torch.manual_seed(0)
    x = torch.randn(7, 6, dtype=torch.float64)
    full = fastrec.nn.CrossNetV2(6, 3).double()
    with torch.no_grad():
        full.bias.normal_()
    xl = x
    for layer in range(3):
        xl = x * (xl @ full.kernels[layer].t() + full.bias[layer]) + xl
    torch.testing.assert_close(full(x), xl)
    low = fastrec.nn.CrossNetV2(6, 2, low_rank=2).double()
    xl = x
    for layer in range(2):
        xl = x * (xl @ (low.U[layer] @ low.V[layer].t()).t() + low.bias[layer]) + xl
    torch.testing.assert_close(low(x), xl)
    assert fastrec.nn.CrossNetV2(6, 0)(x) is x


def test_crossnet_v2_matches_deepctr_torch():
    interaction = pytest.importorskip("deepctr_torch.layers.interaction")
    torch.manual_seed(0)
    x = torch.randn(7, 6, dtype=torch.float64)
    ours = fastrec.nn.CrossNetV2(6, 2).double()
    theirs = interaction.CrossNet(6, layer_num=2, parameterization="matrix").double()
    with torch.no_grad():
        ours.bias.normal_()
        theirs.kernels.copy_(ours.kernels)
        theirs.bias.copy_(ours.bias.unsqueeze(2))
    torch.testing.assert_close(ours(x), theirs(x))
    mix = fastrec.nn.CrossNetV2(6, 2, low_rank=3, num_experts=4).double()
    theirs = interaction.CrossNetMix(6, low_rank=3, num_experts=4, layer_num=2).double()
    with torch.no_grad():
        mix.bias.normal_()
        theirs.U_list.copy_(mix.U)
        theirs.V_list.copy_(mix.V)
        theirs.C_list.copy_(mix.C)
        theirs.bias.copy_(mix.bias.unsqueeze(2))
        for gate, row in zip(theirs.gating, mix.gates):
            gate.weight.copy_(row.unsqueeze(0))
    torch.testing.assert_close(mix(x), theirs(x))


# ------------------------------------------------------------------------------------------------------- sparse FM


def make_csr(batch, num_features, max_nnz, dtype=torch.float64, seed=0, index_dtype=torch.int64):
    gen = torch.Generator().manual_seed(seed)
    counts = torch.randint(0, max_nnz + 1, (batch,), generator=gen)
    offsets = torch.zeros(batch + 1, dtype=index_dtype)
    offsets[1:] = counts.cumsum(0)
    cols = torch.cat([torch.randperm(num_features, generator=gen)[:c] for c in counts.tolist()] or [torch.zeros(0)])
    values = torch.rand(int(counts.sum()), generator=gen, dtype=dtype) + 0.5
    return values, cols.to(index_dtype), offsets


def dense_fm(values, cols, offsets, w0, w, v):
    """The FM on the densified batch: w0 + X w + 0.5 * sum_k((X V)^2 - X^2 V^2)."""
    batch = offsets.numel() - 1
    rows = torch.repeat_interleave(torch.arange(batch), (offsets[1:] - offsets[:-1]).long())
    x = torch.zeros(batch, w.shape[0], dtype=values.dtype).index_put((rows, cols.long()), values, accumulate=True)
    return w0 + x @ w + 0.5 * ((x @ v) ** 2 - (x * x) @ (v * v)).sum(1)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparse_fm_matches_dense_fm(device, dtype):
    for batch, num_features, max_nnz, k in [(8, 20, 6, 4), (5, 3, 3, 1), (0, 4, 2, 3), (6, 50, 0, 2), (17, 9, 9, 16)]:
        values, cols, offsets = make_csr(batch, num_features, max_nnz, dtype)
        w0, w, v = _randn(1, dtype=dtype), _randn(num_features, dtype=dtype, seed=1), _randn(num_features, k,
                                                                                              dtype=dtype, seed=2)
        on = [t.to(device) for t in (values, cols, offsets)]
        # The parameters live on the device: their row-sparse gradients cannot flow back through a .to() copy.
        _assert_same_values_and_grads(
            lambda w0, w, v: ops.sparse_fm(*on, w0, w, v),
            lambda w0, w, v: dense_fm(values, cols, offsets, w0.cpu(), w.cpu(), v.cpu()).to(device),
            [w0.to(device), w.to(device), v.to(device)],
            TOLERANCES[dtype],
        )


def test_sparse_fm_gradients_are_row_sparse():
    values, cols, offsets = make_csr(6, 1000, 4)
    w0, w, v = torch.zeros(1, requires_grad=True), torch.randn(1000, requires_grad=True), torch.randn(1000, 8,
                                                                                                      requires_grad=True)
    ops.sparse_fm(values.float(), cols, offsets, w0, w, v).sum().backward()
    assert w.grad.is_sparse and v.grad.is_sparse
    touched = set(cols.tolist())
    assert set(v.grad.coalesce().indices()[0].tolist()) == touched


# ------------------------------------------------------------------------------------ opcheck, gradcheck, compile


def _opcheck_cases():
    x0, x_prev = _randn(3, 4, 5, seed=1), _randn(3, 4, 6, seed=2)
    w_first, w_next, bias = _randn(7, 5, 5, seed=3), _randn(7, 6, 5, seed=4), _randn(7, seed=5)
    values, cols, offsets = make_csr(5, 9, 4)
    w0, w, v = _randn(1, seed=6), _randn(9, seed=7), _randn(9, 3, seed=8)
    ffm_x, ffm_values = _randn(3, 4, 4, 2, seed=9), _randn(3, 4, seed=10)
    dense, sparse = _randn(3, 5, seed=11), _randn(3, 4, 5, seed=12)
    return {
        "cin_first": ("cin_layer", (None, x0, w_first, bias, "relu")),
        "cin_next": ("cin_layer", (x_prev, x0, w_next, None, "tanh")),
        "ffm": ("ffm_interaction", (ffm_x, ffm_values, True)),
        "ffm_pairs": ("ffm_interaction", (ffm_x, None, False)),
        "dot": ("dot_interaction", (dense, sparse, False, True)),
        "dot_self": ("dot_interaction", (dense, sparse, True, False)),
        "sparse_fm": ("sparse_fm", (values, cols, offsets, w0, w, v)),
    }


OPCHECK_CASES = _opcheck_cases()


@pytest.mark.parametrize("case", list(OPCHECK_CASES))
def test_opcheck(case):
    name, args = OPCHECK_CASES[case]
    args = tuple(a.detach().requires_grad_() if isinstance(a, torch.Tensor) and a.is_floating_point() else a
                 for a in args)
    torch.library.opcheck(getattr(torch.ops.fastrec, name).default, args)


def test_opcheck_backward_ops():
    x0, bias = _randn(3, 4, 5, seed=1), _randn(7, seed=5)
    weight = _randn(7, 5, 5, seed=3)
    out = ops.cin_layer(None, x0, weight, bias)
    torch.library.opcheck(torch.ops.fastrec.cin_layer_backward.default,
                          (torch.randn_like(out), out, None, x0, weight, True, "relu"))
    x = _randn(3, 4, 4, 2)
    torch.library.opcheck(torch.ops.fastrec.ffm_interaction_backward.default, (_randn(3, 6), x, None, False))
    dense, sparse = _randn(3, 5), _randn(3, 4, 5)
    torch.library.opcheck(torch.ops.fastrec.dot_interaction_backward.default, (_randn(3, 15), dense, sparse, False,
                                                                                True))


def test_gradcheck():
    x0, x_prev = _randn(2, 3, 4, seed=1).requires_grad_(), _randn(2, 3, 5, seed=2).requires_grad_()
    w_first, w_next = _randn(3, 4, 4, seed=3).requires_grad_(), _randn(3, 5, 4, seed=4).requires_grad_()
    bias = _randn(3, seed=5).requires_grad_()
    for activation in ("sigmoid", "tanh", "identity"):
        assert torch.autograd.gradcheck(lambda *t: ops.cin_layer(None, *t, activation), (x0, w_first, bias))
        assert torch.autograd.gradcheck(lambda *t: ops.cin_layer(*t, activation), (x_prev, x0, w_next, bias))
    x, values = _randn(2, 4, 4, 3).requires_grad_(), _randn(2, 4, seed=1).requires_grad_()
    for reduce in (True, False):
        assert torch.autograd.gradcheck(lambda a, b: ops.ffm_interaction(a, b, reduce), (x, values))
    dense, sparse = _randn(2, 3).requires_grad_(), _randn(2, 4, 3, seed=1).requires_grad_()
    for flags in itertools.product((False, True), (False, True)):
        assert torch.autograd.gradcheck(lambda a, b: ops.dot_interaction(a, b, *flags), (dense, sparse))
    csr = make_csr(4, 6, 3)
    w0, w, v = _randn(1).requires_grad_(), _randn(6, seed=1).requires_grad_(), _randn(6, 2, seed=2).requires_grad_()
    dense = ops.with_dense_gradient  # gradcheck compares dense Jacobians
    assert torch.autograd.gradcheck(lambda w0, w, v: ops.sparse_fm(*csr, w0, dense(w), dense(v)), (w0, w, v))


class _Head(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.cin = fastrec.nn.CIN(4, 3, (4, 2))
        self.ffm = fastrec.nn.FFMInteraction(4)
        self.dot = fastrec.nn.DotInteraction()

    def forward(self, x, ffm_x, dense):
        return self.cin(x).sum(1) + self.ffm(ffm_x) + self.dot(dense, x).sum(1)


def test_torch_compile_fullgraph():
    torch.manual_seed(0)
    model = _Head()
    compiled = torch.compile(model, fullgraph=True)
    inputs = (torch.randn(5, 4, 3, requires_grad=True), torch.randn(5, 4, 4, 2), torch.randn(5, 3))
    torch.testing.assert_close(compiled(*inputs), model(*inputs))
    (grad,) = torch.autograd.grad(compiled(*inputs).sum(), inputs[0])
    (expected,) = torch.autograd.grad(model(*inputs).sum(), inputs[0])
    torch.testing.assert_close(grad, expected)


def test_raw_ops_check_their_arguments():
    with pytest.raises(ValueError, match="weight must have shape"):
        torch.ops.fastrec.cin_layer(None, torch.randn(2, 3, 4), torch.randn(5, 3, 4), None, "relu")
    with pytest.raises(ValueError, match="activation must be one of"):
        torch.ops.fastrec.cin_layer(None, torch.randn(2, 3, 4), torch.randn(5, 4, 4), None, "gelu")
    with pytest.raises(ValueError, match="x must be"):
        torch.ops.fastrec.ffm_interaction(torch.randn(2, 3, 4, 5), None, True)
    with pytest.raises(ValueError, match="sparse must have shape"):
        torch.ops.fastrec.dot_interaction(torch.randn(2, 4), torch.randn(2, 3, 5), False, True)
    args = _sparse_fm_args()
    with pytest.raises(IndexError, match="col_indices holds 7"):
        torch.ops.fastrec.sparse_fm(args["values"], torch.tensor([0, 7, 1, 2]), args["row_offsets"], args["w0"],
                                    args["w"], args["V"])
    with pytest.raises(ValueError, match="non-decreasing"):
        torch.ops.fastrec.sparse_fm(args["values"], args["col_indices"], torch.tensor([0, 3, 2, 4]), args["w0"],
                                    args["w"], args["V"])


# ------------------------------------------------------------------------------------------------------- bad input

BAD_INPUTS = [
    (lambda: ops.cin_layer(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(6, 4, 4)), ValueError,
     r"weight must have shape \[hidden_out, hidden_in=4, num_fields=5\]"),
    (lambda: ops.cin_layer(torch.randn(2, 3, 4), torch.randn(2, 2, 5), torch.randn(6, 4, 5)), ValueError,
     r"x_prev must be \[batch, embed_dim, hidden_in\] with \[batch, embed_dim\] = \[2, 2\]"),
    (lambda: ops.cin_layer(torch.randn(2, 3, 4), torch.randn(2, 3, 5).int(), torch.randn(6, 4, 5)), TypeError,
     "x0 must be float32 or float64"),
    (lambda: ops.cin_layer(torch.randn(2, 3, 4).double(), torch.randn(2, 3, 5), torch.randn(6, 4, 5)), TypeError,
     "x_prev dtype torch.float64 must match torch.float32"),
    (lambda: ops.cin_layer(None, torch.randn(2, 3, 5), torch.randn(6, 4, 5)), ValueError, "hidden_in=5"),
    (lambda: ops.cin_layer(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(6, 4, 5), None, "gelu"), ValueError,
     "activation must be one of"),
    (lambda: fastrec.nn.CIN(4, 3, (5, 4)), ValueError, "must be even"),
    (lambda: fastrec.nn.CIN(4, 3)(torch.randn(2, 5, 3)), ValueError, r"num_fields=4"),
    (lambda: fastrec.nn.CIN(4, 3)(torch.randn(2, 4, 3).half()), TypeError, "float32 or float64"),
    (lambda: ops.ffm_interaction(torch.randn(2, 3, 4, 5)), ValueError, "mismatched field counts 3 and 4"),
    (lambda: ops.ffm_interaction(torch.randn(2, 3, 3, 5).half()), TypeError, "x must be float32 or float64"),
    (lambda: ops.ffm_interaction(torch.randn(2, 3, 3, 5), torch.rand(2, 4)), ValueError, "values must have shape"),
    (lambda: fastrec.nn.FFMInteraction(4)(torch.randn(2, 3, 3, 5)), ValueError, "num_fields=4"),
    (lambda: ops.dot_interaction(torch.randn(2, 4), torch.randn(2, 3, 5)), ValueError, r"dim=4"),
    (lambda: ops.dot_interaction(torch.randn(2, 4), torch.randn(3, 3, 4)), ValueError, r"batch=2"),
    (lambda: ops.dot_interaction(torch.randn(2, 4).int(), torch.randn(2, 3, 4)), TypeError, "dense must be float"),
    (lambda: fastrec.nn.CrossNetV2(4, 2, num_experts=3), ValueError, "needs low_rank"),
    (lambda: fastrec.nn.CrossNetV2(4, 2)(torch.randn(3, 5)), ValueError, "input_dim=4"),
]


def _sparse_fm_args(**changes):
    args = dict(values=torch.rand(4), col_indices=torch.tensor([0, 2, 1, 2]), row_offsets=torch.tensor([0, 2, 4]),
                w0=torch.zeros(1), w=torch.randn(3), V=torch.randn(3, 2))
    args.update(changes)
    return args


BAD_INPUTS += [
    (lambda: ops.sparse_fm(**_sparse_fm_args(row_offsets=torch.tensor([0, 3, 2, 4]))), ValueError, "non-decreasing"),
    (lambda: ops.sparse_fm(**_sparse_fm_args(row_offsets=torch.tensor([0, 2, 3]))), ValueError, "end at nnz=4"),
    (lambda: ops.sparse_fm(**_sparse_fm_args(col_indices=torch.tensor([0, 2, 3, 2]))), IndexError,
     "col_indices holds 3, out of range for 3 features"),
    (lambda: ops.sparse_fm(**_sparse_fm_args(col_indices=torch.tensor([0, -1, 1, 2]))), IndexError, "holds -1"),
    (lambda: ops.sparse_fm(**_sparse_fm_args(col_indices=torch.tensor([0.0, 1, 1, 2]))), TypeError,
     "col_indices must be int32 or int64"),
    (lambda: ops.sparse_fm(**_sparse_fm_args(w=torch.randn(4))), ValueError, "disagree: 4 vs 3"),
    (lambda: ops.sparse_fm(**_sparse_fm_args(V=torch.randn(3, 2).double())), TypeError, "V dtype"),
]


@pytest.mark.parametrize("make, error, message", BAD_INPUTS)
def test_bad_input_raises_clear_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()
