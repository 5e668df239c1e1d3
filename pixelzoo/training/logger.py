"""Metrics of a run: ``metrics.jsonl`` (one JSON object per line) and TensorBoard events (TensorBoard is a
dependency; a broken install without it still writes ``metrics.jsonl``)."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

from ..io import atomic_write_bytes


def parse_rows(path: str | Path) -> tuple[list[dict], list[str]]:
    """The rows of a ``metrics.jsonl`` and a message for each line skipped (naming the file and the
    line): not JSON (e.g. cut short by a kill), or not an object with an integer ``step``."""
    path = Path(path)
    rows, skipped = [], []
    with open(path, errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                skipped.append(f"{path}, line {lineno}: not valid JSON ({e.msg}), skipped: {line.strip()[:80]!r}")
                continue
            if not isinstance(row, dict) or isinstance(row.get("step"), bool) or not isinstance(row.get("step"), int):
                skipped.append(f"{path}, line {lineno}: not a JSON object with an integer 'step', skipped: "
                               f"{line.strip()[:80]!r}")
                continue
            rows.append(row)
    return rows, skipped


def is_final(row: dict) -> bool:
    """A row of a final evaluation (``test_bpd_full``, ``test_loss_full``)."""
    return any(k.endswith("_full") for k in row)


class MetricsLogger:
    def __init__(self, run_dir: str | Path, tensorboard: bool = True):
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tensorboard = tensorboard
        self.writer = None  # opened at the first row, after keep_until has said where a resumed run restarts
        self._purge_step = None

    def _tensorboard_writer(self):
        if self.writer is None and self.tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self.tensorboard = False
                return None
            # purge_step: TensorBoard drops the events a killed run logged past the resumed checkpoint
            self.writer = SummaryWriter(str(self.path.parent / "tensorboard"), purge_step=self._purge_step)
        return self.writer

    def log(self, step: int, **values) -> None:
        row = {"step": step, **{k: (round(v, 6) if isinstance(v, float) else v) for k, v in values.items()}}
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a Trainer built on a directory not made yet
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
            f.flush()
        writer = self._tensorboard_writer()
        if writer is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)):
                    writer.add_scalar(k, v, step)
            writer.flush()

    def read(self) -> list[dict]:
        """The rows logged; a broken line is skipped with a warning naming the file and the line."""
        if not self.path.is_file():
            return []
        rows, skipped = parse_rows(self.path)
        for message in skipped:
            warnings.warn(message, stacklevel=2)
        return rows

    def drop(self, keep, why: str) -> int:
        """Rewrite ``metrics.jsonl`` atomically with only the rows ``keep(row)`` accepts (and no broken
        line); returns how many rows went (said on stderr when some did, with ``why``)."""
        if not self.path.is_file():
            return 0
        rows, skipped = parse_rows(self.path)
        kept = [r for r in rows if keep(r)]
        gone = len(rows) - len(kept)
        if gone or skipped:
            atomic_write_bytes("".join(json.dumps(r) + "\n" for r in kept).encode(), self.path)
        if gone:
            print(f"pixelzoo: {self.path}: dropped {gone} row(s) {why}", file=sys.stderr, flush=True)
        for message in skipped:
            print(f"pixelzoo: {message} (removed)", file=sys.stderr, flush=True)
        return gone

    def keep_until(self, step: int) -> int:
        """On resume from the checkpoint of ``step``: drop the rows past it (logged after it, by a run
        killed before its next checkpoint), so each step is logged once, in TensorBoard too."""
        if self.writer is None:
            self._purge_step = step + 1
        return self.drop(lambda r: r["step"] <= step, f"past the checkpoint's step {step}")

    def log_final(self, step: int, **values) -> None:
        """Log a final evaluation at ``step``, superseding an earlier one at that step (a finished run resumed)."""
        self.drop(lambda r: not (r["step"] == step and is_final(r)), f"of an earlier final evaluation at step {step}")
        self.log(step, **values)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
