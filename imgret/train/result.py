"""What a run hands back: its result, or the interruption that stopped it."""

from __future__ import annotations

from dataclasses import dataclass

from imgret.errors import TrainingError


class TrainingInterrupted(TrainingError):
    """Training stopped on Ctrl-C; ``last_path`` is a checkpoint ``--resume`` can continue from."""

    def __init__(self, message: str, last_path: str | None) -> None:
        super().__init__(message)
        self.last_path = last_path


@dataclass(frozen=True)
class TrainResult:
    """What a finished run produced."""

    run_dir: str
    best_path: str
    last_path: str
    epochs: int
    train_loss: float
    val_loss: float | None
    best_val_loss: float | None
    train_count: int
    val_count: int
    skipped: dict
    seconds_per_epoch: float
    device: str
    layout: str
