"""``imgret eval``: retrieval quality on a labelled folder."""

from __future__ import annotations

import json

import click

from imgret.cli import pages
from imgret.cli.options import json_option, model_option, montage_path, progress_option, renamed_option
from imgret.cli.output import printable
from imgret.runtime.progress import Progress


@click.command("eval")
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=str))
@model_option
@renamed_option(("--keep-library",), "--index", "keep_library",
                "Keep the database's library in this folder and reuse it next time (default: a temporary one).")
@click.option("--queries", type=click.IntRange(0), default=1000, show_default=True,
              help="Class-balanced query sample size (0: every query picture).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the query sample.")
@json_option
@click.option("--montage-worst", type=click.Path(dir_okay=False, path_type=str), default=None, callback=montage_path,
              help="Write a picture of the worst queries beside their top results (.jpg, .jpeg, .png or .webp).")
@click.option("--worst", type=click.IntRange(1, 50), default=8, show_default=True,
              help="How many worst queries the montage (or page) shows.")
@pages.html_option
@progress_option
def eval_command(data, model, keep_library, queries, seed, as_json, montage_worst, worst, html_dir, progress):  # noqa: PLR0913 - one parameter per CLI option
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
      imgret eval data/ --html eval-page/
    """
    from imgret.runtime.evaluate import evaluate, worst_queries

    bar = Progress("embedding database", enabled=progress)
    try:
        report, ev, vectors = evaluate(data, model=model, keep_library=keep_library, queries=queries, seed=seed,
                                      progress=bar)
    finally:
        bar.close()
    _print_report(report, as_json)
    if montage_worst:
        from imgret.runtime.montage import make_montage

        make_montage(worst_queries(report, vectors, worst), montage_worst)
        click.echo(f"worst queries written to {printable(montage_worst)}", err=True)
    if html_dir:
        _page(html_dir, ev, worst_queries(report, vectors, worst), progress)


def _page(folder: str, ev, worst, progress) -> None:
    """The worst queries beside their hits, hits of another class marked wrong."""
    from imgret.runtime.page import eval_section

    label = dict(zip(ev.db_paths, ev.db_labels)) | dict(zip(ev.query_paths, ev.query_labels))
    rows = [(r.query, label.get(r.query, "?"), [(h.path, h.distance, label.get(h.path, "?")) for h in r.hits])
            for r in worst]
    pages.write(folder, "imgret eval: worst queries", [eval_section(rows)], progress=progress)


def _print_report(report, as_json: bool) -> None:
    from imgret.runtime.evaluate import METRIC_NAMES

    if as_json:
        click.echo(json.dumps({
            "model": report.model, "metric": report.metric, "queries": report.queries,
            "database": report.database, "overall": report.overall, "per_class": report.per_class,
        }, indent=2))
        return
    click.echo(f"model {report.model} ({report.metric}); {report.queries} queries, {report.database} in database")
    click.echo(f"{'class':<16}" + "".join(f"{m:>10}" for m in METRIC_NAMES))
    for name, row in list(report.per_class.items()) + [("ALL", report.overall)]:
        click.echo(f"{name[:16]:<16}" + "".join(f"{row[m]:>10.4f}" for m in METRIC_NAMES))
