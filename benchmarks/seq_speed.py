"""Training throughput of fastrec's SASRec against the plain reference (``fastrec.models.seq.reference``: full-width
batches, explicit attention matrix, Python-drawn negatives) on the same data, interleaved in one process.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/seq_speed.py [--data beauty] [--rounds 3] [--threads 1]

Each round times one full training epoch (batches + forward + backward + Adam step) of every variant, in turn:
``reference``, ``fastrec bucket=1`` (random batches trimmed to their longest sequence) and ``fastrec bucket=16``
(the default: length-bucketed batches). Same model (width 64, 2 blocks, 2 heads, max_len 50, dropout 0.5), same
batch size 256, same optimizer. Prints medians of sequences/s and the speedups, with the load average.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numba
import torch

from fastrec import data
from fastrec.models import seq
from fastrec.models.seq.reference import ReferenceSASRec, reference_batches

DATA = Path(os.environ.get("FASTREC_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
FILES = {"beauty": "beauty/Beauty.txt", "lastfm": "lastfm/LastFM.txt"}
MODEL = dict(max_len=50, dim=64, heads=2, layers=2, dropout=0.5)


def epoch_fastrec(model: seq.SASRec, train: seq.TrainSequences, opt: torch.optim.Optimizer, epoch: int) -> int:
    model.train()
    n = 0
    for batch in model._batches(train, 256, epoch, 0):
        loss, k = model._loss(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += k
    return n


def epoch_reference(model: ReferenceSASRec, sequences: list, n_items: int, opt: torch.optim.Optimizer,
                    epoch: int) -> int:
    model.train()
    n = 0
    for inp, tgt, neg in reference_batches(sequences, n_items, model.max_len, 256, epoch):
        loss = model.loss(inp, tgt, neg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += inp.shape[0]
    return n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", choices=sorted(FILES), default="beauty")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    x = data.load_user_item_lines(DATA / FILES[args.data], positions_as_timestamps=True)
    split = data.leave_one_out(x)
    fast = {b: seq.SASRec(x.n_items, bucket=b, **MODEL) for b in (1, 16)}
    train = fast[1]._prepare(split.train)
    sequences = [train.items[train.offsets[r]:train.offsets[r + 1]] for r in train.rows]
    ref = ReferenceSASRec(x.n_items, **MODEL)
    ref.load_state_dict(fast[1].state_dict())
    opts = {name: torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.9, 0.98))
            for name, m in (("reference", ref), ("fastrec bucket=1", fast[1]), ("fastrec bucket=16", fast[16]))}
    # fastrec's loop uses the fused Adam kernel (part of what it ships); the reference uses torch's default Adam
    for b in (1, 16):
        opts[f"fastrec bucket={b}"] = torch.optim.Adam(fast[b].parameters(), lr=1e-3, betas=(0.9, 0.98), fused=True)
    times: dict[str, list[float]] = {k: [] for k in opts}
    counts: dict[str, int] = {}
    epoch_fastrec(fast[16], train, opts["fastrec bucket=16"], 99)  # warm-up: numba compile/cache load, allocator
    for r in range(args.rounds):
        for name in opts:
            t0 = time.perf_counter()
            if name == "reference":
                counts[name] = epoch_reference(ref, sequences, x.n_items, opts[name], r)
            else:
                counts[name] = epoch_fastrec(fast[int(name.split("=")[1])], train, opts[name], r)
            times[name].append(time.perf_counter() - t0)
            print(f"round {r} {name}: {times[name][-1]:.2f} s", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"data": args.data, "threads": args.threads, "rounds": args.rounds, "sequences_per_epoch": counts,
           "epoch_seconds_median": med, "epoch_seconds_all": times,
           "sequences_per_second": {k: counts[k] / med[k] for k in med},
           "speedup_vs_reference": {k: med["reference"] / med[k] for k in med},
           "load_average": os.getloadavg()}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
