"""Plain-torch implementations of every fastrec op: the ground truth the kernels are tested against, and the
fallback that runs where no kernel exists (extension not built, or a device without a kernel).

They are written for clarity, composed from standard torch ops so that autograd differentiates them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "ACTIVATIONS",
    "cin",
    "cin_layer",
    "csr_topk_dense",
    "csr_topk_sparse",
    "dot_interaction",
    "ease_closed_form",
    "ease_dense_",
    "embedding_bag",
    "ffm_interaction",
    "fm_interaction",
    "fm_interaction_pairwise",
    "gram_dense",
    "gram_sparse",
    "incomplete_ldl",
    "sparse_fm",
    "sparse_optimizer_step",
    "unit_lower_inverse",
]


def _weighted(emb: Tensor, values: Tensor | None) -> Tensor:
    return emb if values is None else emb * values.unsqueeze(-1)


def fm_interaction(emb: Tensor, values: Tensor | None = None, reduce: bool = True) -> Tensor:
    """Rendle's O(FK) form: 0.5 * ((sum_f x_f)^2 - sum_f x_f^2), x_f = v_f e_f; summed over K when reduce."""
    x = _weighted(emb, values)
    bi_interaction = 0.5 * (x.sum(dim=1).square() - x.square().sum(dim=1))
    return bi_interaction.sum(dim=1) if reduce else bi_interaction


def fm_interaction_pairwise(emb: Tensor, values: Tensor | None = None, reduce: bool = True) -> Tensor:
    """The definition, O(F^2 K): sum over field pairs i < j of x_i * x_j (elementwise), summed over K when reduce."""
    x = _weighted(emb, values)
    first, second = torch.triu_indices(x.shape[1], x.shape[1], offset=1, device=x.device)
    bi_interaction = (x[:, first] * x[:, second]).sum(dim=1)
    return bi_interaction.sum(dim=1) if reduce else bi_interaction


# The activations of CIN layers, by the names fastrec.nn.CIN accepts ("linear" is DeepCTR's name for none).
ACTIVATIONS = {"relu": torch.relu, "identity": lambda t: t, "linear": lambda t: t, "sigmoid": torch.sigmoid,
               "tanh": torch.tanh}


def cin_layer(x_prev: Tensor | None, x0: Tensor, weight: Tensor, bias: Tensor | None, activation: str) -> Tensor:
    """One CIN layer in fastrec's embedding-dim-major layout: ``x_prev [B, K, H_in]`` (None: ``x0``), ``x0 [B, K, F]``,
    ``weight [H_out, H_in, F]``, ``bias [H_out]`` -> ``[B, K, H_out]``,
    ``out[b, d, h] = act(sum_{i, j} weight[h, i, j] * x_prev[b, d, i] * x0[b, d, j] + bias[h])``.
    Materializes the outer products Z ``[B, K, H_in * F]``."""
    z = ((x0 if x_prev is None else x_prev).unsqueeze(-1) * x0.unsqueeze(-2)).flatten(2)
    pre = z @ weight.flatten(1).t()
    if bias is not None:
        pre = pre + bias
    return ACTIVATIONS[activation](pre)


def cin(
    x: Tensor,
    weights: Sequence[Tensor],
    biases: Sequence[Tensor | None],
    split_half: bool = True,
    activation: str = "relu",
) -> Tensor:
    """xDeepFM's Compressed Interaction Network as the published implementations compute it: ``x [B, F, K]`` ->
    ``[B, sum of the layers' output widths]``. Each layer builds Z ``[B, H_{k-1} * F, K]`` (index ``i * F + j``) and
    multiplies it by ``weights[k]`` ``[H_k, H_{k-1}, F]`` (a 1x1 convolution). With ``split_half`` the first half of
    a non-last layer's channels feeds the next layer and the second half is pooled (xDeepFM's authors' code and
    DeepCTR; pytorch-fm pools the first half)."""
    x0, hidden, pooled = x, x, []
    for k, (weight, bias) in enumerate(zip(weights, biases)):
        z = torch.einsum("bid,bjd->bijd", hidden, x0).flatten(1, 2)
        pre = torch.matmul(weight.flatten(1), z)
        if bias is not None:
            pre = pre + bias.unsqueeze(1)
        out = ACTIVATIONS[activation](pre)
        if split_half and k < len(weights) - 1:
            hidden, direct = out.split(out.shape[1] // 2, dim=1)
        else:
            hidden = direct = out
        pooled.append(direct.sum(dim=2))
    return torch.cat(pooled, dim=1)


def ffm_interaction(x: Tensor, values: Tensor | None = None, reduce: bool = True) -> Tensor:
    """Field-aware FM (Juan et al., RecSys 2016) over field-aware embeddings ``x [B, F, F, K]``, where ``x[b, i, j]``
    is field i's vector for field j: ``sum_{i<j} <x[b, i, j], x[b, j, i]> * v_i * v_j`` -> ``[B]``, or per pair
    ``[B, F * (F - 1) / 2]`` (pairs i < j in row-major order) when not reduce. Gathers both sides of every pair as
    ``[B, P, K]`` tensors, like pytorch-fm."""
    first, second = torch.triu_indices(x.shape[1], x.shape[1], offset=1, device=x.device)
    pairs = (x[:, first, second] * x[:, second, first]).sum(dim=-1)
    if values is not None:
        pairs = pairs * values[:, first] * values[:, second]
    return pairs.sum(dim=1) if reduce else pairs


def dot_interaction(dense: Tensor, sparse: Tensor, self_interaction: bool = False, concat_dense: bool = True) -> Tensor:
    """DLRM's dot interaction: T = [dense; sparse_1..S] ``[B, S + 1, D]``, the lower triangle of T T^T (strict
    unless self_interaction) in row-major order (pairs (i, j), j < i, by i then j), after ``dense`` when
    concat_dense. Computes the full ``[B, S + 1, S + 1]`` product with bmm and gathers the triangle, like DLRM."""
    t = torch.cat([dense.unsqueeze(1), sparse], dim=1)
    gram = torch.bmm(t, t.transpose(1, 2))
    rows, cols = torch.tril_indices(t.shape[1], t.shape[1], offset=0 if self_interaction else -1, device=t.device)
    triangle = gram[:, rows, cols]
    return torch.cat([dense, triangle], dim=1) if concat_dense else triangle


def sparse_fm(values: Tensor, col_indices: Tensor, row_offsets: Tensor, w0: Tensor, w: Tensor, v: Tensor) -> Tensor:
    """libFM's model over a CSR batch: ``y_r = w0 + sum_i w_i x_i + 0.5 * sum_k((sum_i v_ik x_i)^2 - sum_i v_ik^2
    x_i^2)`` over the nonzeros x_i of row r. Gradients of ``w`` and ``v`` are sparse COO (touched rows only)."""
    rows = torch.repeat_interleave(
        torch.arange(row_offsets.numel() - 1, device=values.device), row_offsets[1:] - row_offsets[:-1]
    )
    cols = col_indices.long()
    batch = row_offsets.numel() - 1
    x = v[cols] * values.unsqueeze(1)
    linear = values.new_zeros(batch).index_add(0, rows, w[cols] * values)
    sums = values.new_zeros(batch, v.shape[1]).index_add(0, rows, x)
    squares = values.new_zeros(batch, v.shape[1]).index_add(0, rows, x * x)
    return w0 + linear + 0.5 * (sums * sums - squares).sum(dim=1)


def embedding_bag(
    weights: Tensor,
    table_layout: Sequence[int],
    feature_tables: Sequence[int],
    indices: Tensor,
    offsets: Tensor,
    per_sample_weights: Tensor | None = None,
) -> Tensor:
    """Table-batched embedding bag, one ``torch.nn.functional.embedding_bag`` per feature.

    ``table_layout`` holds five ints per table (element offset, dim, rows, first global row, pooling 0=sum/1=mean);
    bag ``f * B + b`` holds ``indices[offsets[f*B+b] : offsets[f*B+b+1]]`` of feature f's table.
    Returns [B, sum_f D_f] in float32 (float64 for float64 weights).
    """
    flat = weights.reshape(-1)
    out_dtype = torch.float64 if weights.dtype == torch.float64 else torch.float32
    batch = (offsets.numel() - 1) // len(feature_tables)
    columns = []
    for f, t in enumerate(feature_tables):
        start, dim, rows, _, pooling = table_layout[5 * t : 5 * t + 5]
        table = flat[start : start + dim * rows].view(rows, dim).to(out_dtype)
        bag_offsets = offsets[f * batch : (f + 1) * batch + 1].long()
        lo, hi = int(bag_offsets[0]), int(bag_offsets[-1])
        weights_f = per_sample_weights[lo:hi].to(out_dtype) if per_sample_weights is not None else None
        sums = F.embedding_bag(indices[lo:hi].long(), table, bag_offsets[:-1] - lo, mode="sum",
                               per_sample_weights=weights_f)
        if pooling == 1:  # by hand: F.embedding_bag refuses per-sample weights with mode="mean"
            sums = sums / (bag_offsets[1:] - bag_offsets[:-1]).clamp(min=1).unsqueeze(1)
        columns.append(sums)
    return torch.cat(columns, dim=1)


def sparse_optimizer_step(
    kind: str,
    weight: Tensor,
    grad: Tensor,
    state: dict[str, Tensor],
    *,
    lr: float,
    eps: float = 1e-8,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    step: int = 1,
) -> None:
    """One optimizer step on the rows of ``weight`` [rows, D] with a nonzero gradient (``grad`` dense, same shape;
    every row for ``dense_adam``): the semantics of fastrec's fused optimizers, written plainly. Updates ``weight``
    and ``state`` in place.

    - ``sgd``: w -= lr * g
    - ``adagrad``: s += g^2; w -= lr * g / (sqrt(s) + eps)                       (torch.optim.Adagrad, sparse)
    - ``rowwise_adagrad``: s_row += mean(g^2); w -= lr * g / (sqrt(s_row) + eps)   (FBGEMM's row-wise Adagrad)
    - ``adam``: lazy Adam, m and v updated on touched rows only, bias correction with the global step
      (torch.optim.SparseAdam): w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)
    - ``dense_adam``: the same on every row (torch.optim.Adam on the dense weights)
    with g = grad + weight_decay * w on the stepped rows.
    """
    rows = torch.arange(len(grad)) if kind == "dense_adam" else grad.ne(0).any(dim=1).nonzero().squeeze(1)
    w = weight[rows]
    g = grad[rows] + weight_decay * w
    if kind == "sgd":
        w = w - lr * g
    elif kind == "adagrad":
        state["sum"][rows] += g * g
        w = w - lr * g / (state["sum"][rows].sqrt() + eps)
    elif kind == "rowwise_adagrad":
        state["sum"][rows] += (g * g).mean(dim=1)
        w = w - (lr / (state["sum"][rows].sqrt() + eps)).unsqueeze(1) * g
    elif kind in ("adam", "dense_adam"):
        beta1, beta2 = betas
        state["exp_avg"][rows] = beta1 * state["exp_avg"][rows] + (1 - beta1) * g
        state["exp_avg_sq"][rows] = beta2 * state["exp_avg_sq"][rows] + (1 - beta2) * g * g
        step_size = lr * math.sqrt(1 - beta2**step) / (1 - beta1**step)
        w = w - step_size * state["exp_avg"][rows] / (state["exp_avg_sq"][rows].sqrt() + eps)
    else:
        raise ValueError(f"sparse_optimizer_step: unknown optimizer {kind!r}")
    weight[rows] = w


# ---------------------------------------------------------------------------------------------- closed-form models
def csr_dense(indptr: Tensor, indices: Tensor, values: Tensor | None, n_cols: int, dtype: torch.dtype) -> Tensor:
    """The dense [rows, n_cols] matrix of a CSR triple (values None: all ones)."""
    rows = indptr.numel() - 1
    row_ids = torch.repeat_interleave(torch.arange(rows), indptr[1:] - indptr[:-1])
    out = torch.zeros(rows, n_cols, dtype=dtype)
    vals = torch.ones(indices.numel(), dtype=dtype) if values is None else values.to(dtype)
    out.index_put_((row_ids, indices.long()), vals, accumulate=True)
    return out


def gram_dense(indptr: Tensor, indices: Tensor, values: Tensor | None, n_items: int, dtype: torch.dtype) -> Tensor:
    """G = X^T X, dense, through torch's sparse-sparse product (X never densified)."""
    rows = indptr.numel() - 1
    vals = torch.ones(indices.numel(), dtype=dtype) if values is None else values.to(dtype)
    row_ids = torch.repeat_interleave(torch.arange(rows), indptr[1:] - indptr[:-1])
    x = torch.sparse_coo_tensor(torch.stack([row_ids, indices.long()]), vals, (rows, n_items),
                                check_invariants=False).coalesce()
    with warnings.catch_warnings():  # "sparse CSR support is in beta", from inside torch.sparse.mm
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse.mm(x.t().coalesce(), x).to_dense()


def gram_sparse(
    indptr: Tensor, indices: Tensor, values: Tensor | None, n_items: int, threshold: float, top_m: int,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor, Tensor]:
    """G = X^T X as CSR, row by row: g_ii (when item i has a user), and the off-diagonal g_ij != 0 with
    |g_ij| >= threshold, the top_m largest |g_ij| of them (ties: lower j first) when top_m > 0."""
    g = gram_dense(indptr, indices, values, n_items, dtype)
    out_ptr, out_cols, out_vals = [0], [], []
    for i in range(n_items):
        row = g[i]
        off = torch.ones(n_items, dtype=torch.bool)
        off[i] = False
        cand = torch.nonzero(off & (row != 0) & (row.abs() >= threshold)).squeeze(1)
        if top_m > 0 and cand.numel() > top_m:
            order = torch.sort(row[cand].abs(), descending=True, stable=True).indices  # cand ascending: ties by lower j
            cand = cand[order[:top_m]]
        if bool((indices == i).any()):
            cand = torch.cat([cand, torch.tensor([i])])
        cand = torch.sort(cand).values
        out_cols.append(cand)
        out_vals.append(row[cand])
        out_ptr.append(out_ptr[-1] + cand.numel())
    return (torch.tensor(out_ptr, dtype=torch.int64), torch.cat(out_cols).to(torch.int32),
            torch.cat(out_vals).to(dtype))


def ease_dense_(gram: Tensor, l2: float) -> None:
    """EASE's closed form (Steck, WWW 2019) in the textbook way, writing B into ``gram``:
    P = (G + l2 I)^-1, B = I - P diag(1/diag(P)), i.e. b_ij = -p_ij / p_jj and b_ii = 0."""
    n = gram.shape[0]
    p = torch.linalg.inv(gram + l2 * torch.eye(n, dtype=gram.dtype))
    b = -p / torch.diagonal(p).unsqueeze(0)
    b.fill_diagonal_(0.0)
    gram.copy_(b)


def ease_closed_form(x: Tensor, l2: float) -> Tensor:
    """EASE weights B [n_items, n_items] of a dense user x item matrix ``x``, in float64 unless ``x`` is float32:
    the plain formula, for tests and small data."""
    b = x.t() @ x
    ease_dense_(b, l2)
    return b


def _topk_ordered(scores: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-k per row by (score desc, id asc); -inf entries (excluded) come back as id -1."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices[:, :k]
    top = scores.gather(1, order)
    return top, torch.where(torch.isneginf(top), torch.full_like(order, -1), order)


def csr_topk_dense(
    weights: Tensor, indptr: Tensor, indices: Tensor, values: Tensor | None, k: int, exclude_seen: bool
) -> tuple[Tensor, Tensor]:
    """Per row u of X: top-k of x_u W, the row's own items excluded when ``exclude_seen``."""
    n = weights.shape[0]
    x = csr_dense(indptr, indices, values, n, weights.dtype)
    scores = x @ weights
    if exclude_seen:
        rows = torch.repeat_interleave(torch.arange(x.shape[0]), indptr[1:] - indptr[:-1])
        scores[rows, indices.long()] = -torch.inf
    return _topk_ordered(scores, k)


def csr_topk_sparse(
    w_indptr: Tensor, w_indices: Tensor, w_values: Tensor, indptr: Tensor, indices: Tensor, values: Tensor | None,
    k: int, exclude_seen: bool,
) -> tuple[Tensor, Tensor]:
    """:func:`csr_topk_dense` with W given as CSR."""
    n = w_indptr.numel() - 1
    w = csr_dense(w_indptr, w_indices, w_values, n, w_values.dtype)
    return csr_topk_dense(w, indptr, indices, values, k, exclude_seen)


def _largest(ids: list[int], size: Tensor, m: int) -> list[int]:
    """The m ids of largest size (ties: lower id), sorted by id."""
    ranked = sorted(ids, key=lambda i: (-float(size[i]), i))
    return sorted(ranked[:m])


def incomplete_ldl(indptr: Tensor, indices: Tensor, values: Tensor, max_col_nnz: int,
                   drop_tol: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Column-by-column LDL^T with dense columns: w = A[:, k] - sum_{j<k} l_kj d_j L[:, j] over the kept (dropped)
    factor, with the dropping and compensation rules of :func:`fastrec.ops.linear.incomplete_ldl`."""
    n = indptr.numel() - 1
    a = csr_dense(indptr, indices, values, n, torch.float64).t()  # the CSC arrays read as CSR give A^T = lower^T
    a_diag = torch.diagonal(a).clone()
    lower = torch.zeros(n, n, dtype=torch.float64)
    d = torch.zeros(n, dtype=torch.float64)
    compensation = torch.zeros(n, dtype=torch.float64)
    for k in range(n):
        w = a[:, k].clone()
        w -= lower[:, :k] @ (lower[k, :k] * d[:k])
        dk = float(w[k] + compensation[k])
        estimate = max(dk, float(a_diag[k]))
        cand = [i for i in range(k + 1, n) if w[i] != 0]
        top = set(_largest(cand, w.abs(), max_col_nnz))
        keep = []
        for i in cand:
            if i in top and abs(float(w[i])) >= drop_tol * math.sqrt(estimate * float(a_diag[i])):
                keep.append(i)
            else:  # dropped: moved onto both diagonals (Ajiz-Jennings)
                g = math.sqrt(float(a_diag[i]) / float(a_diag[k]))
                compensation[i] += abs(float(w[i])) * g
                dk += abs(float(w[i])) / g
        if not dk > 1e-8 * float(a_diag[k]):
            dk = float(a_diag[k])
        d[k] = dk
        for i in keep:
            lower[i, k] = w[i] / dk
    sp_l = lower.t().to_sparse_csr()  # rows of L^T = columns of L
    return sp_l.crow_indices(), sp_l.col_indices().to(torch.int32), sp_l.values(), d


def unit_lower_inverse(indptr: Tensor, indices: Tensor, values: Tensor, d: Tensor, max_col_nnz: int,
                       max_row_nnz: int, drop_tol: float) -> tuple[Tensor, Tensor, Tensor]:
    """Forward substitution column by column in increasing row order with the dropping rules of
    :func:`fastrec.ops.linear.unit_lower_inverse`, written with dense vectors."""
    n = indptr.numel() - 1
    lower = csr_dense(indptr, indices, values, n, torch.float64).t()
    inv_sqrt_d = d.rsqrt()
    w = torch.zeros(n, n, dtype=torch.float64)
    for j in range(n):
        x = torch.zeros(n, dtype=torch.float64)
        x[j] = 1.0
        kept = []
        for r in range(j, n):
            if x[r] == 0 and r != j:
                continue
            if abs(float(x[r])) * float(inv_sqrt_d[r]) < drop_tol * float(inv_sqrt_d[j]):
                continue
            kept.append(r)
            x[r + 1:] -= lower[r + 1:, r] * x[r]
        for r in _largest(kept, x.abs() * inv_sqrt_d, max_col_nnz):
            w[r, j] = x[r] * inv_sqrt_d[r]
    for r in range(n):
        cols = torch.nonzero(w[r]).squeeze(1).tolist()
        size = w[r].abs()
        size[r] = torch.inf  # the diagonal always stays
        keep = _largest(cols, size, max_row_nnz)
        row = torch.zeros(n, dtype=torch.float64)
        row[keep] = w[r, keep]
        w[r] = row
    out = w.to_sparse_csr()
    return out.crow_indices(), out.col_indices().to(torch.int32), out.values()
