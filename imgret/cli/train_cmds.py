"""``imgret train`` and ``imgret export``: parse options, call :mod:`imgret.train` / :mod:`imgret.export`, print.

Neither PyTorch nor ONNX is imported until a command runs, so ``imgret --help`` stays instant and
the runtime works without the ``train`` extra. Results go to stdout, progress to stderr.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from imgret.errors import ImgretError

INSTALL_HINT = "imgret {cmd} needs PyTorch: pip install 'imgret[train]'"


def _require_train_extra(cmd: str, modules: tuple[str, ...] = ("torch",)) -> None:
    """Raise a one-line :class:`click.ClickException` when torch (or onnx) is not importable."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            hint = INSTALL_HINT.format(cmd=cmd)
            if name != "torch":
                hint = hint.replace("PyTorch", f"PyTorch and {name}")
            raise click.ClickException(hint) from None


@click.command("train")
@click.argument("data", type=click.Path(exists=True, file_okay=False))
@click.option("--out", "-o", type=click.Path(file_okay=False), default=None,
              help="Run folder for checkpoints, plots and the image cache.  [default: runs/<DATA name>]")
@click.option("--arch", type=click.Choice(["conv", "seed"]), default="conv", show_default=True,
              help="conv: 4 conv stages + global average pooling; seed: the original Keras model.")
@click.option("--latent-dim", type=int, default=0, help="Embedding size.  [default: 128 for conv, 16 for seed]")
@click.option("--image-size", type=int, default=128, show_default=True,
              help="Square input size in pixels (multiple of 16 for conv, of 4 for seed).")
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Peak learning rate (Adam).")
@click.option("--schedule", type=click.Choice(["onecycle", "cosine"]), default="onecycle", show_default=True)
@click.option("--val-split", type=float, default=0.25, show_default=True,
              help="Share held out for validation when DATA has no train/ and val/ folders.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--workers", type=int, default=0, show_default=True,
              help="DataLoader worker processes (and decoding threads for the cache).")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA, else MPS, else CPU), cpu, cuda, mps.")
@click.option("--resume", is_flag=True, help="Continue the stopped run in --out with its saved settings.")
@click.option("--max-images", type=int, default=0, help="Use at most this many pictures (quick runs); 0 = all.")
@click.option("--denoise", is_flag=True, help="Add gaussian noise to inputs; the target stays clean.")
@click.option("--noise-std", type=float, default=0.1, show_default=True, help="Noise level for --denoise.")
@click.option("--augment", is_flag=True, help="Random shift/zoom, mirror and erasing on inputs.")
@click.option("--invariance", type=float, default=0.0, show_default=True,
              help="Weight of a term pulling the codes of two random views of a picture together.")
@click.option("--invariance-loss", type=click.Choice(["cosine", "contrastive"]), default="cosine", show_default=True,
              help="cosine: pull the two views' codes together; contrastive: also push other pictures' codes away.")
@click.option("--temperature", type=float, default=0.2, show_default=True, help="Temperature of the contrastive term.")
@click.option("--colour-jitter", type=float, default=0.0, show_default=True,
              help="Views get brightness/contrast/saturation scaled by 1 ± this (and a small hue turn).")
@click.option("--rotate", type=float, default=0.0, show_default=True, help="Views are rotated up to this many degrees.")
@click.option("--min-scale", type=float, default=0.75, show_default=True, help="Views zoom in to at most this share of the side.")
@click.option("--decoder", type=click.Choice(["full", "light", "half"]), default="full", show_default=True,
              help="Decoder size (it is not exported). conv: light trains about 4x faster on a CPU, half is half "
                   "of light; seed: full and light are the original's, half has half its channels.")
@click.option("--recon-views", type=click.IntRange(1, 2), default=2, show_default=True,
              help="With two views (--invariance): reconstruct both, or only the first (half the decoder's cost).")
@click.option("--width", type=int, default=32, show_default=True,
              help="Encoder channels of the first stage; each later stage doubles them (seed: 32 is the original).")
@click.option("--map-dim", type=int, default=0, show_default=True,
              help="After the epochs, fit a PCA of the encoder's last feature map to this size and export it "
                   "beside the code (keeps detail that tells look-alikes apart); 0 = none.")
@click.option("--map-weight", type=float, default=1.0, show_default=True,
              help="Weight of the map head's output beside the code in the exported embedding.")
@click.option("--map-whiten", type=click.FloatRange(0, 1), default=0.35, show_default=True,
              help="Scale the map head's axes by their variance to this power, negated (0: plain PCA; "
                   "0.5: every axis the same variance).")
@click.option("--graph-dim", type=int, default=0, show_default=True,
              help="After the epochs, fit a neighbour-graph head of this size whose output is exported beside "
                   "the code (groups similar pictures more tightly); 0 = none.")
@click.option("--graph-neighbours", type=int, default=15, show_default=True, help="Neighbours per picture in that graph.")
@click.option("--graph-epochs", type=int, default=10, show_default=True, help="Passes over the graph's edges.")
@click.option("--graph-weight", type=float, default=1.0, show_default=True,
              help="Weight of the head's output beside the code in the exported embedding.")
@click.option("--projector", is_flag=True,
              help="Apply the agreement term to a small training-only head above the embedding.")
def train_command(data, out, arch, latent_dim, image_size, epochs, batch_size, lr, schedule, val_split, seed,
                  workers, device, resume, max_images, denoise, noise_std, augment, invariance, invariance_loss,
                  temperature, colour_jitter, rotate, min_scale, decoder, recon_views, width, map_dim, map_weight,
                  map_whiten, graph_dim, graph_neighbours,
                  graph_epochs, graph_weight, projector):
    """Train an autoencoder on the pictures in DATA and keep its checkpoints in a run folder.

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
    from imgret.train import TrainConfig, TrainingInterrupted, add_heads, train
    from imgret.train.loop import HEAD_SETTINGS

    out = out or os.path.join("runs", os.path.basename(os.path.abspath(data)) or "run")
    config = TrainConfig(data=data, out=out, arch=arch, latent_dim=latent_dim, image_size=image_size,
                         epochs=epochs, batch_size=batch_size, lr=lr, schedule=schedule, val_split=val_split,
                         seed=seed, workers=workers, device=device, max_images=max_images, denoise=denoise,
                         noise_std=noise_std, augment=augment, invariance=invariance,
                         invariance_loss=invariance_loss, temperature=temperature, colour_jitter=colour_jitter,
                         rotate=rotate, min_scale=min_scale, decoder=decoder, recon_views=recon_views,
                         width=width, map_dim=map_dim, map_weight=map_weight, map_whiten=map_whiten,
                         graph_dim=graph_dim, graph_neighbours=graph_neighbours,
                         graph_epochs=graph_epochs, graph_weight=graph_weight, projector=projector)
    # With --resume, head options typed on the command line add those heads to a finished run.
    ctx = click.get_current_context()
    heads = {name: ctx.params[name] for names in HEAD_SETTINGS.values() for name in names
             if ctx.get_parameter_source(name) is click.core.ParameterSource.COMMANDLINE}
    try:
        if resume and heads:
            result = add_heads(out, stream=sys.stderr, device=device, workers=workers, **heads)
        else:
            result = train(config, resume=resume, stream=sys.stderr)
    except TrainingInterrupted as exc:
        click.echo(str(exc), err=True)
        sys.exit(130)
    except ImgretError as exc:
        raise click.ClickException(str(exc)) from exc
    val = "n/a" if result.val_loss is None else f"{result.val_loss:.5f}"
    click.echo(f"trained {result.epochs} epochs on {result.train_count} pictures "
               f"({result.val_count} validation, {sum(result.skipped.values())} skipped): "
               f"train loss {result.train_loss:.5f}, val loss {val}, {result.seconds_per_epoch:.1f} s/epoch")
    click.echo(f"best checkpoint: {result.best_path}")


@click.command("export")
@click.argument("source", type=click.Path(exists=True))
@click.option("--output", "-o", type=click.Path(dir_okay=False), required=True, help="The .onnx file to write.")
@click.option("--flip-tta", is_flag=True, help="Average each picture's code with its mirror image's (inside the graph).")
@click.option("--int8", is_flag=True, help="Also write FILE.int8.onnx (static int8, calibrated on validation pictures).")
@click.option("--model-id", default=None, help="Name stored in the model.  [default: imgret-<arch>-<dim>d-<size>px-<hash>]")
@click.option("--graph-weight", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Weight of a graph head's output beside the code.  [default: the run's --graph-weight]")
@click.option("--map-weight", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Weight of a map head's output beside the code.  [default: the run's --map-weight]")
@click.option("--map-whiten", type=click.FloatRange(0, 1), default=None,
              help="Whitening of a map head's axes (see imgret train).  [default: the run's --map-whiten]")
def export_command(source, output, flip_tta, int8, model_id, graph_weight, map_weight, map_whiten):
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

    try:
        result = export_encoder(source, output, flip_tta=flip_tta, int8=int8, model_id=model_id,
                                graph_weight=graph_weight, map_weight=map_weight, map_whiten=map_whiten)
    except ImgretError as exc:
        raise click.ClickException(str(exc)) from exc
    p = result.parity
    click.echo(f"parity on {p.count} {p.source}: max abs diff {p.max_abs_diff:.2e}, min cosine {p.min_cosine:.7f}",
               err=True)
    if result.int8 is not None:
        q = result.int8
        click.echo(f"int8 vs fp32 on {q.count} pictures: mean top-{q.k} neighbour overlap {q.mean_topk_overlap:.3f}, "
                   f"max abs diff {q.max_abs_diff:.4f}, min cosine {q.min_cosine:.5f}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"wrote {result.path} ({result.info.model_id}, {result.info.embedding_dim}-d, "
               f"{result.info.input_size}px)")
    if result.int8 is not None:
        click.echo(f"wrote {result.int8.path}")
