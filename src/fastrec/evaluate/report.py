"""A leaderboard: several models evaluated under one protocol, printed as a table and saved as JSON and Markdown."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fastrec._atomic import write_text_atomically
from fastrec.evaluate._common import RankingResult

__all__ = ["Leaderboard", "LeaderboardRow"]


@dataclass
class LeaderboardRow:
    model: str
    metrics: dict[str, float]
    train_seconds: float | None
    eval_seconds: float
    n_users: int
    n_skipped: int
    notes: str = ""


@dataclass
class Leaderboard:
    """Rows of (model, metric columns, time to train, time to evaluate) under one protocol.

    ``protocol``: a function that evaluates a scorer and returns a :class:`RankingResult`, e.g.
    ``lambda score: full_ranking(score, test, train, ks=20)``; :meth:`run` fits a model, times it, evaluates it.
    """

    title: str
    protocol: Callable[[Any], RankingResult] | None = None
    rows: list[LeaderboardRow] = field(default_factory=list)

    def run(self, name: str, fit: Callable[[], Any], notes: str = "") -> RankingResult:
        """Times ``fit()`` (which returns the scorer the protocol takes), evaluates it, and adds a row."""
        if self.protocol is None:
            raise ValueError("protocol: this leaderboard was built without a protocol; use add()")
        t0 = time.perf_counter()
        scorer = fit()
        train_seconds = time.perf_counter() - t0
        result = self.protocol(scorer)
        self.add(name, result, train_seconds, notes)
        return result

    def add(self, name: str, result: RankingResult, train_seconds: float | None = None, notes: str = "") -> None:
        self.rows.append(LeaderboardRow(name, dict(result.metrics), train_seconds, result.seconds, result.n_users,
                                        result.n_skipped, notes))

    @property
    def columns(self) -> list[str]:
        cols: list[str] = []
        for row in self.rows:
            cols += [c for c in row.metrics if c not in cols]
        return cols

    def _cells(self) -> tuple[list[str], list[list[str]]]:
        cols = self.columns
        head = ["model", *cols, "train s", "eval s", "users"]
        body = []
        for r in self.rows:
            body.append([r.model, *(f"{r.metrics[c]:.4f}" if c in r.metrics else "" for c in cols),
                         "" if r.train_seconds is None else f"{r.train_seconds:.2f}", f"{r.eval_seconds:.2f}",
                         f"{r.n_users}" + (f" ({r.n_skipped} skipped)" if r.n_skipped else "")])
        return head, body

    def to_markdown(self) -> str:
        head, body = self._cells()
        lines = [f"### {self.title}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines) + "\n"

    def to_dict(self) -> dict:
        return {"title": self.title, "rows": [asdict(r) for r in self.rows]}

    def __str__(self) -> str:
        head, body = self._cells()
        widths = [max(len(x) for x in col) for col in zip(head, *body)]
        fmt = "  ".join(f"{{:<{w}}}" for w in widths)
        return "\n".join([self.title, fmt.format(*head), *(fmt.format(*row) for row in body)])

    def save(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Writes ``<path>.json`` and ``<path>.md`` (each atomically); returns both paths."""
        p = Path(path)
        json_path, md_path = p.with_suffix(".json"), p.with_suffix(".md")
        write_text_atomically(json_path, json.dumps(self.to_dict(), indent=2) + "\n")
        write_text_atomically(md_path, self.to_markdown())
        return json_path, md_path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Leaderboard:
        """Reads a leaderboard saved by :meth:`save` (from its .json file)."""
        d = json.loads(Path(path).with_suffix(".json").read_text())
        return cls(d["title"], rows=[LeaderboardRow(**r) for r in d["rows"]])
