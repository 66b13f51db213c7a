"""Where library exceptions become one clear line on stderr and an exit code.

Library errors exit 1; usage errors (bad options, missing arguments) exit 2; Ctrl-C exits 130.
No traceback reaches the user.
"""

from __future__ import annotations

import sys

import click

from imgret.errors import ImgretError


def run_cli(group: click.Group, args=None) -> int:
    """Run ``group`` and map every expected failure to a single line on stderr."""
    try:
        group.main(args=args, prog_name="imgret", standalone_mode=False)
        return 0
    except click.exceptions.Abort:
        click.echo("imgret: interrupted; work committed so far is kept", err=True)
        return 130
    except KeyboardInterrupt:
        click.echo("imgret: interrupted; work committed so far is kept", err=True)
        return 130
    except click.UsageError as exc:
        if type(exc).__name__.startswith("NoArgsIsHelp") and exc.ctx is not None:  # click >= 8.2
            click.echo(exc.ctx.get_help())
            return 2
        hint = f" (see `{exc.ctx.command_path} --help`)" if exc.ctx else ""
        click.echo(f"imgret: error: {_one_line(exc.format_message())}{hint}", err=True)
        return exc.exit_code
    except click.ClickException as exc:
        click.echo(f"imgret: error: {_one_line(exc.format_message())}", err=True)
        return exc.exit_code
    except ImgretError as exc:
        click.echo(f"imgret: error: {_one_line(str(exc))}", err=True)
        return 1
    except BrokenPipeError:
        # The reader of our output went away (e.g. `| head`); that is not an error.
        sys.stderr.close()
        return 0


def _one_line(text: str) -> str:
    return " ".join(text.split())
