"""Retrieval quality on a labelled folder: the numbers behind ``imgret eval``.

The class of a picture is its sub-folder. With the original project's layout (``DATA/train`` and
``DATA/test``) the training pictures are the database and the test pictures the queries; otherwise a
seeded, class-balanced sample of pictures are the queries, each left out of its own results.

Pictures are embedded by the same code as ``imgret index`` (a :class:`~imgret.runtime.library.Library`
is built or updated for the database), and the database is ranked exhaustively for every query with
the model's metric. Metrics, per query then averaged (overall and per class):

- ``mAP@all``: average precision over the whole ranking;
- ``mAP@100``: average precision over the top 100, normalised by the relevant pictures found there;
- ``P@1``, ``P@10``, ``P@100``: share of relevant pictures among the top k;
- ``recall@10``: share of queries with at least one relevant picture in the top 10.
"""

from __future__ import annotations

import os
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np

from imgret.errors import ImgretError
from imgret.runtime.results import Hit, QueryResult
from imgret.runtime.scan import Found, scan

METRIC_NAMES = ("mAP@all", "mAP@100", "P@1", "P@10", "P@100", "recall@10")


@dataclass
class EvalSet:
    """Database and query pictures with their class labels."""

    db_root: str
    db_paths: list[str]
    db_labels: list[str]
    query_paths: list[str]
    query_labels: list[str]
    leave_one_out: bool


@dataclass
class EvalReport:
    """Averaged metrics overall and per class, plus each query's AP for finding the worst ones."""

    overall: dict[str, float]
    per_class: dict[str, dict[str, float]]
    queries: int
    database: int
    metric: str
    model: str
    per_query_ap: list[tuple[str, float]] = field(default_factory=list)


def _labelled(root: str) -> tuple[list[str], list[str]]:
    paths, labels = [], []
    for item in scan(root):
        if isinstance(item, Found):
            rel = os.path.relpath(item.path, root)
            parts = rel.split(os.sep)
            if len(parts) < 2:
                continue  # not in a class folder
            paths.append(item.path)
            labels.append(parts[0])
    return paths, labels


def labelled_set(folder: str | os.PathLike, *, queries: int = 1000, seed: int = 0) -> EvalSet:
    """Read a labelled folder (class = first sub-folder) into an :class:`EvalSet`."""
    folder = os.path.abspath(os.fspath(folder))
    train, test = os.path.join(folder, "train"), os.path.join(folder, "test")
    if os.path.isdir(train) and os.path.isdir(test):
        db_paths, db_labels = _labelled(train)
        q_paths, q_labels = _labelled(test)
        if queries and queries < len(q_paths):
            idx = balanced_sample(q_labels, queries, seed)
            q_paths, q_labels = [q_paths[i] for i in idx], [q_labels[i] for i in idx]
        result = EvalSet(train, db_paths, db_labels, q_paths, q_labels, leave_one_out=False)
    else:
        db_paths, db_labels = _labelled(folder)
        idx = balanced_sample(db_labels, queries or len(db_paths), seed)
        result = EvalSet(folder, db_paths, db_labels, [db_paths[i] for i in idx], [db_labels[i] for i in idx],
                         leave_one_out=True)
    if len(set(result.db_labels)) < 2 or not result.query_paths:
        raise ImgretError(f"{folder}: need pictures in at least two class sub-folders to evaluate")
    return result


def balanced_sample(labels: list[str], count: int, seed: int) -> list[int]:
    """Indices of about ``count`` items, as equal a share per class as the classes allow, seeded."""
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(labels):
        by_class[lab].append(i)
    pools = {lab: list(rng.permutation(idx)) for lab, idx in sorted(by_class.items())}
    chosen: list[int] = []
    while len(chosen) < min(count, len(labels)):
        for lab in sorted(pools):
            if pools[lab] and len(chosen) < count:
                chosen.append(int(pools[lab].pop()))
    return sorted(chosen)


def rank_metrics(rel: np.ndarray) -> dict[str, np.ndarray]:
    """Per-query metrics from a boolean relevance matrix ``[queries, ranked database]``."""
    rel = rel.astype(np.float64)
    n = rel.shape[1]
    cum = np.cumsum(rel, axis=1)
    ranks = np.arange(1, n + 1, dtype=np.float64)
    precision = cum / ranks
    total = rel.sum(axis=1)
    ap_all = np.where(total > 0, (precision * rel).sum(axis=1) / np.maximum(total, 1), 0.0)
    k100 = min(100, n)
    found100 = cum[:, k100 - 1]
    ap100 = np.where(found100 > 0, (precision[:, :k100] * rel[:, :k100]).sum(axis=1) / np.maximum(found100, 1), 0.0)

    def p_at(k: int) -> np.ndarray:
        k = min(k, n)
        return cum[:, k - 1] / k

    return {
        "mAP@all": ap_all,
        "mAP@100": ap100,
        "P@1": p_at(1),
        "P@10": p_at(10),
        "P@100": p_at(100),
        "recall@10": (cum[:, min(10, n) - 1] > 0).astype(np.float64),
    }


def distances(queries: np.ndarray, database: np.ndarray, metric: str) -> np.ndarray:
    """``[queries, database]`` distances as the index reports them: 1 - cosine, or Euclidean."""
    if metric == "cosine":
        qn = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        dn = database / np.maximum(np.linalg.norm(database, axis=1, keepdims=True), 1e-12)
        return 1.0 - qn @ dn.T
    sq = (queries**2).sum(1)[:, None] - 2 * queries @ database.T + (database**2).sum(1)[None, :]
    return np.sqrt(np.maximum(sq, 0.0))


def rank(queries: np.ndarray, database: np.ndarray, metric: str, exclude: np.ndarray | None = None) -> np.ndarray:
    """Database indices sorted nearest first for each query (``exclude[i]``: an index to drop, or -1)."""
    dist = distances(queries, database, metric)
    if exclude is not None:
        rows = np.nonzero(exclude >= 0)[0]
        dist[rows, exclude[rows]] = np.inf
    order = np.argsort(dist, axis=1, kind="stable")
    if exclude is not None:
        order = order[:, :-1] if np.all(exclude >= 0) else order
    return order


def evaluate(  # noqa: PLR0913 - mirrors the options of `imgret eval`
    folder: str | os.PathLike,
    *,
    model: str | os.PathLike | None = None,
    keep_library: str | os.PathLike | None = None,
    queries: int = 1000,
    seed: int = 0,
    progress=None,
    chunk: int = 256,
) -> tuple[EvalReport, EvalSet, object]:
    """Embed the database through a library, rank it for every query, and average the metrics.

    Returns the report, the evaluation set and the database's vectors (for montages of the worst).
    ``keep_library`` keeps the database's library there for reuse; by default a temporary one is used.
    """
    from imgret.runtime.library import Library

    ev = labelled_set(folder, queries=queries, seed=seed)
    with tempfile.TemporaryDirectory(prefix="imgret-eval-") as tmp:
        lib_dir = keep_library or os.path.join(tmp, "library")
        with Library.open_writable(lib_dir, model=model) as lib:
            lib.index(ev.db_root, progress=progress)
            db_vecs, db_ok = lib.vectors_for(ev.db_paths)
            q_vecs, q_ok = lib.vectors_for(ev.query_paths)
            metric, model_ref = lib.encoder.metric, lib.model_ref
    db_labels = np.asarray([lab for lab, ok in zip(ev.db_labels, db_ok) if ok])
    db_vecs = db_vecs[db_ok]
    db_index = {p: i for i, p in enumerate(p for p, ok in zip(ev.db_paths, db_ok) if ok)}
    q_paths = [p for p, ok in zip(ev.query_paths, q_ok) if ok]
    q_labels = np.asarray([lab for lab, ok in zip(ev.query_labels, q_ok) if ok])
    q_vecs = q_vecs[q_ok]
    per_query: dict[str, list[np.ndarray]] = {m: [] for m in METRIC_NAMES}
    for start in range(0, len(q_paths), chunk):
        stop = min(start + chunk, len(q_paths))
        exclude = None
        if ev.leave_one_out:
            exclude = np.asarray([db_index.get(p, -1) for p in q_paths[start:stop]])
        order = rank(q_vecs[start:stop], db_vecs, metric, exclude)
        rel = db_labels[order] == q_labels[start:stop, None]
        for name, values in rank_metrics(rel).items():
            per_query[name].append(values)
    values = {m: np.concatenate(v) if v else np.zeros(0) for m, v in per_query.items()}
    overall = {m: float(v.mean()) if v.size else 0.0 for m, v in values.items()}
    per_class = {}
    for lab in sorted(set(q_labels.tolist())):
        mask = q_labels == lab
        per_class[lab] = {m: float(v[mask].mean()) for m, v in values.items()}
    report = EvalReport(overall, per_class, len(q_paths), len(db_labels), metric, model_ref,
                        per_query_ap=list(zip(q_paths, values["mAP@all"].tolist())))
    return report, ev, (db_vecs, [p for p, ok in zip(ev.db_paths, db_ok) if ok], q_vecs, q_paths)


def worst_queries(report: EvalReport, vectors, count: int, *, hits: int = 6) -> list[QueryResult]:
    """The ``count`` queries with the lowest average precision, worst first, each with its top
    ``hits`` database pictures (for ``imgret eval --montage-worst``). A query that is itself in the
    database is left out of its own row, as it is left out of its own scores.

    ``vectors`` is the fourth value :func:`evaluate` returns.
    """
    db_vecs, db_paths, q_vecs, q_paths = vectors
    db_index = {p: j for j, p in enumerate(db_paths)}
    ap = report.per_query_ap
    worst = sorted(range(len(ap)), key=lambda i: ap[i][1])[:count]
    results = []
    for i in worst:
        dist = distances(q_vecs[i:i + 1], db_vecs, report.metric)[0]
        itself = db_index.get(q_paths[i])
        if itself is not None:
            dist[itself] = np.inf
        order = np.argsort(dist, kind="stable")[:min(hits, len(dist) - (itself is not None))]
        results.append(QueryResult(q_paths[i], [Hit(r, db_paths[j], float(dist[j])) for r, j in enumerate(order, 1)]))
    return results
