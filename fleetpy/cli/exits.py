"""The one place that turns errors into exit statuses and one-line messages (fleetctl's words where it has them).

Edge of the CLI. ``run`` wraps a whole invocation: usage mistakes and every ``FleetError`` become a message on
stderr and an exit status, never a traceback; an unexpected exception becomes one line too, unless ``--debug`` is
given, in which case it is re-raised with its traceback (as are FleetErrors, for their cause chain).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable

import click

from fleetpy.client.errors import OutputFormatError, UnitCreationError, UnitNotFound, UnitStateError, WaitFailed
from fleetpy.errors import FleetError


class ExitStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1  # fleetctl exits 1 for every error, usage errors included
    INTERRUPTED = 130


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def one_line(text: str) -> str:
    """``text`` with its control characters escaped (``\\n``, ``\\x1b``): a unit name or field a user typed with a
    newline (or a terminal escape) in it cannot split a message or reach the terminal raw. Tabs are kept."""
    return _CONTROL.sub(lambda m: {"\n": "\\n", "\r": "\\r"}.get(m.group(), f"\\x{ord(m.group()):02x}"), text)


def _echo(lines: list[str]) -> None:
    for line in lines:
        click.echo(one_line(line), err=True)


def describe(err: FleetError) -> list[str]:
    """The stderr lines for a FleetError (fleet's exact wording for the ones fleetctl prints verbatim)."""
    if isinstance(err, WaitFailed):
        return err.lines()
    if isinstance(err, UnitCreationError):
        return [f"Error creating units: {err}"]
    if isinstance(err, UnitNotFound | UnitStateError | OutputFormatError):
        return [str(err)]
    return [f"Error: {err}"]


def _usage_lines(err: click.UsageError) -> list[str]:
    ctx = err.ctx
    hint = f"Run '{ctx.command_path} --help' for usage." if ctx is not None else "Run 'fleetpy help' for usage."
    return [f"Error: {err.format_message()}", hint]


def run(invoke: Callable[[], object], *, debug: Callable[[], bool]) -> int:
    """Run ``invoke`` (the click main in non-standalone mode) and return the exit status."""
    try:
        result = invoke()
    except click.exceptions.Exit as exit_:
        return int(exit_.exit_code)
    except click.UsageError as err:
        _echo(_usage_lines(err))
        return ExitStatus.ERROR
    except click.ClickException as err:
        _echo([f"Error: {err.format_message()}"])
        return ExitStatus.ERROR
    except (click.Abort, KeyboardInterrupt):
        if debug():
            raise
        click.echo("Interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except FleetError as err:
        if debug():
            raise
        _echo(describe(err))
        return ExitStatus.ERROR
    except BrokenPipeError:
        return ExitStatus.ERROR
    except Exception as err:
        if debug():
            raise
        text = str(err).splitlines()[0] if str(err) else ""
        _echo([f"Error: unexpected {type(err).__name__}: {text} (run with --debug for the traceback)"])
        return ExitStatus.ERROR
    return int(result) if isinstance(result, int) else ExitStatus.SUCCESS
