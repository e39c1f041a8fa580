"""Benchmark cases of the interaction ops beyond the FM (CIN, FFM, DLRM dot, sparse-input FM, DCN-v2 cross): each
fastrec op or module against its plain-torch reference and, where they install, the published implementations
(pytorch-fm as ``torchfm``, DeepCTR-Torch), on the same inputs and weights. Used by `fastrec bench` and by
benchmarks/test_interaction.py."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

import fastrec
from fastrec import ops
from fastrec.ops import reference

__all__ = ["cin_cases", "crossnet_cases", "dot_cases", "ffm_cases", "forward_backward", "sparse_fm_cases"]

# (mode, shape, fastrec callable, {baseline name: callable})
BenchCase = tuple[str, str, Callable[[], object], dict[str, Callable[[], object]]]


def forward_backward(fn: Callable[..., Tensor], inputs: list[Tensor]) -> Callable[[], object]:
    """A callable running fn(*inputs) and its backward to ``inputs`` for a fixed random cotangent."""
    grad_out = torch.randn_like(fn(*inputs))

    def run() -> object:
        # autograd.grad rather than .backward(): no accumulation into .grad inflates the time
        return torch.autograd.grad(fn(*inputs), inputs, grad_out)

    return run


def _forward(fn: Callable[..., Tensor], inputs: list[Tensor]) -> Callable[[], object]:
    def run() -> object:
        with torch.no_grad():
            return fn(*inputs)

    return run


def _both_modes(
    shape: str, impls: dict[str, Callable[..., Tensor]], inputs: list[Tensor],
    own_inputs: dict[str, list[Tensor]] | None = None,
) -> Iterator[BenchCase]:
    """Forward and forward+backward cases; ``own_inputs`` names the implementations that differentiate tensors of
    their own (a peer's module with its own parameters) instead of ``inputs``."""
    own_inputs = own_inputs or {}
    for mode, wrap in (("fwd", _forward), ("fwd+bwd", forward_backward)):
        calls = {name: wrap(fn, own_inputs.get(name, inputs)) for name, fn in impls.items()}
        yield mode, shape, calls.pop("fastrec"), calls


def _peer(module_name: str):
    """The peer's module, or None when it is not installed (DeepCTR-Torch prints a version check on import)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(ImportError):
        return __import__(module_name, fromlist=["_"])
    return None


def cin_cases(batch: int = 4096, fields: int = 39, dim: int = 16, layers: tuple[int, ...] = (128, 128)
              ) -> Iterator[BenchCase]:
    """xDeepFM's CIN: the fused layers vs the reference that builds Z (as pytorch-fm and DeepCTR do), and the two
    peers' modules with the same weights."""
    torch.manual_seed(0)
    cin = fastrec.nn.CIN(fields, dim, layers)
    x = torch.randn(batch, fields, dim, requires_grad=True)
    params = [x, *cin.weights, *cin.biases]
    n = len(layers)
    impls: dict[str, Callable[..., Tensor]] = {
        "fastrec": lambda x, *p: torch.func.functional_call(cin, dict(zip(_cin_names(cin), p)), (x,)),
        "torch reference": lambda x, *p: reference.cin(x, p[:n], p[n:]),
    }
    own: dict[str, list[Tensor]] = {}
    torchfm_layer = _peer("torchfm.layer")
    if torchfm_layer is not None:
        theirs = torchfm_layer.CompressedInteractionNetwork(fields, layers, split_half=True)
        for conv, (w, b) in zip(theirs.conv_layers, cin.torchfm_weights()):
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
        impls["pytorch-fm"] = lambda x, *p: theirs(x)
        own["pytorch-fm"] = [x, *theirs.parameters()]
    deepctr = _peer("deepctr_torch.layers.interaction")
    if deepctr is not None:
        theirs_dc = deepctr.CIN(fields, layers, "relu", split_half=True)
        for conv, w, b in zip(theirs_dc.conv1ds, cin.weights, cin.biases):
            conv.weight.data.copy_(w.detach().reshape(w.shape[0], -1, 1))
            conv.bias.data.copy_(b.detach())
        impls["DeepCTR-Torch"] = lambda x, *p: theirs_dc(x)
        own["DeepCTR-Torch"] = [x, *theirs_dc.parameters()]
    yield from _both_modes(f"B={batch} F={fields} K={dim} H={layers}", impls, params, own)


def _cin_names(cin: fastrec.nn.CIN) -> list[str]:
    names = [name for name, _ in cin.named_parameters()]
    return [n for n in names if n.startswith("weights")] + [n for n in names if n.startswith("biases")]


def ffm_cases(batch: int = 4096, fields: int = 39, dim: int = 4, rows_per_field: int = 1000) -> Iterator[BenchCase]:
    """Field-aware FM including the lookup, the way users run it: fastrec = one table of dim F*K gathered to
    [B, F, F, K] + the fused pair kernel; reference = the same lookup + gathered pair products; pytorch-fm = its
    FieldAwareFactorizationMachine (F tables of dim K, F lookups, stacked pair products)."""
    torch.manual_seed(0)
    field_dims = [rows_per_field] * fields
    ids = torch.randint(0, rows_per_field, (batch, fields)) + torch.arange(fields) * rows_per_field
    table = torch.nn.Embedding(fields * rows_per_field, fields * dim)
    torch.nn.init.normal_(table.weight, std=0.01)

    def lookup(weight: Tensor) -> Tensor:
        return torch.nn.functional.embedding(ids, weight).view(batch, fields, fields, dim)

    impls: dict[str, Callable[..., Tensor]] = {
        "fastrec": lambda w: ops.ffm_interaction(lookup(w)),
        "torch reference": lambda w: reference.ffm_interaction(lookup(w)),
    }
    torchfm_layer = _peer("torchfm.layer")
    if torchfm_layer is not None:
        theirs = torchfm_layer.FieldAwareFactorizationMachine(field_dims, dim)
        for j, t in enumerate(theirs.embeddings):  # table j = every feature's vector for field j
            t.weight.data.copy_(table.weight.detach().view(-1, fields, dim)[:, j])
        local_ids = ids - torch.arange(fields) * rows_per_field
        impls["pytorch-fm"] = lambda *tables: theirs(local_ids).sum((1, 2))
        own = {"pytorch-fm": [t.weight for t in theirs.embeddings]}
    yield from _both_modes(f"B={batch} F={fields} K={dim}", impls, [table.weight], own if torchfm_layer else None)


def dot_cases(batch: int = 4096, num_sparse: int = 26, dim: int = 64) -> Iterator[BenchCase]:
    """DLRM's dot interaction: the fused triangle kernel vs the reference's bmm + triangle gather (DLRM's code)."""
    gen = torch.Generator().manual_seed(0)
    dense = torch.randn(batch, dim, generator=gen, requires_grad=True)
    sparse = torch.randn(batch, num_sparse, dim, generator=gen, requires_grad=True)
    impls = {"fastrec": ops.dot_interaction, "torch reference": reference.dot_interaction}
    yield from _both_modes(f"B={batch} S={num_sparse} D={dim}", impls, [dense, sparse])


def sparse_fm_cases(batch: int = 4096, num_features: int = 5382, nnz_per_row: int = 10, dim: int = 64
                    ) -> Iterator[BenchCase]:
    """libFM's model on a CSR batch (Frappe's shape: 10 one-hot features per row, 5382 features): the fused kernel
    (row-sparse gradients) vs the index_add reference and torch.sparse.mm on a CSR tensor (dense gradients)."""
    gen = torch.Generator().manual_seed(0)
    cols = torch.randint(0, num_features, (batch * nnz_per_row,), generator=gen)
    offsets = torch.arange(0, batch * nnz_per_row + 1, nnz_per_row)
    values = torch.ones(batch * nnz_per_row)
    csr = torch.sparse_csr_tensor(offsets, cols, values, (batch, num_features))
    csr_sq = torch.sparse_csr_tensor(offsets, cols, values * values, (batch, num_features))
    w0 = torch.zeros(1, requires_grad=True)
    w = (0.01 * torch.randn(num_features, generator=gen)).requires_grad_()
    v = (0.01 * torch.randn(num_features, dim, generator=gen)).requires_grad_()

    def sparse_mm(w0: Tensor, w: Tensor, v: Tensor) -> Tensor:
        xv = torch.sparse.mm(csr, v)
        linear = torch.sparse.mm(csr, w.unsqueeze(1)).squeeze(1)
        return w0 + linear + 0.5 * (xv * xv - torch.sparse.mm(csr_sq, v * v)).sum(1)

    impls = {
        "fastrec": lambda *p: ops.sparse_fm(values, cols, offsets, *p),
        "torch reference": lambda *p: reference.sparse_fm(values, cols, offsets, *p),
        "torch.sparse.mm": sparse_mm,
    }
    yield from _both_modes(f"B={batch} nnz/row={nnz_per_row} N={num_features} K={dim}", impls, [w0, w, v])


def crossnet_cases(batch: int = 4096, input_dim: int = 429, layers: int = 3) -> Iterator[BenchCase]:
    """DCN-v2's cross network (full rank and mixture of 4 rank-64 experts), plain torch, against DeepCTR-Torch's
    CrossNet / CrossNetMix with the same weights."""
    torch.manual_seed(0)
    x = torch.randn(batch, input_dim, requires_grad=True)
    deepctr = _peer("deepctr_torch.layers.interaction")
    for low_rank, experts in ((None, 1), (64, 4)):
        ours = fastrec.nn.CrossNetV2(input_dim, layers, low_rank=low_rank, num_experts=experts)
        impls: dict[str, Callable[..., Tensor]] = {"fastrec": ours}
        if deepctr is not None:
            if low_rank is None:
                theirs = deepctr.CrossNet(input_dim, layer_num=layers, parameterization="matrix")
                theirs.kernels.data.copy_(ours.kernels.detach())
            else:
                theirs = deepctr.CrossNetMix(input_dim, low_rank=low_rank, num_experts=experts, layer_num=layers)
                theirs.U_list.data.copy_(ours.U.detach())
                theirs.V_list.data.copy_(ours.V.detach())
                theirs.C_list.data.copy_(ours.C.detach())
                for gate, row in zip(theirs.gating, ours.gates.detach()):
                    gate.weight.data.copy_(row.unsqueeze(0))
            theirs.bias.data.copy_(ours.bias.detach().unsqueeze(2))
            impls["DeepCTR-Torch"] = theirs
        form = "full rank" if low_rank is None else f"{experts} experts rank {low_rank}"
        yield from _both_modes(f"B={batch} D={input_dim} L={layers} {form}", impls, [x])
