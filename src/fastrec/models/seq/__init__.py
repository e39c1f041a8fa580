"""Sequential and session recommenders: SASRec, BERT4Rec, GRU4Rec, Caser.

Every model takes histories of internal item ids (left-padded 2-D arrays with -1 padding, lists of sequences, or
jagged ``(offsets, items)``), exposes ``score(histories, items)``, ``recommend(histories, k)``, ``save``/``load``
(exact round trip) and ``fit(train, valid=..., ...)`` (the loop in :mod:`fastrec.models.seq.train`). Caser built
with ``n_users`` also reads the user id of each history (``users=``).

```python
from fastrec import data
from fastrec.models.seq import SASRec, leave_one_out_cases, sampled_evaluator

x = data.load_user_item_lines("beauty/Beauty.txt", positions_as_timestamps=True)
s = data.leave_one_out(x)
valid, test = leave_one_out_cases(s.train, s.valid, s.test)
neg = data.evaluation_negatives([s.train, s.valid, s.test], 99, seed=0)
model = SASRec(x.n_items)
model.fit(s.train, valid=sampled_evaluator(valid, neg[valid.users]), monitor="ndcg@10")
print(sampled_evaluator(test, neg[test.users])(model))
```
"""

from fastrec.models.seq.bert4rec import BERT4Rec
from fastrec.models.seq.caser import Caser
from fastrec.models.seq._sequences import sequences_of
from fastrec.models.seq.base import SequentialRecommender, load
from fastrec.models.seq.evaluation import Cases, full_evaluator, leave_one_out_cases, sampled_evaluator
from fastrec.models.seq.gru4rec import GRU4Rec
from fastrec.models.seq.sasrec import SASRec
from fastrec.models.seq.train import FitResult, TrainSequences, fit

__all__ = [
    "BERT4Rec",
    "Caser",
    "Cases",
    "FitResult",
    "GRU4Rec",
    "SASRec",
    "SequentialRecommender",
    "TrainSequences",
    "fit",
    "full_evaluator",
    "leave_one_out_cases",
    "load",
    "sampled_evaluator",
    "sequences_of",
]
