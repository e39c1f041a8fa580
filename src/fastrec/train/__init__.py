"""fastrec.train: a small fit / evaluate / predict loop for pointwise CTR and multi-task models.

Mixed optimizers: embedding tables are updated by their fused sparse optimizer inside the backward (see
:mod:`fastrec.optim`); every other parameter by Adam(W). Warm-up and cosine learning-rate schedules scale both.
"""

from fastrec.train.trainer import Trainer, seed_everything

__all__ = ["Trainer", "seed_everything"]
