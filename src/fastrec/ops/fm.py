"""The factorization-machine interaction (Rendle, ICDM 2010): fastrec::fm_interaction and its autograd."""

from __future__ import annotations

import torch
from torch import Tensor

from fastrec import _extension
from fastrec.ops import reference

__all__ = ["fm_interaction"]


def _check_inputs(emb: Tensor, values: Tensor | None) -> None:
    # Mirrors fastrec::fm::check_inputs (csrc/interaction/fm.h), so the reference path raises the same errors.
    if not isinstance(emb, Tensor):
        raise TypeError(f"fm_interaction: emb must be a torch.Tensor, got {type(emb).__name__}")
    if emb.dim() != 3:
        raise ValueError(f"fm_interaction: emb must be 3-D [batch, num_fields, embed_dim], got shape {tuple(emb.shape)}")
    if emb.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"fm_interaction: emb must be float32 or float64, got {emb.dtype}")
    if values is None:
        return
    if not isinstance(values, Tensor):
        raise TypeError(f"fm_interaction: values must be a torch.Tensor or None, got {type(values).__name__}")
    if values.shape != emb.shape[:2]:
        raise ValueError(
            f"fm_interaction: values must have shape [batch, num_fields] = {list(emb.shape[:2])}, "
            f"got {list(values.shape)}"
        )
    if values.dtype != emb.dtype:
        raise TypeError(f"fm_interaction: values dtype {values.dtype} must match emb dtype {emb.dtype}")
    if values.device != emb.device:
        raise ValueError(f"fm_interaction: values is on {values.device} but emb is on {emb.device}")


def fm_interaction(emb: Tensor, values: Tensor | None = None, reduce: bool = True) -> Tensor:
    """Second-order factorization-machine interaction in O(B * F * K).

    With x_f = values[:, f] * emb[:, f] (values default to 1, the one-hot case):

    - ``reduce=True``: ``[B]``, ``0.5 * sum_k((sum_f x_fk)^2 - sum_f x_fk^2)``, which equals the sum over field
      pairs i < j of <x_i, x_j> (the FM's pairwise term);
    - ``reduce=False``: ``[B, K]``, the bi-interaction vector ``0.5 * ((sum_f x_f)^2 - sum_f x_f^2)`` (NFM's pooling).

    Args:
        emb: ``[B, F, K]`` float32 or float64 field embeddings; any strides.
        values: optional ``[B, F]`` field values of the same dtype (e.g. numeric features, or multi-hot weights).
        reduce: sum over the embedding dimension (FM) or keep it (bi-interaction).

    Differentiable in ``emb`` and ``values``. Runs the fused kernel on CPU (and CUDA when built with it), the
    plain-torch reference (:func:`fastrec.ops.reference.fm_interaction`) elsewhere.
    """
    _check_inputs(emb, values)
    if _extension.has_kernel(emb.device):
        return torch.ops.fastrec.fm_interaction.default(emb, values, bool(reduce))
    return reference.fm_interaction(emb, values, bool(reduce))


if _extension.is_available():

    @torch.library.register_fake("fastrec::fm_interaction")
    def _fm_interaction_fake(emb: Tensor, values: Tensor | None, reduce: bool) -> Tensor:
        _check_inputs(emb, values)
        return emb.new_empty(emb.shape[:1] if reduce else (emb.shape[0], emb.shape[2]))

    @torch.library.register_fake("fastrec::fm_interaction_backward")
    def _fm_interaction_backward_fake(
        grad_out: Tensor, emb: Tensor, values: Tensor | None, reduce: bool
    ) -> tuple[Tensor, Tensor]:
        _check_inputs(emb, values)
        return emb.new_empty(emb.shape), emb.new_empty(values.shape if values is not None else (0,))

    def _setup_context(ctx, inputs, output) -> None:
        emb, values, reduce = inputs
        ctx.save_for_backward(emb, values)
        ctx.reduce = reduce

    def _backward(ctx, grad_out: Tensor):
        emb, values = ctx.saved_tensors
        grad_emb, grad_values = torch.ops.fastrec.fm_interaction_backward.default(grad_out, emb, values, ctx.reduce)
        return grad_emb, (grad_values if values is not None else None), None

    torch.library.register_autograd("fastrec::fm_interaction", _backward, setup_context=_setup_context)

    def _backward_setup_context(ctx, inputs, output) -> None:
        grad_out, emb, values, reduce = inputs
        ctx.save_for_backward(grad_out, emb, values)
        ctx.reduce = reduce

    def _double_backward(ctx, grad_grad_emb: Tensor | None, grad_grad_values: Tensor | None):
        # Second derivatives (gradient penalties, Hessian-vector products) are rare: they differentiate the
        # reference's backward instead of a kernel of their own. Third derivatives are not supported.
        grad_out, emb, values = ctx.saved_tensors
        with torch.enable_grad():
            grad_out, emb = grad_out.detach().requires_grad_(), emb.detach().requires_grad_()
            inputs = [emb] if values is None else [emb, values.detach().requires_grad_()]
            out = reference.fm_interaction(emb, inputs[1] if values is not None else None, ctx.reduce)
            first = torch.autograd.grad(out, inputs, grad_out, create_graph=True)
            cotangents = [g if g is not None else torch.zeros_like(f)
                          for g, f in zip((grad_grad_emb, grad_grad_values), first)]
            second = torch.autograd.grad(first, [grad_out, *inputs], cotangents, allow_unused=True)
        return second[0], second[1], (second[2] if values is not None else None), None

    torch.library.register_autograd(
        "fastrec::fm_interaction_backward", _double_backward, setup_context=_backward_setup_context
    )
