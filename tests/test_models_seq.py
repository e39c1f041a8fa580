"""Sequential models: exact padding masks, agreement with the plain reference, causality, the session-parallel
iterator and Caser's windows, save/load, seeded training, the public API and its input checks, learning on a
synthetic pattern, and the real-data benchmark pipeline (histories aligned with targets and negatives)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from conftest import CUDA

from fastrec import data
from fastrec.models import seq
from fastrec.models.seq._sequences import as_jagged, length_batches, pad_left
from fastrec.models.seq._transformer import TransformerEncoder
from fastrec.models.seq.gru4rec import session_parallel
from fastrec.models.seq.reference import ReferenceSASRec, python_negatives
from fastrec.models.seq.train import lr_factor, make_optimizer

N_ITEMS = 40
MODELS = [
    (seq.SASRec, dict(max_len=12, dim=16, heads=2, layers=2, dropout=0.2)),
    (seq.BERT4Rec, dict(max_len=12, dim=16, heads=2, layers=2, dropout=0.2)),
    (seq.GRU4Rec, dict(max_len=12, dim=16, hidden=24, dropout=0.2, n_sample=8)),
    (seq.GRU4Rec, dict(max_len=12, dim=16, hidden=16, dropout=0.2, n_sample=8, tied=True)),
    (seq.Caser, dict(max_len=5, dim=16, n_h=4, n_v=2, dropout=0.2)),
    (seq.Caser, dict(max_len=5, dim=16, n_h=4, n_v=2, dropout=0.2, n_users=60)),
]
IDS = ["sasrec", "bert4rec", "gru4rec", "gru4rec-tied", "caser", "caser-users"]
USERS = np.arange(9) * 5  # user ids of histories() for the models with user embeddings


def histories(n: int = 9, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.choice(N_ITEMS, size=rng.integers(1, 20), replace=False) for _ in range(n)]


def synthetic_interactions(n_users: int = 60, length: int = 8, seed: int = 0) -> data.Interactions:
    """Users walking the item cycle 0 -> 1 -> ... -> N_ITEMS-1 -> 0 from random starts, positions as timestamps."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, N_ITEMS, n_users)
    users = np.repeat(np.arange(n_users), length)
    items = (starts[:, None] + np.arange(length)[None, :]).reshape(-1) % N_ITEMS
    pos = np.tile(np.arange(length), n_users)
    return data.Interactions.from_arrays(users, items, timestamps=pos, user_ids="identity", item_ids="identity",
                                         n_users=n_users, n_items=N_ITEMS)


# ---------------------------------------------------------------------------------------------------- inputs
def test_history_forms_agree():
    hs = histories()
    padded = pad_left(*as_jagged(hs), 30)
    right = np.full_like(padded, -1)
    for r, h in enumerate(hs):
        right[r, :h.size] = h
    for form in (padded, torch.from_numpy(right), as_jagged(hs)):
        off, items = as_jagged(form)
        assert np.array_equal(off, as_jagged(hs)[0]) and np.array_equal(items, np.concatenate(hs))
    trimmed = pad_left(*as_jagged(hs), 5, trim=True)
    assert trimmed.shape == (len(hs), 5)
    for r, h in enumerate(hs):
        assert list(trimmed[r][trimmed[r] >= 0]) == list(h[-5:])


def test_length_batches_cover_every_row_once():
    lengths = np.random.default_rng(1).integers(1, 50, 1000)
    for bucket in (1, 4):
        batches = length_batches(lengths, 64, np.random.default_rng(0), bucket)
        assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(1000))
    # bucketing groups similar lengths: far less padding than random batches
    pad = {b: sum(lengths[x].max() * x.size - lengths[x].sum()
                  for x in length_batches(lengths, 64, np.random.default_rng(0), b)) for b in (1, 16)}
    assert pad[16] < pad[1] / 5


def test_sequences_of_merges_parts_in_time_order():
    x = synthetic_interactions(n_users=5, length=6)
    s = data.leave_one_out(x)
    off, items = seq.sequences_of(s.train, s.valid, s.test)
    ref_off, ref_items = x.sequences()
    assert np.array_equal(off, ref_off) and np.array_equal(items, ref_items)
    valid, test = seq.leave_one_out_cases(s.train, s.valid, s.test)
    assert np.array_equal(test.targets, ref_items[ref_off[1:] - 1])
    assert np.array_equal(np.diff(test.offsets), np.diff(ref_off) - 1)
    assert np.array_equal(valid.targets, ref_items[ref_off[1:] - 2])


# ---------------------------------------------------------------------------------------------------- masks
@pytest.mark.parametrize("causal", [True, False])
def test_encoder_padding_is_exact(causal):
    """Real positions give the same outputs whatever padding surrounds them (float64, to rounding)."""
    torch.manual_seed(0)
    enc = TransformerEncoder(16, 2, 2, 32, 0.0, 0.0, "gelu", causal).double().eval()
    x = torch.randn(3, 7, 16, dtype=torch.float64)
    valid = torch.ones(3, 7, dtype=torch.bool)
    valid[0, :4] = False
    valid[1, :1] = False
    ref = [enc(x[b:b + 1][:, valid[b]], torch.ones(1, int(valid[b].sum()), dtype=torch.bool)) for b in range(3)]
    out = enc(x, valid)
    noisy = x.clone()
    noisy[~valid] = 1e3 * torch.randn(int((~valid).sum()), 16, dtype=torch.float64)
    out2 = enc(noisy, valid)
    for b in range(3):
        torch.testing.assert_close(out[b][valid[b]], ref[b][0], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(out2[b][valid[b]], ref[b][0], rtol=1e-10, atol=1e-10)
    assert torch.isfinite(out).all()


def test_sasrec_matches_the_explicit_attention_reference():
    model = seq.SASRec(N_ITEMS, max_len=10, dim=16, heads=2, layers=2, dropout=0.0, seed=3).double().eval()
    ref = ReferenceSASRec(N_ITEMS, max_len=10, dim=16, heads=2, layers=2, dropout=0.0).double().eval()
    ref.load_state_dict(model.state_dict())
    padded = torch.from_numpy(pad_left(*as_jagged(histories()), 10))
    with torch.no_grad():
        got, want = model.sequence_output(padded), ref.sequence_output(padded)
        valid = padded >= 0
        torch.testing.assert_close(got[valid], want[valid], rtol=1e-10, atol=1e-10)
        # trimming all-padding columns (what training batches do) changes nothing
        trimmed = torch.from_numpy(pad_left(*as_jagged(histories()), 10, trim=True))
        assert trimmed.shape[1] == 10 or trimmed.shape[1] < padded.shape[1]
        torch.testing.assert_close(model.sequence_output(trimmed)[:, -1], want[:, -1], rtol=1e-10, atol=1e-10)


def test_sasrec_is_causal():
    model = seq.SASRec(N_ITEMS, max_len=10, dim=16, heads=2, dropout=0.0).double().eval()
    a = torch.tensor([[3, 5, 7, 9, 11, 13]])
    b = a.clone()
    b[0, 4:] = torch.tensor([1, 2])
    with torch.no_grad():
        torch.testing.assert_close(model.sequence_output(a)[:, :4], model.sequence_output(b)[:, :4])


@pytest.mark.parametrize("cls,kw", MODELS, ids=IDS)
def test_scores_do_not_depend_on_batch_padding(cls, kw):
    model = cls(N_ITEMS, **kw)
    hs = histories()
    cand = torch.arange(N_ITEMS)
    together = model.score(hs, cand, users=USERS)
    for r, h in enumerate(hs):
        torch.testing.assert_close(model.score([h], cand, users=USERS[r:r + 1])[0], together[r], rtol=1e-5,
                                   atol=1e-5)
    torch.testing.assert_close(model.full_scores(hs, users=USERS), together)


@pytest.mark.parametrize("tied", [False, True])
def test_gru4rec_encode_equals_a_step_loop(tied):
    model = seq.GRU4Rec(N_ITEMS, max_len=30, dim=12, hidden=12, tied=tied).double().eval()
    assert (model.item_emb is None) == tied
    inputs = model.out_emb if tied else model.item_emb  # tied: the output item vectors are also the inputs
    hs = histories()
    got = model.full_scores(hs)
    w, b = model.output_vectors()
    for r, h in enumerate(hs):
        state = torch.zeros(1, 1, 12, dtype=torch.float64)
        for item in h:
            _, state = model.gru(inputs(torch.tensor([[item]])), state)
        torch.testing.assert_close(got[r], state[0, 0] @ w.t() + b)


def test_gru4rec_loss_weighs_every_event_alike_in_any_step():
    """A step's loss is its events' cross-entropies summed and divided by batch_size: the last steps of an epoch,
    when no session is left to start, hold fewer events, and each weighs as much as an event of a full step (a mean
    per step would weigh it up to batch_size times more). Reference: each event's state from ``encode`` over its
    session's prefix, its candidates the step's targets and negatives."""
    model = seq.GRU4Rec(N_ITEMS, max_len=30, dim=8, hidden=8, loss="softmax", n_sample=5).double().eval()
    train = model._prepare(histories(n=20))
    steps = list(model._batches(train, 8, 0, 0))
    assert {s.slots for s in steps} == {8} and min(s.inputs.numel() for s in steps) < 8
    w, bias = model.output_vectors()
    prefixes: list[list[int]] = []
    with torch.no_grad():
        for step in steps:
            prefixes = [[int(i)] if c < 0 else prefixes[c] + [int(i)] for i, c in zip(step.inputs, step.carry)]
            h = model.encode(model._padded(prefixes))
            cand = torch.cat([step.targets, step.negatives])
            logits = h @ w[cand].t() + bias[cand]
            for r, t in enumerate(step.targets.tolist()):  # the row's target among the others: no negative
                logits[r, (cand == t) & (torch.arange(cand.numel()) != r)] = float("-inf")
            want = torch.nn.functional.cross_entropy(logits, torch.arange(len(prefixes)), reduction="sum") / 8
            torch.testing.assert_close(model._loss(step)[0], want, rtol=1e-10, atol=0)


# ---------------------------------------------------------------------------------------------------- training data
def test_session_parallel_trains_every_event_once_with_correct_state_carry():
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, 9, 37)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    rows = np.arange(37)
    seen = []
    slot_session: list[int] = []
    prev_pos = None
    for pos, carry, started in session_parallel(offsets, rows, 8, np.random.default_rng(1)):
        assert (carry == -1).sum() == started
        session = np.searchsorted(offsets, pos, side="right") - 1
        for b in range(pos.size):
            assert pos[b] + 1 < offsets[session[b] + 1]  # a next item exists
            if carry[b] >= 0:  # continues the previous step's row: same session, next event
                assert session[b] == slot_session[carry[b]] and pos[b] == prev_pos[carry[b]] + 1
            else:
                assert pos[b] == offsets[session[b]]
        slot_session, prev_pos = list(session), pos
        seen.extend(pos.tolist())
    expected = [p for s in rows for p in range(offsets[s], offsets[s + 1] - 1)]
    assert sorted(seen) == expected


def test_bert4rec_cloze_batches():
    model = seq.BERT4Rec(N_ITEMS, max_len=8, mask_prob=0.3, last_prob=0.5)
    train = model._prepare(synthetic_interactions())
    for tokens, labels, _ in model._batches(train, 16, 0, 0):
        masked = tokens == model.mask_token
        assert torch.equal(masked, labels >= 0)
        assert masked.any(dim=1).all()
        assert (labels[masked] < N_ITEMS).all() and (tokens[~masked] <= N_ITEMS).all()


@pytest.mark.parametrize("random_windows", [False, True])
def test_bert4rec_windows_of_long_sequences(random_windows):
    """A training row is a run of consecutive items of its sequence: always the last ``max_len`` by default; with
    ``random_windows`` a run ending anywhere from the ``max_len``-th item on, so over the epochs every item trains."""
    model = seq.BERT4Rec(N_ITEMS, max_len=8, random_windows=random_windows)
    x = synthetic_interactions(n_users=1, length=30)  # one user walking 30 consecutive items of the cycle
    offsets, items = seq.sequences_of(x)
    train = model._prepare(x)
    starts = set()
    for epoch in range(200):
        (tokens, labels, _), = model._batches(train, 8, epoch, 0)
        row = torch.where(labels >= 0, labels, tokens - 1)[0]  # the window's items, masks filled in
        start = int(np.flatnonzero(items == int(row[0]))[0])
        assert row.tolist() == items[start:start + 8].tolist()
        starts.add(start)
    assert starts == (set(range(30 - 8 + 1)) if random_windows else {30 - 8})


def test_bert4rec_loss_weighs_every_masked_item_alike_in_any_batch():
    """The cloze loss adds up over rows: a batch's loss times its rows is the sum of its parts' (a mean over each
    batch's masked items would weigh the items of a batch of short sequences more than those of long ones)."""
    model = seq.BERT4Rec(N_ITEMS, max_len=12, dim=16, mask_prob=0.5, dropout=0.0).double().eval()
    with torch.no_grad():
        model.out_bias.normal_(generator=torch.Generator().manual_seed(0))  # items' losses far apart
    train = model._prepare(histories(n=40))
    (tokens, labels, per_row), = model._batches(train, 40, 0, 0)
    short = (tokens > 0).sum(1) <= 6
    assert 0 < int(short.sum()) < 40
    with torch.no_grad():
        whole = model._loss((tokens, labels, per_row))[0] * 40
        parts = sum(model._loss((tokens[m], labels[m], per_row))[0] * int(m.sum()) for m in (short, ~short))
    torch.testing.assert_close(whole, parts, rtol=1e-10, atol=0)


@pytest.mark.parametrize("loss", ["bce", "softmax"])
def test_sasrec_loss_weighs_every_position_alike_in_any_batch(loss):
    """SASRec's loss adds up over rows, as BERT4Rec's does: a batch's loss times its rows is the sum of its parts'
    (a mean over each batch's positions would weigh the positions of a batch of short sequences more)."""
    model = seq.SASRec(N_ITEMS, max_len=12, dim=16, dropout=0.0, loss=loss).double().eval()
    train = model._prepare(histories(n=40))
    (inp, tgt, neg, per_row), = model._batches(train, 40, 0, 0)
    assert per_row == pytest.approx(float((np.minimum(train.lengths, 13) - 1).mean()))
    n = inp.shape[0]
    short = (tgt >= 0).sum(1) <= 6
    assert 0 < int(short.sum()) < n
    with torch.no_grad():
        whole = model._loss((inp, tgt, neg, per_row))[0] * n
        parts = sum(model._loss((inp[m], tgt[m], None if neg is None else neg[m], per_row))[0] * int(m.sum())
                    for m in (short, ~short))
    torch.testing.assert_close(whole, parts, rtol=1e-10, atol=0)


def test_python_negatives_and_numba_sampler_exclude_the_user_items():
    import random
    items = {1, 2, 3}
    assert not items & set(python_negatives(items, 6, 50, random.Random(0)))
    model = seq.SASRec(N_ITEMS, max_len=8)
    train = model._prepare(synthetic_interactions())
    n = 0
    for inp, tgt, neg, _ in model._batches(train, 16, 0, 0):
        assert neg.shape == tgt.shape
        for r in range(inp.shape[0]):  # the whole 8-item sequence is in the row: inp plus the last target
            user_items = set(inp[r][inp[r] >= 0].tolist()) | set(tgt[r][tgt[r] >= 0].tolist())
            assert len(user_items) == 8 and not user_items & set(neg[r][tgt[r] >= 0].tolist())
            n += 1
    assert n == 60

def test_caser_windows_cover_every_target_with_the_items_before_it():
    """Each window holds the L items before its first target (left-padded at the sequence start) and the next T items
    (-1 past the end); together the windows predict every item but a sequence's first; negatives avoid the user's
    items; the users are the sequences' rows."""
    lengths = [8, 2, 3, 4, 1]
    rng = np.random.default_rng(0)
    seqs = [rng.choice(N_ITEMS, size=n, replace=False) for n in lengths]
    model = seq.Caser(N_ITEMS, max_len=3, targets=3, n_users=5)
    train = model._prepare(seqs)
    covered = {u: set() for u in range(5)}
    n_windows = 0
    for inp, users, tgt, neg, _ in model._batches(train, 4, 0, 0):
        for x, u, t, ng in zip(inp.tolist(), users.tolist(), tgt.tolist(), neg.tolist()):
            s = list(seqs[u])
            real = [i for i in x if i >= 0]
            first = len(s[:s.index(t[0])])
            assert first >= 1 and real == s[max(0, first - 3):first] and x[:3 - len(real)] == [-1] * (3 - len(real))
            want = s[first:first + 3]
            assert t == want + [-1] * (3 - len(want))
            assert not set(ng) & set(s)
            covered[u].update(range(first, first + len(want)))
            n_windows += 1
    assert n_windows == 5 + 1 + 1 + 1  # rows of n > T items: n - T windows; shorter rows: one; a 1-item row: none
    assert all(covered[u] == set(range(1, n)) for u, n in enumerate(lengths))


def test_caser_loss_weighs_every_target_alike_in_any_batch():
    """Caser's loss adds up over windows, as SASRec's does: a batch's loss times its windows is the sum of its
    parts' (a mean over each batch's targets would weigh the targets of a batch of windows that hold fewer than T
    targets more)."""
    model = seq.Caser(N_ITEMS, max_len=3, dim=16, n_h=4, n_v=2, dropout=0.0, n_users=40).double().eval()
    with torch.no_grad():
        model.out_bias.normal_(generator=torch.Generator().manual_seed(0))  # targets' losses far apart
    train = model._prepare(histories(n=40))
    (inp, users, tgt, neg, per_row), = model._batches(train, 1000, 0, 0)
    n = inp.shape[0]
    short = (tgt >= 0).sum(1) < 3
    assert 0 < int(short.sum()) < n
    assert per_row == pytest.approx(float((tgt >= 0).sum()) / n)
    with torch.no_grad():
        whole = model._loss((inp, users, tgt, neg, per_row))[0] * n
        parts = sum(model._loss((inp[m], users[m], tgt[m], neg[m], per_row))[0] * int(m.sum())
                    for m in (short, ~short))
    torch.testing.assert_close(whole, parts, rtol=1e-10, atol=0)


def test_caser_user_ids():
    model = seq.Caser(N_ITEMS, max_len=4, dim=8, n_users=6).eval()
    h = [[1, 2, 3]] * 3
    s = model.score(h, [4, 5], users=[0, 1, 5])
    assert not torch.equal(s[0], s[1])  # the user term matters
    torch.testing.assert_close(s[0], model.score(h[:1], [4, 5], users=np.array([0]))[0])
    full = model.full_scores(h, users=[0, 1, 5])
    full[:, [1, 2, 3]] = float("-inf")
    _, items = model.recommend(h, k=2, users=[0, 1, 5], block_size=2)
    assert torch.equal(items, full.topk(2, dim=1).indices)
    with pytest.raises(ValueError, match="pass users="):
        model.score(h, [4])
    with pytest.raises(ValueError, match="out of range"):
        model.full_scores(h, users=[0, 1, 6])
    with pytest.raises(ValueError, match="one per history"):
        model.recommend(h, k=2, users=[0, 1])
    with pytest.raises(ValueError, match="n_users=6"):
        model.fit([[1, 2]] * 7, epochs=1, progress=False)
    # the evaluators hand each case's user to the model
    x = synthetic_interactions(n_users=6)
    split = data.leave_one_out(x)
    _, test = seq.leave_one_out_cases(split.train, split.valid, split.test)
    neg = np.tile(np.arange(10, 15), (len(test), 1))
    got = seq.sampled_evaluator(test, neg, ks=1, metrics=("hr",))(model)
    hist = [test.items[test.offsets[c]:test.offsets[c + 1]] for c in range(len(test))]
    cand = np.concatenate([test.targets[:, None], neg], axis=1)
    scores = model.score(hist, cand, users=test.users)
    assert got["hr@1"] == pytest.approx(float((scores[:, 0] > scores[:, 1:].max(1).values).float().mean()))
    assert seq.SASRec(N_ITEMS).score(h, [4], users=[0, 1, 2]).shape == (3, 1)  # ignored without user embeddings


# ---------------------------------------------------------------------------------------------------- API
@pytest.mark.parametrize("cls,kw", MODELS, ids=IDS)
def test_save_load_round_trip_is_exact(cls, kw, tmp_path):
    model = cls(N_ITEMS, seed=5, **kw)
    model.fit(synthetic_interactions(), epochs=1, batch_size=16, progress=False)
    path = tmp_path / "m.pt"
    model.save(path)
    back = seq.load(path)
    assert type(back) is cls and back.config == model.config
    for k, v in model.state_dict().items():
        assert torch.equal(v, back.state_dict()[k])
    hs = histories()
    assert torch.equal(back.full_scores(hs, users=USERS), model.full_scores(hs, users=USERS))
    assert torch.equal(cls.load(path).score(hs, torch.arange(5), users=USERS),
                       model.score(hs, torch.arange(5), users=USERS))
    other = seq.SASRec if cls is not seq.SASRec else seq.GRU4Rec
    with pytest.raises(TypeError, match="not a"):
        other.load(path)


@pytest.mark.parametrize("cls,kw", MODELS, ids=IDS)
def test_training_repeats_with_a_seed(cls, kw):
    x = synthetic_interactions()
    a, b = cls(N_ITEMS, seed=1, **kw), cls(N_ITEMS, seed=1, **kw)
    ra = a.fit(x, epochs=2, batch_size=16, seed=7, progress=False)
    rb = b.fit(x, epochs=2, batch_size=16, seed=7, progress=False)
    assert [h["loss"] for h in ra.history] == [h["loss"] for h in rb.history]
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    c = cls(N_ITEMS, seed=1, **kw)
    c.fit(x, epochs=1, batch_size=16, seed=8, progress=False)
    assert any(not torch.equal(v, c.state_dict()[k]) for k, v in a.state_dict().items())


def test_lr_warmup_and_linear_decay():
    assert [lr_factor(s, 0, 4, 10, "none") for s in (0, 4, 9, 50)] == [0.1, 0.5, 1.0, 1.0]
    assert [lr_factor(50, e, 4, 10, "linear") for e in range(4)] == [1.0, 0.75, 0.5, 0.25]
    assert lr_factor(0, 0, 4, 0, "none") == 1.0 and lr_factor(4, 2, 4, 10, "linear") == 0.25
    # fit applies it: with a warmup far longer than the run every step is tiny
    x = synthetic_interactions()
    start = seq.SASRec(N_ITEMS, seed=1, max_len=8, dim=16).state_dict()
    moved = {}
    for warmup in (0, 10**9):
        model = seq.SASRec(N_ITEMS, seed=1, max_len=8, dim=16)
        model.fit(x, epochs=2, batch_size=16, warmup_steps=warmup, lr_decay="linear", progress=False)
        moved[warmup] = max(float((v - start[k]).abs().max()) for k, v in model.state_dict().items())
    assert moved[0] > 1e-4 and moved[10**9] < 1e-9


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adamw_decays_all_but_layernorm_weights_and_biases(optimizer):
    """With zero gradients, one step of AdamW (decoupled decay) scales exactly the decayed weights by 1 - lr *
    weight_decay and leaves the LayerNorm weights and the biases alone; Adam's L2 term moves every parameter."""
    model = seq.BERT4Rec(N_ITEMS, max_len=8, dim=16).double()
    with torch.no_grad():  # no zero parameter (zero-initialized biases would not move under L2 either)
        for p in model.parameters():
            p.normal_(generator=torch.Generator().manual_seed(0))
    (opt,) = make_optimizer(model, lr=0.1, betas=(0.9, 0.98), weight_decay=0.5, optimizer=optimizer)
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    kept = {k for k in before if k.endswith("bias") or ".ln" in k or k.startswith(("emb_ln", "head.2"))}
    assert {"out_bias", "emb_ln.weight", "encoder.blocks.0.ln1.weight", "head.2.weight"} <= kept
    for k, p in model.named_parameters():
        if optimizer == "adam":
            assert not torch.equal(p, before[k]), k
        elif k in kept:
            assert torch.equal(p, before[k]), k
        else:
            torch.testing.assert_close(p, before[k] * (1 - 0.1 * 0.5), rtol=1e-12, atol=0)


def test_recommend_excludes_history_and_orders_scores():
    model = seq.SASRec(N_ITEMS, max_len=12, dim=16)
    hs = histories()
    scores, items = model.recommend(hs, k=5)
    full = model.full_scores(hs)
    for r, h in enumerate(hs):
        assert not set(items[r].tolist()) & set(h.tolist())
        torch.testing.assert_close(scores[r], full[r, items[r]])
        assert (scores[r][:-1] >= scores[r][1:]).all()
    _, with_seen = model.recommend(hs, k=5, exclude_history=False)
    assert torch.equal(with_seen, full.topk(5, dim=1).indices)


def test_bad_input_raises():
    model = seq.SASRec(N_ITEMS, max_len=12, dim=16)
    with pytest.raises(ValueError, match="out of range"):
        model.score([[1, N_ITEMS]], [0])
    with pytest.raises(ValueError, match="items: id out of range"):
        model.score([[1, 2]], [N_ITEMS])
    with pytest.raises(ValueError, match="k must be"):
        model.recommend([[1, 2]], k=0)
    with pytest.raises(ValueError, match="2-D"):
        model.score(np.zeros((2, 2, 2), np.int64), [0])
    with pytest.raises(ValueError, match="loss must be"):
        seq.SASRec(N_ITEMS, loss="hinge")
    with pytest.raises(ValueError, match="loss must be"):
        seq.GRU4Rec(N_ITEMS, loss="bpr")
    with pytest.raises(ValueError, match="dim must equal hidden"):
        seq.GRU4Rec(N_ITEMS, dim=8, hidden=12, tied=True)
    with pytest.raises(ValueError, match="divisible"):
        seq.SASRec(N_ITEMS, dim=10, heads=3)
    with pytest.raises(ValueError, match="n_items"):
        seq.SASRec(0)
    with pytest.raises(ValueError, match="out of range"):
        model.fit([[1, 2, N_ITEMS + 3]], epochs=1, progress=False)
    with pytest.raises(ValueError, match="monitor|checkpoint"):
        model.fit(synthetic_interactions(), epochs=1, checkpoint="x.pt", progress=False)
    with pytest.raises(ValueError, match="n_h must be"):
        seq.Caser(N_ITEMS, n_h=0)
    with pytest.raises(ValueError, match="dropout"):
        seq.Caser(N_ITEMS, dropout=1.0)
    with pytest.raises(ValueError, match="lr_decay must be"):
        model.fit(synthetic_interactions(), epochs=1, lr_decay="cosine", progress=False)
    with pytest.raises(ValueError, match="warmup_steps must be"):
        model.fit(synthetic_interactions(), epochs=1, warmup_steps=-1, progress=False)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        model.fit(synthetic_interactions(), epochs=1, optimizer="sgd", progress=False)


# ---------------------------------------------------------------------------------------------------- learning
@pytest.mark.parametrize("cls,kw,fit_kw,hr1", [
    (seq.SASRec, dict(max_len=8, dim=32, heads=2, dropout=0.1), dict(epochs=20, lr=1e-2), 0.9),
    (seq.SASRec, dict(max_len=8, dim=32, heads=2, dropout=0.1, loss="softmax"), dict(epochs=20, lr=5e-3), 0.9),
    (seq.BERT4Rec, dict(max_len=8, dim=32, heads=2, dropout=0.1), dict(epochs=40, lr=5e-3), 0.7),
    (seq.GRU4Rec, dict(max_len=8, dim=32, hidden=32, n_sample=16, loss="softmax"), dict(epochs=15, lr=1e-2), 0.9),
    (seq.GRU4Rec, dict(max_len=8, dim=32, hidden=32, n_sample=16, loss="bpr-max"), dict(epochs=15, lr=1e-2), 0.9),
    (seq.GRU4Rec, dict(max_len=8, dim=32, hidden=32, n_sample=16, loss="top1-max"), dict(epochs=15, lr=1e-2), 0.9),
    # T = 1: with T = 3 the items 1, 2 and 3 steps ahead are all positives and tie for the top spot
    (seq.Caser, dict(max_len=3, dim=32, n_h=8, n_v=4, dropout=0.1, n_users=120, targets=1), dict(epochs=20, lr=1e-2),
     0.9),
], ids=["sasrec-bce", "sasrec-softmax", "bert4rec", "gru4rec-ce", "gru4rec-bpr-max", "gru4rec-top1-max", "caser"])
def test_models_learn_a_deterministic_sequence(cls, kw, fit_kw, hr1, tmp_path):
    """Items follow a cycle: after item i comes i + 1 (random guessing: HR@1 ~ 1/33, HR@5 ~ 5/33). Early stopping
    on a validation split, the best model kept and checkpointed."""
    x = synthetic_interactions(n_users=120)
    s = data.leave_one_out(x)
    valid, test = seq.leave_one_out_cases(s.train, s.valid, s.test)
    model = cls(N_ITEMS, **kw)
    res = model.fit(s.train, valid=seq.full_evaluator(valid, ks=1, metrics=("hr",)), monitor="hr@1", batch_size=32,
                    patience=50, progress=False, checkpoint=tmp_path / "best.pt", **fit_kw)
    assert res.best["hr@1"] == max(h["hr@1"] for h in res.history)
    got = seq.full_evaluator(test, ks=(1, 5), metrics=("hr",))(model)
    assert got["hr@1"] > hr1 and got["hr@5"] > 0.95
    assert torch.equal(seq.load(tmp_path / "best.pt").full_scores([[1, 2]], users=[0]),
                       model.full_scores([[1, 2]], users=[0]))


@CUDA
@pytest.mark.parametrize("cls,kw", MODELS, ids=IDS)
def test_cuda_matches_cpu(cls, kw):
    """The same weights give the same scores and recommendations on a GPU; a short fit runs there."""
    model = cls(N_ITEMS, **kw)
    hs = histories()
    other = cls(N_ITEMS, **kw).to("cuda")
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(other.full_scores(hs, users=USERS).cpu(), model.full_scores(hs, users=USERS),
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(other.score(hs, torch.arange(5), users=USERS).cpu(),
                               model.score(hs, torch.arange(5), users=USERS), rtol=1e-4, atol=1e-4)
    assert other.recommend(hs, k=3, users=USERS)[1].device.type == "cuda"
    s = data.leave_one_out(synthetic_interactions())
    valid, _ = seq.leave_one_out_cases(s.train, s.valid, s.test)
    res = other.fit(s.train, valid=seq.full_evaluator(valid, ks=5, metrics=("hr",)), monitor="hr@5", epochs=2,
                    batch_size=16, progress=False)
    assert len(res.history) == 2 and np.isfinite(res.history[-1]["loss"])


# ---------------------------------------------------------------------------------------------------- real data
@functools.cache
def _benchmark_module():
    """benchmarks/quality/seq_models.py, loaded once."""
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "quality" / "seq_models.py"
    spec = importlib.util.spec_from_file_location("seq_models_benchmark", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _CountScorer:
    """History-based scorer for the pipeline check: item j scores the number of training sequences holding j and
    each history item (co-occurrence, divided by sqrt(popularity)), or popularity alone (``cooc=False``)."""

    def __init__(self, offsets: np.ndarray, items: np.ndarray, n_items: int, cooc: bool) -> None:
        rows = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
        x = sp.csr_matrix((np.ones(items.size), (rows, items)), shape=(offsets.size - 1, n_items))
        self.pop = np.asarray(x.sum(0)).ravel()
        self.c = (x.T @ x).tocsr() if cooc else None
        self.n_items, self.max_len, self.n_users = n_items, 50, 0

    def score(self, histories, items, users=None):
        off, it = as_jagged(histories)
        items = np.asarray(items)
        if self.c is None:
            return torch.from_numpy(self.pop[items])
        h = sp.csr_matrix((np.ones(it.size), it, off), shape=(off.size - 1, self.n_items))
        s = (h @ self.c).toarray() / np.sqrt(self.pop + 1)
        return torch.from_numpy(np.take_along_axis(s, items, axis=1))


@pytest.mark.skipif(not (_benchmark_module().DATA / "lastfm" / "LastFM_sample.txt").exists(),
                    reason="LastFM data not available")
def test_lastfm_benchmark_pipeline_aligns_histories_targets_and_negatives():
    """The benchmark's LastFM cases against the raw files: each test case's history is the user's line minus its last
    item, the target that last item, the negatives the user's row of LastFM_sample.txt (never one of the user's
    items). A history-based co-occurrence scorer through the same evaluator beats popularity by far (it would not
    if histories and negatives were misaligned); that is what SASRec/BERT4Rec need to learn on this data."""
    bench = _benchmark_module()
    lines = {int(line.split()[0]): [int(t) for t in line.split()[1:]]
             for line in (bench.DATA / "lastfm" / "LastFM.txt").read_text().splitlines() if line.strip()}
    negs = {int(line.split()[0]): [int(t) for t in line.split()[1:]]
            for line in (bench.DATA / "lastfm" / "LastFM_sample.txt").read_text().splitlines() if line.strip()}
    _, valid, test, neg = bench.leave_one_out_data("lastfm")
    train, n_items, evals, _ = bench.beauty_or_lastfm("lastfm")
    assert len(test) == len(lines) == 1090
    for c, u in enumerate(test.users):
        assert test.items[test.offsets[c]:test.offsets[c + 1]].tolist() == lines[u][:-1]
        assert test.targets[c] == lines[u][-1] and valid.targets[c] == lines[u][-2]
        assert neg[u].tolist() == negs[u] and not set(negs[u]) & set(lines[u])
    off, items = seq.sequences_of(train)
    got = {name: evals["test"](_CountScorer(off, items, n_items, cooc)) for name, cooc in (("pop", False),
                                                                                          ("cooc", True))}
    assert got["pop"]["hr@10"] < 0.32 and got["cooc"]["hr@10"] > 0.45
    assert got["cooc"]["ndcg@10"] > got["pop"]["ndcg@10"] + 0.1
