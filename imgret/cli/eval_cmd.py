"""``imgret eval``: retrieval quality on a labelled folder."""

from __future__ import annotations

import json

import click

from imgret.cli.options import json_option, model_option
from imgret.cli.progress import Progress


@click.command("eval")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=str))
@model_option
@click.option("--index", "index_dir", type=click.Path(file_okay=False, path_type=str), default=None,
              help="Keep the database's library here and reuse it next time (default: a temporary one).")
@click.option("--queries", type=click.IntRange(0), default=1000, show_default=True,
              help="Class-balanced query sample size (0: every query picture).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the query sample.")
@json_option
@click.option("--montage-worst", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Write a picture of the worst queries beside their top results.")
@click.option("--worst", type=click.IntRange(1, 50), default=8, show_default=True,
              help="How many worst queries the montage shows.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: when stderr is a terminal).")
def eval_command(data, model, index_dir, queries, seed, as_json, montage_worst, worst, progress):
    """Score retrieval on DATA, a folder whose sub-folders are classes.

    With DATA/train and DATA/test, train is the database and test the queries (the original
    project's layout); otherwise a seeded, class-balanced sample of pictures are the queries, each left
    out of its own results. A result is relevant when it has the query's class. Reports mAP@all,
    mAP@100, P@1, P@10, P@100 and recall@10 (queries with a relevant picture in the top 10), overall
    and per class.

    \b
    Example:
      imgret eval data/ --queries 0 --json
      imgret eval data/ --model my-encoder.onnx --montage-worst worst.jpg
    """
    from imgret.runtime.evaluate import METRIC_NAMES, evaluate

    bar = Progress("embedding database", enabled=progress)
    try:
        report, _, vectors = evaluate(data, model=model, index_dir=index_dir, queries=queries, seed=seed,
                                      progress=bar)
    finally:
        bar.close()
    if as_json:
        click.echo(json.dumps({
            "model": report.model, "metric": report.metric, "queries": report.queries,
            "database": report.database, "overall": report.overall, "per_class": report.per_class,
        }, indent=2))
    else:
        head = f"{'class':<16}" + "".join(f"{m:>10}" for m in METRIC_NAMES)
        click.echo(f"model {report.model} ({report.metric}); {report.queries} queries, {report.database} in database")
        click.echo(head)
        for name, row in list(report.per_class.items()) + [("ALL", report.overall)]:
            click.echo(f"{name[:16]:<16}" + "".join(f"{row[m]:>10.4f}" for m in METRIC_NAMES))
    if montage_worst:
        _montage_worst(report, vectors, montage_worst, worst)
        click.echo(f"worst queries written to {montage_worst}", err=True)


def _montage_worst(report, vectors, out: str, count: int) -> None:
    import numpy as np

    from imgret.runtime.evaluate import distances
    from imgret.runtime.library import Hit, QueryResult
    from imgret.runtime.montage import make_montage

    db_vecs, db_paths, q_vecs, q_paths = vectors
    worst = sorted(range(len(report.per_query_ap)), key=lambda i: report.per_query_ap[i][1])[:count]
    results = []
    for i in worst:
        dist = distances(q_vecs[i:i + 1], db_vecs, report.metric)[0]
        order = np.argsort(dist, kind="stable")[:6]
        hits = [Hit(r, db_paths[j], float(dist[j])) for r, j in enumerate(order, 1)]
        results.append(QueryResult(q_paths[i], hits))
    make_montage(results, out)
