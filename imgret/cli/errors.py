"""Where library exceptions become one clear line on stderr and an exit code.

Library errors exit 1; usage errors (bad options, missing arguments) exit 2; Ctrl-C exits 130.
A full disk (ENOSPC, EFBIG, EDQUOT) and a damaged or unwritable SQLite catalogue also exit 1 with one
line that says what to do. No traceback reaches the user.
"""

from __future__ import annotations

import errno
import sys

import click

from imgret.errors import ImgretError


def run_cli(group: click.Group, args=None) -> int:
    """Run ``group`` and map every expected failure to a single line on stderr."""
    try:
        code = group.main(args=args, prog_name="imgret", standalone_mode=False)
        return code if isinstance(code, int) else 0  # a command's ctx.exit(1): done, but not all went well
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
    except Exception as exc:
        message = storage_message(exc)
        if message is None:
            raise
        click.echo(f"imgret: error: {_one_line(message)}", err=True)
        return 1


# What `train`/`export` say when PyTorch is missing. imgret is not on the package index yet, so the
# line names what works today from anywhere (torch and onnx are the whole `train` extra) and from a clone.
TRAIN_INSTALL_HINT = ("imgret {cmd} needs PyTorch and onnx: pip install torch==2.13.0 'onnx>=1.15,<2' "
                      "(in a clone of imgret: pip install torch==2.13.0 && pip install '.[train]')")

NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}
KEPT = "the library keeps everything committed before this"


def storage_message(exc: BaseException) -> str | None:
    """A clear message for a full disk, a damaged/unwritable catalogue or another operating-system error
    (a file that cannot be written, say), or ``None`` for anything else, which is a bug to show."""
    if isinstance(exc, OSError) and exc.errno in NO_SPACE_ERRNOS:
        where = f" {exc.filename}" if exc.filename else ""
        return f"no space left to write{where} ({exc.strerror}); free some space and run again; {KEPT}"
    if isinstance(exc, OSError) and exc.strerror:  # e.g. --montage into a folder that does not exist
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    if type(exc).__module__ != "sqlite3":  # not importing sqlite3 here keeps `imgret --help` quick
        return None
    text = str(exc)
    if "full" in text or "disk I/O" in text:
        return (f"cannot write the library catalogue ({text}): the disk is probably full; "
                f"free some space and run again; {KEPT}")
    if "malformed" in text or "not a database" in text or "corrupt" in text:
        return (f"the library catalogue is damaged ({text}); move the library folder aside and run "
                "`imgret index FOLDER` again to rebuild it")
    if "locked" in text or "busy" in text:
        return f"the library catalogue is busy ({text}); try again in a moment"
    if "readonly" in text or "read-only" in text:
        return f"the library catalogue cannot be written ({text}); check the library folder's permissions"
    return None


def _one_line(text: str) -> str:
    return " ".join(text.split())
