"""``imgret train`` and ``imgret export``: parse options, call :mod:`imgret.train` / :mod:`imgret.export`, print.

Neither PyTorch nor ONNX is imported until a command runs, so ``imgret --help`` stays instant and
the runtime works without the ``train`` extra. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from imgret.cli.errors import TRAIN_INSTALL_HINT
from imgret.errors import MissingExtraError
from imgret.runtime.progress import Progress


def _require_train_extra(cmd: str, modules: tuple[str, ...] = ("torch",)) -> None:
    """Raise a one-line :class:`MissingExtraError` when torch (or onnx) is not importable."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise MissingExtraError(TRAIN_INSTALL_HINT.format(cmd=cmd)) from None


def _config_option(name: str, kind: type, default, settings: dict):
    """The ``--name`` option of one :class:`~imgret.train.config.TrainConfig` field."""
    flag = "--" + name.replace("_", "-")
    if kind is bool:
        # Recipes turn some switches on, so each has its off form too (--augment/--no-augment).
        return click.option(f"{flag}/--no-{flag[2:]}", default=default, show_default=settings["show_default"],
                            help=settings["help"])
    click_type = kind
    if settings["choices"]:
        click_type = click.Choice(list(settings["choices"]))
    elif settings["bounds"]:
        click_type = (click.IntRange if kind is int else click.FloatRange)(*settings["bounds"])
    return click.option(flag, type=click_type, default=default, show_default=settings["show_default"],
                        help=settings["help"])


def config_options(after: dict[str, list] | None = None):
    """Decorate a command with one option per :class:`~imgret.train.config.TrainConfig` field that
    is a CLI option, in field order (each default and help text lives with its field only);
    ``after[name]`` lists hand-written options to place after ``--name``."""
    from imgret.train.config import cli_options

    decorators = []
    for name, kind, default, settings in cli_options():
        decorators.append(_config_option(name, kind, default, settings))
        decorators += (after or {}).get(name, [])

    def apply(command):
        for decorator in reversed(decorators):
            command = decorator(command)
        return command

    return apply


_resume_option = click.option("--resume", is_flag=True,
                              help="Continue the stopped run in --out with its saved settings.")


@click.command("train")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
              help="Run folder for checkpoints, plots and the image cache.  [default: runs/<DATA name>]")
@config_options(after={"device": [_resume_option]})
def train_command(data, out, resume, **settings):
    """Train an encoder on the pictures in DATA and keep its checkpoints in a run folder.

    With no options it trains the default recipe, the best general one found: two random views of
    each picture pulled together by a contrastive term beside reconstruction, then a neighbour-graph
    head (and on small pictures a map head) exported beside the code, with mirror averaging. The
    picture size follows the pictures (their median size when under 128 px). --recipe plain trains
    the original plain autoencoder and --recipe seed the original project's model; any option given
    explicitly overrides the recipe's value. The recipe and every value used go into config.json.

    Pictures are found recursively (class subfolders are ignored). If DATA has train/ (and val/)
    folders they are used as they are; otherwise --val-split of the pictures is held out by a seeded
    split. Unreadable pictures are skipped and counted. Each epoch writes loss.csv, loss.png,
    recon.png, last.pt and (when validation improves) best.pt. Ctrl-C keeps a usable last.pt and
    exits with status 130; --resume continues it. --resume with --map-dim or --graph-dim (and their
    settings) on a finished run fits those heads without retraining the encoder (a map head it
    already has is fitted again with the new settings; a graph head cannot be changed).

    Example:

        imgret train ~/Pictures/cats --epochs 20 --out runs/cats && imgret export runs/cats -o cats.onnx
    """
    _require_train_extra("train")
    from imgret.train import HEAD_SETTINGS, TrainConfig, TrainingInterrupted, add_heads, train

    out = out or os.path.join("runs", os.path.basename(os.path.abspath(data)) or "run")
    ctx = click.get_current_context()
    given = {name: value for name, value in settings.items()
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
    # With --resume, head options typed on the command line add those heads to a finished run.
    heads = {name: given[name] for names in HEAD_SETTINGS.values() for name in names if name in given}
    try:
        if resume and heads:
            result = add_heads(out, stream=sys.stderr, device=settings["device"], workers=settings["workers"],
                               **heads)
        else:
            # The recipe's values, overridden by what was typed; the machine settings always as typed.
            given.pop("recipe", None)
            config = TrainConfig.from_recipe(settings["recipe"], data=data, out=out, **given)
            result = train(config, resume=resume, stream=sys.stderr)
    except TrainingInterrupted as exc:
        # Not an error but a stop the user asked for: its own exit status, like any Ctrl-C.
        click.echo(str(exc), err=True)
        sys.exit(130)
    val = "n/a" if result.val_loss is None else f"{result.val_loss:.5f}"
    click.echo(f"trained {result.epochs} epochs on {result.train_count} pictures "
               f"({result.val_count} validation, {sum(result.skipped.values())} skipped): "
               f"train loss {result.train_loss:.5f}, val loss {val}, {result.seconds_per_epoch:.1f} s/epoch")
    click.echo(f"best checkpoint: {result.best_path}")


@click.command("export")
@click.argument("source", type=click.Path(exists=True))
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True, help="The .onnx file to write.")
@click.option("--flip-tta/--no-flip-tta", default=None,
              help="Average each picture's code with its mirror image's (inside the graph).  [default: as the run "
                   "was trained for: on when it learnt from views or has a graph head]")
@click.option("--int8", is_flag=True, help="Also write FILE.int8.onnx (static int8, calibrated on validation pictures).")
@click.option("--model-id", default=None, help="Name stored in the model.  [default: imgret-<arch>-<dim>d-<size>px-<hash>]")
@click.option("--graph-weight", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Weight of a graph head's output beside the code.  [default: the run's --graph-weight]")
@click.option("--map-weight", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Weight of a map head's output beside the code.  [default: the run's --map-weight]")
@click.option("--map-whiten", type=click.FloatRange(0, 1), default=None,
              help="Whitening of a map head's axes (see imgret train).  [default: the run's --map-whiten]")
def export_command(source, output, flip_tta, int8, model_id, **weights):  # noqa: PLR0913 - one per CLI option
    """Export the encoder of a run folder (its best.pt) or a checkpoint file to ONNX.

    The file takes uint8 RGB pictures [N, S, S, 3] and gives L2-normalised embeddings; its metadata
    records input size, normalisation, embedding size, a model id and a training summary. The export
    is checked with the ONNX checker and against PyTorch on the run's validation pictures; nothing
    is written if they disagree.

    Example:

        imgret export runs/cats -o cats.onnx --int8
    """
    _require_train_extra("export", ("torch", "onnx"))
    from imgret.export import export_encoder

    bar = Progress("exporting", unit="steps")
    result = export_encoder(source, output, flip_tta=flip_tta, int8=int8, model_id=model_id, progress=bar,
                            **weights)
    bar.close()
    p = result.parity
    click.echo(f"parity on {p.count} {p.source}: max abs diff {p.max_abs_diff:.2e}, min cosine {p.min_cosine:.7f}",
               err=True)
    if result.int8 is not None:
        q = result.int8
        click.echo(f"int8 vs fp32 on {q.count} pictures: mean top-{q.k} neighbour overlap {q.mean_topk_overlap:.3f}, "
                   f"max abs diff {q.max_abs_diff:.4f}, min cosine {q.min_cosine:.5f}", err=True)
    if result.dup is not None:
        click.echo(result.dup.note, err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"wrote {result.path} ({result.info.model_id}, {result.info.embedding_dim}-d, "
               f"{result.info.input_size}px)")
    if result.int8 is not None:
        click.echo(f"wrote {result.int8.path}")
