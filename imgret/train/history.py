"""The per-epoch loss table of a run: ``loss.csv`` and ``loss.json`` in the run folder."""

from __future__ import annotations

import csv
import io
import json
import os

from imgret.runtime.atomic import write_text

# train_loss is the whole objective; train_mse its reconstruction part, comparable with val_loss.
COLUMNS = ("epoch", "train_loss", "train_mse", "val_loss", "lr", "seconds")


def write_history(run_dir: str, history: list[dict]) -> None:
    """Rewrite ``loss.csv`` and ``loss.json`` from the list of per-epoch rows (each atomically)."""
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=COLUMNS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(history)
    write_text(os.path.join(run_dir, "loss.csv"), table.getvalue())
    write_text(os.path.join(run_dir, "loss.json"), json.dumps(history, indent=1))
