"""The ``imgret`` command line: a thin layer over the library.

Results go to stdout, progress and messages to stderr. Heavy modules (onnxruntime, usearch, torch)
are imported inside commands, so ``imgret --help`` is instant and only ``train``/``export`` need torch.
"""

from __future__ import annotations

import sys

import click

# torch-free at import: torch is imported inside commands
from imgret.cli import dups_cmd, eval_cmd, maintenance_cmds, train_cmds
from imgret.cli.errors import run_cli
from imgret.cli.library_cmds import index_command, info_command, models_command, query_command
from imgret.version import version


def _print_version(ctx: click.Context) -> None:
    # The version is read only when asked for (importlib.metadata is a tenth of a cold query).
    if not ctx.resilient_parsing:
        click.echo(f"imgret, version {version()}")
        ctx.exit()


class _InOrder(click.Group):
    """Lists commands in the order they were added (everyday ones first), not alphabetically."""

    def list_commands(self, ctx):
        return list(self.commands)


@click.group(cls=_InOrder, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, help="Show the version and exit.",
              callback=lambda ctx, _param, value: _print_version(ctx) if value else None)
def cli():
    """imgret: find similar pictures on your computer.

    \b
    Quick start:
      imgret index ~/Pictures          # embed every picture (later runs: only changes)
      imgret dups                      # groups of copies, largest first
      imgret query photo.jpg -N 5      # the five most similar pictures
    """


for _command in (
    dups_cmd.dups_command, index_command, query_command, info_command, models_command,
    eval_cmd.eval_command, train_cmds.train_command, train_cmds.export_command,
    maintenance_cmds.check_command, maintenance_cmds.relocate_command,
):
    cli.add_command(_command)


def main() -> None:
    """Console entry point."""
    sys.exit(run_cli(cli))
