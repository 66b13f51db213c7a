"""The per-epoch loss table of a run: ``loss.csv`` and ``loss.json`` in the run folder."""

from __future__ import annotations

import csv
import json
import os

# train_loss is the whole objective; train_mse its reconstruction part, comparable with val_loss.
COLUMNS = ("epoch", "train_loss", "train_mse", "val_loss", "lr", "seconds")


def write_history(run_dir: str, history: list[dict]) -> None:
    """Rewrite ``loss.csv`` and ``loss.json`` from the list of per-epoch rows (atomic replace)."""
    csv_path, json_path = os.path.join(run_dir, "loss.csv"), os.path.join(run_dir, "loss.json")
    with open(csv_path + ".tmp", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    os.replace(csv_path + ".tmp", csv_path)
    with open(json_path + ".tmp", "w", encoding="utf-8") as fh:
        json.dump(history, fh, indent=1)
    os.replace(json_path + ".tmp", json_path)
