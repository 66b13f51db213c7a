"""The commands most users meet: index, query, info, models."""

from __future__ import annotations

import json
import os
import time

import click

from imgret.cli import output, pages
from imgret.cli.options import (
    json_option,
    library_folder,
    library_option,
    model_option,
    montage_path,
    positive_count,
    progress_option,
)
from imgret.runtime.progress import Progress
from imgret.runtime.vectors import VECTOR_DTYPES


@click.command("index")
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@library_option
@model_option
@click.option("--rebuild", is_flag=True, help="Forget everything and re-embed with the (new) model.")
@click.option("--dtype", type=click.Choice(VECTOR_DTYPES), default=None,
              help="How a new library stores vectors: f32 (default), f16 (0.6x the vector file, recall@10 "
                   "~0.999 of exact) or i8 (0.4x, recall ~0.92-0.94; cosine models only). Fixed when the "
                   "library is made: another one needs --rebuild.")
@click.option("--workers", type=click.IntRange(0, 256), default=None,
              help="Decoding processes (default: the CPU cores; 0 or 1: decode in this process, and walk "
                   "a big folder in this process too, not in two).")
@click.option("--cluster", metavar="ADDRESS", default=None,
              help="Embed on a Dask cluster (tcp://scheduler:8786) or a local one of N processes (local:N); "
                   "needs the cluster extra. This process still writes the library.")
@click.option("--follow-links", is_flag=True, help="Also follow symbolic links that point outside the folder.")
@click.option("--verbose", "-v", is_flag=True, help="List every skipped and passed-over file under its reason.")
@progress_option
def index_command(folders, library, model, rebuild, dtype, workers, cluster, follow_links, verbose, progress):  # noqa: PLR0913 - one parameter per CLI option
    """Add the pictures in FOLDERS to the library, embedding only what is new or changed.

    The first run embeds everything; later runs embed only new or modified files, reuse vectors of
    renamed or duplicate files, and forget files that vanished. A summary goes to stderr: "skipped"
    counts the pictures recorded as unusable (what `imgret info` counts, with the same reasons);
    "passed over" counts what is not recorded: files with another suffix (by suffix), links and
    files already seen, and files that could not be opened (tried again next run).

    \b
    Example:
      imgret index ~/Pictures
      imgret index ./photos --library ./photos.imgret --model my-encoder.onnx
      imgret index /mnt/photos --cluster tcp://scheduler:8786
      imgret index /mnt/archive --library ./archive.imgret --dtype f16
    """
    from imgret.runtime.batching import encoder_threads
    from imgret.runtime.cluster import open_cluster
    from imgret.runtime.library import Library

    threads = None if cluster else encoder_threads(workers)
    with Library.open_writable(library_folder(library), model=model, rebuild=rebuild, threads=threads,
                               dtype=dtype) as lib, \
            open_cluster(cluster) as remote:
        source = remote.for_encoder(lib.encoder) if remote else None
        for folder in folders:
            bar = Progress(f"indexing {os.path.basename(os.path.abspath(folder)) or folder}", enabled=progress)
            try:
                report = lib.index(folder, progress=bar, workers=workers, follow_outside=follow_links, source=source)
            finally:
                bar.close()
            _summary(folder, report, verbose)


def _summary(folder, report, verbose: bool) -> None:
    """The index run's summary on stderr. "skipped" counts exactly what the catalogue records as
    skipped (what `imgret info` counts, with the same reasons); "passed over" is what is not recorded:
    other suffixes, links and files already seen, files that could not be opened (tried again)."""
    click.echo(
        f"{output.printable(folder)}: {report.added} added, {report.updated} updated, {report.removed} removed, "
        f"{report.unchanged} unchanged, {report.skipped_count} skipped"
        + (f" ({report.previously_skipped} from earlier runs)" if report.previously_skipped else "")
        + (f" ({report.reused} reused by content)" if report.reused else "")
        + (f"; {report.passed_over_count} passed over" if report.passed_over else "")
        + f" in {report.seconds:.1f}s",
        err=True,
    )
    if report.vectors_lost:
        click.echo(f"  the vector file was damaged: {report.vectors_lost} pictures read again", err=True)
    _listing("skipped", report.skipped, verbose)
    _listing("passed over", report.passed_over, verbose)


def _listing(word: str, groups: dict[str, list[str]], verbose: bool) -> None:
    """``  WORD N: why`` per reason or suffix (with each path below it when ``verbose``)."""
    from imgret.runtime.indexer import RETRY_REASONS

    for why, paths in sorted(groups.items()):
        note = " (tried again next run)" if why in RETRY_REASONS else ""
        if why.startswith((".", "(")):  # a suffix (or "(no suffix)"): scan.NotAPicture
            note = " (not a picture suffix)"
        click.echo(f"  {word} {len(paths)}: {why}{note}", err=True)
        if verbose:
            for p in paths:
                click.echo(f"    {output.printable(p)}", err=True)


@click.command("query")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=str))
@click.option("-N", "-n", "--number", "number", type=int, default=5, show_default=True, callback=positive_count,
              help="How many similar pictures to return for each query.")
@library_option
@model_option
@click.option("--include-self", is_flag=True, help="Let a library picture be returned for itself.")
@click.option("--all-copies", is_flag=True, help="One row per file: do not fold copies of a hit into it.")
@click.option("--exclude-copies", is_flag=True, help="Leave out the query's own copies too, not only itself.")
@json_option
@click.option("--paths", "paths_only", is_flag=True, help="Print result paths only (raw bytes), one per line.")
@click.option("-0", "--null", "nul", is_flag=True, help="With --paths: separate paths with NUL bytes.")
@click.option("--montage", type=click.Path(dir_okay=False, path_type=str), default=None, callback=montage_path,
              help="Also write one image of each query beside its results (.jpg, .jpeg, .png or .webp).")
@pages.html_option
@click.pass_context
def query_command(ctx, images, number, library, model, include_self, all_copies, exclude_copies,  # noqa: PLR0913 - one parameter per CLI option
                  as_json, paths_only, nul, montage, html_dir):
    """Find the pictures in the library most similar to IMAGES.

    IMAGES may be pictures outside the library, pictures inside it, or folders of query pictures.
    The N results are N different pictures: a hit within the model's copy threshold of a better
    hit (a resized or edited copy, an identical file) is folded into it, shown as "+2 copies";
    --all-copies gives one row per file instead. Output is a table of rank, distance and path;
    --json gives one JSON object per result (keys query, rank, path, distance and copies, a list
    of path and distance; query and path absolute, plus query_b64 / path_b64 with the exact bytes
    of a name that is not UTF-8); --paths gives bare paths of the results (not their copies). A query picture that
    cannot be read gets one line on stderr naming it; the others are still answered, and the exit
    status is then 1.

    \b
    Example:
      imgret query holiday.jpg -N 5
      imgret query holiday.jpg -N 12 --montage similar.jpg
      imgret query holiday.jpg -N 5 --html out/
      imgret query holiday.jpg --library ./photos.imgret
    """
    from imgret.runtime.library import Library
    from imgret.runtime.search import query_pictures

    _refuse_contradictions(as_json=as_json, paths_only=paths_only, nul=nul)
    if include_self and exclude_copies:
        raise click.UsageError("--include-self and --exclude-copies contradict each other; give one of them")
    queries = query_pictures(images)
    if not queries:
        raise click.ClickException("no query pictures found in " + ", ".join(output.printable(i) for i in images))
    with Library.open(library_folder(library), model=model, one_shot=True) as lib:  # one query call
        results = lib.query(queries, number, include_self=include_self, fold=not all_copies,
                            exclude_copies=exclude_copies)
    if as_json:
        output.json_lines(results)
    elif paths_only:
        output.paths(results, nul=nul)
    else:
        output.table(results)
    answered = [r for r in results if r.error is None]
    if montage and answered:
        from imgret.runtime.montage import make_montage

        make_montage(answered, montage)
        click.echo(f"montage written to {output.printable(montage)}", err=True)
    if html_dir and answered:
        pages.write(html_dir, "imgret query", pages.query_sections(answered))
    if output.query_failures(results):
        ctx.exit(1)


def _refuse_contradictions(*, as_json: bool, paths_only: bool, nul: bool) -> None:
    """Options that cannot mean anything together are a usage error (exit 2), not a silent choice."""
    if as_json and paths_only:
        raise click.UsageError("--json and --paths are two different outputs; give one of them")
    if nul and not paths_only:
        raise click.UsageError("-0 (--null) separates the paths of --paths; give --paths too")


@click.command("info")
@library_option
@json_option
def info_command(library, as_json):
    """Show the library: where it is, its model, how many pictures, sizes and last update.

    "skipped" counts the files recorded as unusable, by reason: the same numbers and words as the
    summary of `imgret index`. Files that `index` passed over are not recorded, so not counted here.

    \b
    Example:
      imgret info --library ./photos.imgret
    """
    from imgret.runtime.library import library_info

    info = library_info(library_folder(library))
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info["updated"])) if info["updated"] else "never"
    click.echo(f"library:    {info['library']}")
    click.echo(f"model:      {info['model']} ({info['model_id']}, {info['embedding_dim']}-d, {info['metric']})")
    click.echo(f"model sha:  {info['model_fingerprint']}" + (f" (copy kept in {info['model_file']})" if info.get("model_file") else ""))
    for folder in info.get("folders", []):
        click.echo(f"folder:     {output.printable(folder)}")
    click.echo(f"pictures:   {info['pictures']}")
    reasons = ", ".join(f"{k}: {v}" for k, v in info["skip_reasons"].items())
    click.echo(f"skipped:    {info['skipped']}" + (f" ({reasons})" if reasons else ""))
    click.echo(f"catalogue:  {info['catalogue_bytes'] / 1e6:.2f} MB")
    click.echo(f"index file: {info['index_bytes'] / 1e6:.2f} MB, {info['vector_dtype']} vectors" + ("" if info["index_fresh"] else " (stale; rebuilt on next index)"))
    click.echo(f"updated:    {when}")


@click.command("models")
@json_option
def models_command(as_json):
    """List the bundled encoders with their metadata.

    \b
    Example:
      imgret models --json
    """
    from imgret import models

    rows = models.describe_bundled()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo("no bundled models", err=True)
    for r in rows:
        star = " (default)" if r["default"] else ""
        click.echo(f"{r['name']}{star}: {r['arch']}, {r['input_size']}px input, {r['embedding_dim']}-d {r['metric']}, "
                   f"{r['bytes'] / 1e6:.2f} MB")
