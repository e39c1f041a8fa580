"""Autoencoders over interaction rows.

- :class:`AutoRec` (Sedhain et al., WWW 2015): I-AutoRec (``kind="item"``: an item's ratings by all users are
  reconstructed) or U-AutoRec (``kind="user"``), loss on the observed ratings only (masked MSE) plus L2.
- :class:`DeepRec` (Kuchaiev & Ginsburg 2017): a deeper U-AutoRec with SELU, high dropout on the code, and dense
  re-feeding (the output is fed back as a new input with itself as the target).
- :class:`CDAE` (Wu et al., WSDM 2016): a denoising autoencoder of the implicit row with a per-user input node,
  sigmoid outputs, log loss over all items.
- :class:`MultVAE` / :class:`MultDAE` (Liang et al., WWW 2018): multinomial likelihood over the row, variational
  (KL weight ``min(anneal_cap, updates / anneal_steps)``, the paper code's annealing) or denoising.

The first layer of every encoder is a weighted bag of rows of an item (or user) table looked up by fastrec's fused
embedding bag: a sparse input row costs its nonzeros, not ``n_items`` dense columns, and the table is updated in the
backward by a fused optimizer (lazy Adam); Mult-VAE / Mult-DAE can instead train it as a dense matrix with the
other layers (``sparse_input=False``), as their paper's code does. The rest are dense torch layers. Users are scored
from their training row (``seen``); the models are trained on rows of ``train``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fastrec.data import Interactions
from fastrec.models.cf.base import (
    IdTables,
    Recommender,
    as_user_tensor,
    check_positive,
    dense_optimizer,
    entry_batches,
    fused_optimizer,
    interactions_like,
    progress,
    set_lr,
)

__all__ = ["AutoRec", "CDAE", "DeepRec", "MultDAE", "MultVAE"]

_ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "selu": nn.SELU, "identity": nn.Identity}


def _activation(name: str) -> nn.Module:
    if name not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(_ACTIVATIONS)}, got {name!r}")
    return _ACTIVATIONS[name]()


def _row_bags(m: sp.csr_matrix, rows: np.ndarray, values: np.ndarray | None = None
              ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(ids, lengths, values, row-in-batch) of the given CSR rows; ``values`` replaces m.data when given."""
    start, stop = m.indptr[rows], m.indptr[rows + 1]
    lengths = stop - start
    src = np.repeat(start - np.cumsum(lengths) + lengths, lengths) + np.arange(lengths.sum())
    vals = (m.data if values is None else values)[src]
    return (torch.from_numpy(m.indices[src].astype(np.int64)), torch.from_numpy(lengths.astype(np.int64)),
            torch.from_numpy(vals.astype(np.float32)), torch.from_numpy(np.repeat(np.arange(rows.size), lengths)))


class _RowAutoencoder(Recommender):
    """Shared machinery: the input table (rows of it are the columns of the input matrix), the fit loop over
    shuffled rows, scoring from the stored rows. Subclasses define the layers, ``_encode_rest``, ``_decode`` and
    ``_loss``."""

    by_item = False  # rows are items (I-AutoRec) instead of users

    def _make_input_table(self, n_columns: int, width: int, optimizer: str, lr: float, seed: int,
                          extra: dict | None = None, sparse: bool = True) -> None:
        """The first layer's [n_columns, width] table. ``sparse``: a table of the fused embedding bag, updated in the
        backward by the fused (lazy) optimizer on the touched rows only; otherwise a dense parameter with a dense
        gradient, stepped by the torch optimizer with the other layers (Adam then moves every row every step
        through its momentum, as a dense first layer does in the papers' code). ``extra`` tables are always fused."""
        specs = {"input": (n_columns, width, ("input_bag",))} if sparse else {}
        specs.update(extra or {})
        if specs:
            self.tables = IdTables(specs, fused_optimizer(optimizer, lr), seed=seed)
        if not sparse:
            self.input_weight = nn.Parameter(torch.empty(n_columns, width))
        self.sparse_input = sparse
        bound = 1.0 / np.sqrt(n_columns)
        with torch.no_grad():  # nn.Linear's initialization of the first layer
            self._input_table().uniform_(-bound, bound)
        self.input_bias = nn.Parameter(torch.zeros(width))
        self.optimizer_name, self.lr = optimizer, lr

    def _input_table(self) -> Tensor:
        return self.tables.weight("input") if self.sparse_input else self.input_weight

    def _matrix(self, train: Interactions) -> sp.csr_matrix:
        m = train.to_scipy().astype(np.float32)
        return sp.csr_matrix(m.T) if self.by_item else sp.csr_matrix(m)

    def _input_weights(self, ids: Tensor, lengths: Tensor, values: Tensor, rows: Tensor) -> Tensor:
        """The weights of the input bag (default: the values themselves)."""
        return values

    def _first_layer(self, bags: tuple[Tensor, Tensor, Tensor, Tensor], row_ids: Tensor) -> Tensor:
        ids, lengths, values, rows = bags
        weights = self._input_weights(ids, lengths, values, rows)
        if self.sparse_input:
            return self.tables({"input_bag": (ids, lengths, weights)})["input_bag"] + self.input_bias
        offsets = torch.cumsum(lengths, 0) - lengths
        bag = F.embedding_bag(ids, self.input_weight, offsets, mode="sum", per_sample_weights=weights)
        return bag + self.input_bias

    def _rows_out(self, matrix: sp.csr_matrix, rows: np.ndarray) -> Tensor:
        """Reconstructions [len(rows), n_columns] of the given rows of ``matrix`` (no grad, eval mode)."""
        bags = _row_bags(matrix, rows)
        out = self._decode(self._encode_rest(self._first_layer(bags, torch.from_numpy(rows)), train=False))
        return out[0] if isinstance(out, tuple) else out

    def _encode_rest(self, h: Tensor, train: bool) -> Any:
        raise NotImplementedError

    def _decode(self, z: Any) -> Any:
        raise NotImplementedError

    def _loss(self, out: Any, bags: tuple[Tensor, Tensor, Tensor, Tensor], batch: int, step: int) -> Tensor:
        raise NotImplementedError

    def fit(self, train: Interactions, *, epochs: int = 100, batch_size: int = 500, seed: int = 0,
            lr_milestones: Sequence[int] = (), lr_gamma: float = 0.1, show_progress: bool = True,
            callback: Any = None, **loss_args: Any) -> _RowAutoencoder:
        """Trains on the rows of ``train`` (users, or items for I-AutoRec), ``batch_size`` rows per step.

        ``lr_milestones`` / ``lr_gamma``: step decay as torch's ``MultiStepLR``: after ``m`` epochs, for each
        milestone ``m``, the learning rate (input table's and other layers') is multiplied by ``lr_gamma``; each
        ``fit`` starts again from the constructor's ``lr``. ``callback(model, epoch)`` runs after each epoch."""
        train = interactions_like(train, self)
        check_positive("epochs", epochs, integer=True)
        check_positive("batch_size", batch_size, integer=True)
        if not isinstance(lr_milestones, Sequence):
            raise TypeError(f"lr_milestones must be a sequence of epoch counts, got {lr_milestones!r}")
        for m in lr_milestones:
            check_positive("lr_milestones", m, integer=True)
        check_positive("lr_gamma", lr_gamma)
        self.set_seen(train)
        self._set_loss_args(**loss_args)
        matrix = self._matrix(train)
        rows_with_data = np.flatnonzero(np.diff(matrix.indptr) > 0)
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        dense = dense_optimizer(self.optimizer_name, [p for n, p in self.named_parameters() if "tables" not in n],
                                self.lr)
        table_optimizer = self.tables.ebc.optimizer if hasattr(self, "tables") else None
        self.train()
        step = 0
        for epoch in range(epochs):
            set_lr(table_optimizer, dense, self.lr * lr_gamma ** sum(epoch >= m for m in lr_milestones))
            n_batches = -(-rows_with_data.size // batch_size)
            for b in progress(entry_batches(rows_with_data.size, batch_size, rng), f"epoch {epoch + 1}/{epochs}",
                              show_progress, n_batches):
                rows = np.sort(rows_with_data[b])
                bags = _row_bags(matrix, rows)
                out = self._decode(self._encode_rest(self._first_layer(bags, torch.from_numpy(rows)), train=True))
                loss = self._loss(out, bags, rows.size, step)
                dense.zero_grad(set_to_none=True)
                loss.backward()
                dense.step()
                self._after_step(out, bags, rows, dense)
                step += 1
            if callback is not None:
                callback(self, epoch)
        self.eval()
        return self

    def _set_loss_args(self, **kwargs: Any) -> None:
        if kwargs:
            raise TypeError(f"{type(self).__name__}.fit got unexpected arguments {sorted(kwargs)}")

    def _after_step(self, out: Any, bags: Any, rows: np.ndarray, dense: torch.optim.Optimizer) -> None:
        pass

    @torch.no_grad()
    def score_all(self, users: Any, block: int = 1024) -> Tensor:
        u = as_user_tensor(users, self.n_users)
        if self.seen is None:
            raise RuntimeError(f"{type(self).__name__} scores users from their training rows: call fit() first")
        was = self.training
        self.eval()
        try:
            if self.by_item:  # every item's reconstruction, then the users' columns
                matrix = sp.csr_matrix(self.seen.T)
                cols = [self._rows_out(matrix, np.arange(s, min(s + block, self.n_items)))[:, u]
                        for s in range(0, self.n_items, block)]
                return torch.cat(cols).T.contiguous()
            return torch.cat([self._rows_out(self.seen, u[s : s + block].numpy())
                              for s in range(0, u.numel(), block)]) if u.numel() else torch.zeros(0, self.n_items)
        finally:
            self.train(was)

    @torch.no_grad()
    def score(self, users: Any, items: Any) -> Tensor:
        u, i, shape = self._pairs(users, items)
        uniq, inv = torch.unique(u, return_inverse=True)
        return self.score_all(uniq)[inv, i].reshape(shape)


def _mlp(widths: Sequence[int], activation: str, last_activation: bool = True) -> nn.Sequential:
    mods: list[nn.Module] = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(nn.Linear(a, b))
        if last_activation or k < len(widths) - 2:
            mods.append(_activation(activation))
    return nn.Sequential(*mods)


class AutoRec(_RowAutoencoder):
    """AutoRec on explicit ratings: reconstructs each row's ratings; the loss counts the observed entries only.

    Args:
        n_users, n_items: id counts.
        kind: ``"item"`` (I-AutoRec: rows are items, the paper's better variant) or ``"user"`` (U-AutoRec).
        layers: hidden widths (AutoRec: one layer of 500; DeepRec: several, mirrored in the decoder).
        activation, output_activation: the hidden and output nonlinearities (AutoRec: sigmoid and identity).
        dropout: dropout on the code (the last encoder layer's output).
        refeed: dense re-feeding (DeepRec): after each step, the reconstruction is fed as an input and trained
            to reproduce itself.
        reg: L2 weight on the dense weights (AutoRec's lambda / 2).
        optimizer, lr: fused optimizer of the input table and torch optimizer of the rest.
        seed: initialization seed.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        kind: str = "item",
        layers: Sequence[int] = (500,),
        *,
        activation: str = "sigmoid",
        output_activation: str = "identity",
        dropout: float = 0.0,
        refeed: bool = False,
        reg: float = 1e-3,
        optimizer: str = "adam",
        lr: float = 1e-3,
        seed: int = 0,
    ) -> None:
        super().__init__(n_users, n_items)
        if kind not in ("item", "user"):
            raise ValueError(f"kind must be 'item' or 'user', got {kind!r}")
        layers = tuple(int(x) for x in layers)
        if not layers or min(layers) < 1:
            raise ValueError(f"layers must list positive widths, got {layers}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.kind, self.by_item = kind, kind == "item"
        self.refeed, self.reg = bool(refeed), float(reg)
        n_cols = n_users if self.by_item else n_items
        torch.manual_seed(seed)
        self._make_input_table(n_cols, layers[0], optimizer, lr, seed)
        self.first_activation = _activation(activation)
        self.encoder = _mlp(layers, activation)
        self.dropout = nn.Dropout(dropout)
        self.decoder = _mlp(tuple(reversed(layers)) + (n_cols,), activation, last_activation=False)
        self.output_activation = _activation(output_activation)
        self.register_buffer("global_mean", torch.zeros(()))

    def _encode_rest(self, h: Tensor, train: bool) -> Tensor:
        return self.dropout(self.encoder(self.first_activation(h)))

    def _decode(self, z: Tensor) -> Tensor:
        return self.output_activation(self.decoder(z))

    def _loss(self, out: Tensor, bags: tuple[Tensor, Tensor, Tensor, Tensor], batch: int, step: int) -> Tensor:
        ids, _, values, rows = bags
        err = out[rows, ids] - values
        l2 = sum(m.weight.square().sum() for m in self.modules() if isinstance(m, nn.Linear))
        return 0.5 * err.square().sum() / batch + 0.5 * self.reg * l2

    def _after_step(self, out: Tensor, bags: Any, rows: np.ndarray, dense: torch.optim.Optimizer) -> None:
        if not self.refeed:
            return
        target = out.detach()
        n = target.shape[1]
        ids = torch.arange(n).repeat(target.shape[0])
        flat = (ids, torch.full((target.shape[0],), n), target.reshape(-1), torch.arange(target.shape[0]).
                repeat_interleave(n))
        again = self._decode(self._encode_rest(self._first_layer(flat, torch.from_numpy(rows)), train=True))
        loss = 0.5 * (again - target).square().sum(1).mean()
        dense.zero_grad(set_to_none=True)
        loss.backward()
        dense.step()

    def fit(self, train: Interactions, **kwargs: Any) -> AutoRec:
        self.global_mean.fill_(float(train.values.mean()) if train.nnz else 0.0)
        return super().fit(train, **kwargs)

    @torch.no_grad()
    def score(self, users: Any, items: Any) -> Tensor:
        """Predicted ratings; a pair whose user (U-AutoRec) or item (I-AutoRec) has no training rating gets the
        global mean (AutoRec's default rating)."""
        s = super().score(users, items)
        u, i, shape = self._pairs(users, items)
        empty = self.seen.T.tocsr() if self.by_item else self.seen
        lone = torch.from_numpy(np.diff(empty.indptr) == 0)[(i if self.by_item else u)].reshape(shape)
        return torch.where(lone, self.global_mean, s)


class DeepRec(AutoRec):
    """DeepRec: U-AutoRec with SELU, the code dropped out at 0.8, dense re-feeding, and a deeper symmetric
    network (the paper's Netflix setting is 512-512-1024). Arguments as :class:`AutoRec`."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        kind: str = "user",
        layers: Sequence[int] = (512, 512, 1024),
        *,
        activation: str = "selu",
        output_activation: str = "selu",
        dropout: float = 0.8,
        refeed: bool = True,
        reg: float = 1e-3,
        optimizer: str = "adam",
        lr: float = 1e-3,
        seed: int = 0,
    ) -> None:
        super().__init__(n_users, n_items, kind, layers, activation=activation, output_activation=output_activation,
                         dropout=dropout, refeed=refeed, reg=reg, optimizer=optimizer, lr=lr, seed=seed)


class CDAE(_RowAutoencoder):
    """Collaborative denoising autoencoder on implicit rows: ``h = sigmoid(W x~ + V_u + b)``,
    ``y = sigmoid(W' h + b')``, with x~ the row with entries dropped at rate ``corruption`` (kept ones scaled by
    1 / (1 - corruption)) and the log loss over all items.

    Args:
        n_users, n_items: id counts.
        hidden: code width.
        corruption: input dropout rate.
        reg: L2 weight on the dense weights.
        optimizer, lr, seed: as :class:`AutoRec`.
    """

    def __init__(self, n_users: int, n_items: int, hidden: int = 50, *, corruption: float = 0.5, reg: float = 1e-5,
                 optimizer: str = "adam", lr: float = 1e-3, seed: int = 0) -> None:
        super().__init__(n_users, n_items)
        check_positive("hidden", hidden, integer=True)
        if not 0 <= corruption < 1:
            raise ValueError(f"corruption must be in [0, 1), got {corruption!r}")
        self.corruption, self.reg = float(corruption), float(reg)
        torch.manual_seed(seed)
        self._make_input_table(n_items, hidden, optimizer, lr, seed,
                               extra={"user_node": (n_users, hidden, ("user_node",))})
        with torch.no_grad():
            self.tables.weight("user_node").zero_()
        self.decoder = nn.Linear(hidden, n_items)

    def _input_weights(self, ids: Tensor, lengths: Tensor, values: Tensor, rows: Tensor) -> Tensor:
        if not self.training or self.corruption == 0:
            return torch.ones_like(values)
        keep = (torch.rand(values.shape) >= self.corruption).float()
        return keep / (1 - self.corruption)

    def _first_layer(self, bags: tuple[Tensor, Tensor, Tensor, Tensor], row_ids: Tensor) -> Tensor:
        ids, lengths, values, rows = bags
        out = self.tables({"input_bag": (ids, lengths, self._input_weights(ids, lengths, values, rows)),
                           "user_node": row_ids})
        return out["input_bag"] + out["user_node"] + self.input_bias

    def _encode_rest(self, h: Tensor, train: bool) -> Tensor:
        return torch.sigmoid(h)

    def _decode(self, z: Tensor) -> Tensor:
        return self.decoder(z)  # logits; sigmoid is monotone, ranking uses the logits

    def _loss(self, out: Tensor, bags: tuple[Tensor, Tensor, Tensor, Tensor], batch: int, step: int) -> Tensor:
        ids, _, _, rows = bags
        target = torch.zeros_like(out)
        target[rows, ids] = 1.0
        return (F.binary_cross_entropy_with_logits(out, target, reduction="sum") / batch
                + 0.5 * self.reg * self.decoder.weight.square().sum())


class MultVAE(_RowAutoencoder):
    """Mult-VAE (``variational=True``) / Mult-DAE: ``[n_items] -> hidden -> latent -> hidden -> [n_items]`` with
    tanh, the input L2-normalized and dropped out at rate ``dropout``, a multinomial log-likelihood (log-softmax over
    the items, summed over the row's items), and for the VAE the KL term weighted by
    ``beta = min(anneal_cap, updates / anneal_steps)`` (``fit`` keywords; the paper's code: 200000 and 0.2, so beta
    rises linearly from 0 and stays at 0.2 from update 40000 on).

    Args:
        n_users, n_items: id counts.
        hidden, latent: widths (the paper's 600 and 200).
        dropout: input dropout rate (0.5).
        variational: VAE (True) or DAE (False).
        reg: L2 weight on the dense weights (the DAE's lambda; 0 for the VAE in the paper).
        init: ``"xavier"`` (the paper's code: Xavier-uniform weights, biases N(0, 0.001^2) truncated at two
            standard deviations) or ``"torch"`` (nn.Linear's default for every layer). On Gowalla (validation
            recall@20, same settings) Xavier led at every epoch: .1623 / .1771 / .1815 / .1853 after 5 / 10 / 20 /
            25 epochs against .1535 / .1725 / .1805 / .1810.
        sparse_input: the [n_items, hidden] first layer as a fused embedding-bag table under lazy Adam (only the
            rows of the batch's items step), or (False) a dense parameter under torch's Adam with the other layers,
            as in the paper's code (every row steps every update through Adam's momentum; the L2 ``reg`` then
            covers it too). On Gowalla (validation recall@20, Xavier, same settings) dense led early, was caught
            up by epoch 10 and peaked at about the same height (.1869 at epoch 45 against .1858 at 50; test
            .1627 / .1301 against .1617 / .1291), at about 6% more time a step.
        optimizer, lr, seed: as :class:`AutoRec`.
    """

    def __init__(self, n_users: int, n_items: int, hidden: int = 600, latent: int = 200, *, dropout: float = 0.5,
                 variational: bool = True, reg: float = 0.0, init: str = "xavier", sparse_input: bool = True,
                 optimizer: str = "adam", lr: float = 1e-3, seed: int = 0) -> None:
        super().__init__(n_users, n_items)
        check_positive("hidden", hidden, integer=True)
        check_positive("latent", latent, integer=True)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if init not in ("torch", "xavier"):
            raise ValueError(f"init must be 'torch' or 'xavier', got {init!r}")
        if not isinstance(sparse_input, bool):
            raise TypeError(f"sparse_input must be a bool, got {sparse_input!r}")
        self.dropout, self.variational, self.reg = float(dropout), bool(variational), float(reg)
        self.latent = latent
        torch.manual_seed(seed)
        self._make_input_table(n_items, hidden, optimizer, lr, seed, sparse=sparse_input)
        self.encoder = nn.Linear(hidden, 2 * latent if variational else latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.Tanh(), nn.Linear(hidden, n_items))
        if init == "xavier":
            with torch.no_grad():
                nn.init.xavier_uniform_(self._input_table())  # [n_items, hidden]: fan in + out as a layer
                for m in (self.encoder, self.decoder[0], self.decoder[2]):
                    nn.init.xavier_uniform_(m.weight)
                for b in (self.input_bias, self.encoder.bias, self.decoder[0].bias, self.decoder[2].bias):
                    nn.init.trunc_normal_(b, std=0.001, a=-0.002, b=0.002)
        self.anneal_steps, self.anneal_cap = 200000, 0.2

    def _set_loss_args(self, anneal_steps: int = 200000, anneal_cap: float = 0.2) -> None:
        check_positive("anneal_steps", anneal_steps, integer=True)
        if not anneal_cap >= 0:
            raise ValueError(f"anneal_cap must be >= 0, got {anneal_cap!r}")
        self.anneal_steps, self.anneal_cap = anneal_steps, anneal_cap

    def _input_weights(self, ids: Tensor, lengths: Tensor, values: Tensor, rows: Tensor) -> Tensor:
        keep = torch.ones_like(values)
        if self.training and self.dropout:
            keep = (torch.rand(values.shape) >= self.dropout).float() / (1 - self.dropout)
        norm = torch.zeros(lengths.numel()).index_add_(0, rows, values.square()).sqrt().clamp_min(1e-12)
        return values / norm[rows] * keep

    def _encode_rest(self, h: Tensor, train: bool) -> tuple[Tensor, Tensor]:
        z = self.encoder(torch.tanh(h))
        if not self.variational:  # the paper's DAE: tanh after every layer but the output, the code's included
            return torch.tanh(z), torch.zeros(())
        mu, logvar = z.chunk(2, dim=1)
        kl = 0.5 * (logvar.exp() + mu.square() - 1 - logvar).sum(1).mean()
        if self.training:
            mu = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        return mu, kl

    def _decode(self, z: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        return self.decoder(z[0]), z[1]

    def _loss(self, out: tuple[Tensor, Tensor], bags: tuple[Tensor, Tensor, Tensor, Tensor], batch: int,
              step: int) -> Tensor:
        logits, kl = out
        ids, _, values, rows = bags
        log_p = torch.log_softmax(logits, dim=1)
        nll = -(log_p[rows, ids] * values).sum() / batch
        beta = min(self.anneal_cap, step / self.anneal_steps) if self.variational else 0.0
        loss = nll + beta * kl
        if self.reg:  # every dense weight (a fused input table is left out: its rows step inside the backward)
            weights = [m.weight for m in self.modules() if isinstance(m, nn.Linear)]
            if not self.sparse_input:
                weights.append(self.input_weight)
            loss = loss + 0.5 * self.reg * sum(w.square().sum() for w in weights)
        return loss


class MultDAE(MultVAE):
    """Mult-DAE: :class:`MultVAE` without the variational layer (the paper's DAE: dropout 0.5, L2 ``reg``)."""

    def __init__(self, n_users: int, n_items: int, hidden: int = 600, latent: int = 200, *, dropout: float = 0.5,
                 reg: float = 0.01, init: str = "xavier", sparse_input: bool = True, optimizer: str = "adam",
                 lr: float = 1e-3, seed: int = 0) -> None:
        super().__init__(n_users, n_items, hidden, latent, dropout=dropout, variational=False, reg=reg, init=init,
                         sparse_input=sparse_input, optimizer=optimizer, lr=lr, seed=seed)
