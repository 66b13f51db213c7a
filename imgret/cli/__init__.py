"""The ``imgret`` command line: a thin layer over the library.

Results go to stdout, progress and messages to stderr. Heavy modules (onnxruntime, usearch, torch)
are imported inside commands, so ``imgret --help`` is instant and only ``train``/``export`` need torch.
Each command's module is imported only when that command runs (or help lists it): a cold
``imgret query`` does not pay for the options of ``train``, ``dups`` or ``check``.
"""

from __future__ import annotations

import gc
import importlib
import sys

import click

from imgret.cli.errors import run_cli
from imgret.version import version

# Command name -> "module:attribute", in the order help lists them (everyday ones first).
COMMANDS = {
    "dups": "imgret.cli.dups_cmd:dups_command",
    "index": "imgret.cli.library_cmds:index_command",
    "query": "imgret.cli.library_cmds:query_command",
    "info": "imgret.cli.library_cmds:info_command",
    "models": "imgret.cli.library_cmds:models_command",
    "eval": "imgret.cli.eval_cmd:eval_command",
    "train": "imgret.cli.train_cmds:train_command",
    "export": "imgret.cli.train_cmds:export_command",
    "check": "imgret.cli.maintenance_cmds:check_command",
    "relocate": "imgret.cli.maintenance_cmds:relocate_command",
}


def _print_version(ctx: click.Context) -> None:
    # The version is read only when asked for (importlib.metadata is a tenth of a cold query).
    if not ctx.resilient_parsing:
        click.echo(f"imgret, version {version()}")
        ctx.exit()


class _LazyGroup(click.Group):
    """Imports a command's module when the command is looked up; lists commands in :data:`COMMANDS`
    order (everyday ones first), not alphabetically."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, cmd_name):
        where = COMMANDS.get(cmd_name)
        if where is None:
            return None
        module, attribute = where.split(":")
        command = getattr(importlib.import_module(module), attribute)
        if _WHOLE_PROCESS:
            # What the imports made (numpy's, click's, imgret's: ~20k objects) lives until the process
            # ends: out of the garbage collector's sight, no collection walks it again, the last one
            # at exit included (~40 ms of a 0.4 s `imgret query` on this 2-core machine;
            # benchmarks/README.md, "Cold query, round 3"). Not when the CLI runs inside another
            # program (tests, an app): there the objects frozen would include its own garbage.
            gc.freeze()
        if command.name != cmd_name:  # the table and the command's own name must agree
            raise RuntimeError(f"{where} is named {command.name!r}, listed as {cmd_name!r}")
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


_WHOLE_PROCESS = False  # set by main(): this process is the command and ends with it


def main() -> None:
    """Console entry point."""
    global _WHOLE_PROCESS  # noqa: PLW0603 - one switch, set once by the entry point
    _WHOLE_PROCESS = True
    sys.exit(run_cli(cli))
