"""fastrec.ops.fm_interaction against its plain-torch reference and the definition (values and gradients),
opcheck, gradcheck, torch.compile, odd shapes and bad input."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fastrec
from fastrec.ops import fm_interaction, reference

from conftest import DEVICES

# float32 kernels accumulate in float32 in another order than the reference: relative error ~ F * eps32.
TOLERANCES = {torch.float64: dict(rtol=1e-10, atol=1e-10), torch.float32: dict(rtol=2e-5, atol=2e-4)}


def brute_force(emb: torch.Tensor, values: torch.Tensor | None, reduce: bool) -> torch.Tensor:
    """The FM term straight from its definition: sum over field pairs i < j of (v_i e_i) * (v_j e_j), in loops."""
    batch, fields, dim = emb.shape
    out = torch.zeros(batch, dim, dtype=torch.float64)
    for b, i, j in itertools.product(range(batch), range(fields), range(fields)):
        if i < j:
            vi = 1.0 if values is None else float(values[b, i])
            vj = 1.0 if values is None else float(values[b, j])
            out[b] += (vi * emb[b, i].double()) * (vj * emb[b, j].double())
    return out.sum(1) if reduce else out


def make_emb(shape, dtype, device, layout="contiguous", seed=0):
    """emb of the given logical shape, contiguous or laid out with other strides."""
    gen = torch.Generator().manual_seed(seed)
    batch, fields, dim = shape
    if layout == "contiguous":
        emb = torch.randn(batch, fields, dim, generator=gen, dtype=dtype)
    elif layout == "field_major":  # [F, B, K] storage viewed as [B, F, K]
        emb = torch.randn(fields, batch, dim, generator=gen, dtype=dtype).transpose(0, 1)
    elif layout == "strided_dim":  # last dim not unit-stride: the kernel makes it contiguous
        emb = torch.randn(batch, fields, 2 * dim, generator=gen, dtype=dtype)[..., ::2]
    elif layout == "dim_major":  # [K, F, B] storage
        emb = torch.randn(dim, fields, batch, generator=gen, dtype=dtype).permute(2, 1, 0)
    else:
        raise ValueError(layout)
    return emb.to(device)


def make_values(shape, dtype, device, seed=1, transposed=False):
    gen = torch.Generator().manual_seed(seed)
    batch, fields, _ = shape
    if transposed:
        return torch.rand(fields, batch, generator=gen, dtype=dtype).t().to(device)
    return torch.rand(batch, fields, generator=gen, dtype=dtype).to(device)


SHAPES = [(1, 2, 1), (5, 39, 16), (7, 13, 64), (3, 1, 8), (4, 6, 32), (0, 4, 8), (4, 0, 8), (6, 5, 0), (9, 7, 300), (33, 3, 17)]
LAYOUTS = ["contiguous", "field_major", "strided_dim", "dim_major"]


def sample_inputs(device, dtype):
    """(emb, values, reduce) triples covering odd shapes, layouts, field values and both reductions."""
    for shape, with_values, reduce in itertools.product(SHAPES, (False, True), (True, False)):
        yield make_emb(shape, dtype, device), make_values(shape, dtype, device) if with_values else None, reduce
    for layout, reduce in itertools.product(LAYOUTS[1:], (True, False)):
        shape = (11, 6, 12)
        yield make_emb(shape, dtype, device, layout), make_values(shape, dtype, device, transposed=True), reduce


def _ids(samples):
    return [f"{tuple(e.shape)}-values={v is not None}-reduce={r}-contig={e.is_contiguous()}" for e, v, r in samples]


CPU64 = list(sample_inputs("cpu", torch.float64))


def _check_against_reference(emb, values, reduce):
    tol = TOLERANCES[emb.dtype]
    emb = emb.detach().requires_grad_()
    values = values.detach().requires_grad_() if values is not None else None
    inputs = (emb,) if values is None else (emb, values)

    out = fm_interaction(emb, values, reduce)
    expected = reference.fm_interaction(emb, values, reduce)
    torch.testing.assert_close(out, expected, **tol)
    if out.numel() == 0:
        return
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad_out)
    expected_grads = torch.autograd.grad(expected, inputs, grad_out)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want, **tol)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_values_and_gradients_match_reference(device, dtype):
    for emb, values, reduce in sample_inputs(device, dtype):
        _check_against_reference(emb, values, reduce)


@pytest.mark.parametrize("with_values", [False, True])
@pytest.mark.parametrize("reduce", [True, False])
def test_matches_definition(with_values, reduce):
    shape = (4, 6, 5)
    emb = make_emb(shape, torch.float64, "cpu")
    values = make_values(shape, torch.float64, "cpu") if with_values else None
    torch.testing.assert_close(fm_interaction(emb, values, reduce), brute_force(emb, values, reduce))
    torch.testing.assert_close(reference.fm_interaction_pairwise(emb, values, reduce), brute_force(emb, values, reduce))


def test_float32_accuracy_against_float64_definition():
    shape = (64, 39, 16)
    emb = make_emb(shape, torch.float32, "cpu")
    exact = reference.fm_interaction(emb.double())
    torch.testing.assert_close(fm_interaction(emb).double(), exact, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("sample", CPU64[::3] + CPU64[-4:], ids=_ids(CPU64[::3] + CPU64[-4:]))
def test_opcheck(sample):
    emb, values, reduce = sample
    emb = emb.detach().requires_grad_()
    torch.library.opcheck(torch.ops.fastrec.fm_interaction.default, (emb, values, reduce))
    out = fm_interaction(emb, values, reduce)
    grad_out = torch.randn_like(out)
    torch.library.opcheck(torch.ops.fastrec.fm_interaction_backward.default, (grad_out, emb, values, reduce))


@pytest.mark.parametrize("reduce", [True, False])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_gradcheck(reduce, layout):
    shape = (3, 4, 5)
    emb = make_emb(shape, torch.float64, "cpu", layout).requires_grad_()
    values = make_values(shape, torch.float64, "cpu").requires_grad_()
    assert torch.autograd.gradcheck(lambda e, v: fm_interaction(e, v, reduce), (emb, values))
    assert torch.autograd.gradcheck(lambda e: fm_interaction(e, None, reduce), (emb,))


@pytest.mark.parametrize("reduce", [True, False])
def test_gradgradcheck(reduce):
    shape = (3, 4, 5)
    emb = make_emb(shape, torch.float64, "cpu").requires_grad_()
    values = make_values(shape, torch.float64, "cpu").requires_grad_()
    assert torch.autograd.gradgradcheck(lambda e, v: fm_interaction(e, v, reduce), (emb, values))
    assert torch.autograd.gradgradcheck(lambda e: fm_interaction(e, None, reduce), (emb,))


def test_gradient_only_for_values():
    shape = (5, 4, 3)
    emb = make_emb(shape, torch.float64, "cpu")
    values = make_values(shape, torch.float64, "cpu").requires_grad_()
    (grad,) = torch.autograd.grad(fm_interaction(emb, values).sum(), values)
    (expected,) = torch.autograd.grad(reference.fm_interaction(emb, values).sum(), values)
    torch.testing.assert_close(grad, expected)


@settings(max_examples=40, deadline=None)
@given(
    batch=st.integers(0, 20),
    fields=st.integers(1, 12),
    dim=st.integers(1, 40),
    with_values=st.booleans(),
    reduce=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_shapes_match_reference(batch, fields, dim, with_values, reduce, seed):
    shape = (batch, fields, dim)
    emb = make_emb(shape, torch.float64, "cpu", seed=seed)
    values = make_values(shape, torch.float64, "cpu", seed=seed + 1) if with_values else None
    _check_against_reference(emb, values, reduce)


class _FMHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fm = fastrec.nn.FMInteraction(keepdim=True)
        self.bi = fastrec.nn.BiInteraction()
        self.linear = torch.nn.Linear(8, 1)

    def forward(self, emb, values):
        return self.fm(emb, values) + self.linear(self.bi(emb, values))


def test_torch_compile_fullgraph_forward_and_backward():
    torch.manual_seed(0)
    model = _FMHead()
    compiled = torch.compile(model, fullgraph=True)
    emb = torch.randn(16, 5, 8, requires_grad=True)
    values = torch.rand(16, 5)
    torch.testing.assert_close(compiled(emb, values), model(emb, values))
    (grad,) = torch.autograd.grad(compiled(emb, values).sum(), emb)
    (expected,) = torch.autograd.grad(model(emb, values).sum(), emb)
    torch.testing.assert_close(grad, expected)


def test_modules():
    emb = torch.randn(6, 4, 3)
    assert fastrec.nn.FMInteraction()(emb).shape == (6,)
    assert fastrec.nn.FMInteraction(keepdim=True)(emb).shape == (6, 1)
    assert fastrec.nn.BiInteraction()(emb).shape == (6, 3)
    assert "keepdim=True" in repr(fastrec.nn.FMInteraction(keepdim=True))
    assert not list(fastrec.nn.FMInteraction().parameters())


def test_large_magnitudes_stay_finite_in_float64():
    emb = torch.full((2, 3, 4), 1e150, dtype=torch.float64)
    torch.testing.assert_close(fm_interaction(emb), reference.fm_interaction(emb))


BAD_INPUTS = [
    (lambda: (torch.randn(4, 8), None), ValueError, "emb must be 3-D"),
    (lambda: (torch.randn(2, 4, 8, 1), None), ValueError, "emb must be 3-D"),
    (lambda: (torch.randint(0, 5, (4, 3, 8)), None), TypeError, "emb must be float32 or float64, got (torch.int64|Long)"),
    (lambda: (torch.randn(4, 3, 8).half(), None), TypeError, "emb must be float32 or float64, got (torch.float16|Half)"),
    (lambda: (torch.randn(4, 3, 8), torch.rand(4, 2)), ValueError, r"values must have shape \[batch, num_fields\]"),
    (lambda: (torch.randn(4, 3, 8), torch.rand(4, 3, 1)), ValueError, "values must have shape"),
    (lambda: (torch.randn(4, 3, 8), torch.rand(4, 3, dtype=torch.float64)), TypeError, "values dtype"),
]


@pytest.mark.parametrize("make, error, message", BAD_INPUTS)
def test_bad_input_raises_clear_errors(make, error, message):
    emb, values = make()
    with pytest.raises(error, match=message):
        fm_interaction(emb, values)
    # The raw op checks its arguments the same way in C++, before any pointer is read.
    with pytest.raises(error, match=message):
        torch.ops.fastrec.fm_interaction.default(emb, values, True)


def test_bad_input_types():
    with pytest.raises(TypeError, match="emb must be a torch.Tensor"):
        fm_interaction([[[1.0]]])
    with pytest.raises(TypeError, match="values must be a torch.Tensor"):
        fm_interaction(torch.randn(1, 2, 3), [[1.0, 2.0]])


def test_values_on_another_device():
    with pytest.raises(ValueError, match="values is on meta but emb is on cpu"):
        fm_interaction(torch.randn(2, 3, 4), torch.rand(2, 3, device="meta"))


def test_backward_op_checks_grad_shape():
    emb = torch.randn(4, 3, 8)
    with pytest.raises(ValueError, match=r"grad_out must have shape \[batch\]"):
        torch.ops.fastrec.fm_interaction_backward.default(torch.randn(5), emb, None, True)
    with pytest.raises(ValueError, match=r"grad_out must have shape \[batch, embed_dim\]"):
        torch.ops.fastrec.fm_interaction_backward.default(torch.randn(4), emb, None, False)
    with pytest.raises(TypeError, match="grad_out dtype"):
        torch.ops.fastrec.fm_interaction_backward.default(torch.randn(4, dtype=torch.float64), emb, None, True)


def test_devices_without_kernel_use_the_reference():
    emb = torch.randn(2, 3, 4, device="meta")
    assert fm_interaction(emb).shape == (2,)
    assert fm_interaction(emb, reduce=False).shape == (2, 4)


def test_backward_reuses_its_buffer_only_when_free():
    emb, grad_out = torch.randn(8, 5, 4), torch.randn(8)
    kept, _ = torch.ops.fastrec.fm_interaction_backward.default(grad_out, emb, None, True)
    snapshot = kept.clone()
    second, _ = torch.ops.fastrec.fm_interaction_backward.default(2 * grad_out, emb, None, True)
    assert second.data_ptr() != kept.data_ptr()  # `kept` is still held: a fresh buffer
    torch.testing.assert_close(kept, snapshot)
    torch.testing.assert_close(second, 2 * snapshot)
    view = second[:1]
    del second
    third, _ = torch.ops.fastrec.fm_interaction_backward.default(grad_out, emb, None, True)
    assert third.data_ptr() not in (kept.data_ptr(), view.data_ptr())  # a view keeps the storage held too
    ptr = third.data_ptr()
    del third, view
    fourth, _ = torch.ops.fastrec.fm_interaction_backward.default(grad_out, emb, None, True)
    assert fourth.data_ptr() == ptr  # free again: reused
    torch.testing.assert_close(fourth, snapshot)
