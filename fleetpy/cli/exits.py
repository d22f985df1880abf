"""The one place that turns errors into exit statuses and one-line messages (fleetctl's words where it has them).

Edge of the CLI. ``run`` wraps a whole invocation: usage mistakes and every ``FleetError`` become a message on
stderr and an exit status, never a traceback; an unexpected exception becomes one line too, unless ``--debug`` is
given, in which case it is re-raised with its traceback (as are FleetErrors, for their cause chain).
"""

from __future__ import annotations

import enum
from collections.abc import Callable

import click

from fleetpy.client.errors import OutputFormatError, UnitCreationError, UnitNotFound, UnitStateError, WaitFailed
from fleetpy.errors import FleetError


class ExitStatus(enum.IntEnum):
    SUCCESS = 0
    ERROR = 1  # fleetctl exits 1 for every error, usage errors included
    INTERRUPTED = 130


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
        for line in _usage_lines(err):
            click.echo(line, err=True)
        return ExitStatus.ERROR
    except click.ClickException as err:
        click.echo(f"Error: {err.format_message()}", err=True)
        return ExitStatus.ERROR
    except (click.Abort, KeyboardInterrupt):
        if debug():
            raise
        click.echo("Interrupted", err=True)
        return ExitStatus.INTERRUPTED
    except FleetError as err:
        if debug():
            raise
        for line in describe(err):
            click.echo(line, err=True)
        return ExitStatus.ERROR
    except BrokenPipeError:
        return ExitStatus.ERROR
    except Exception as err:
        if debug():
            raise
        text = str(err).splitlines()[0] if str(err) else ""
        click.echo(f"Error: unexpected {type(err).__name__}: {text} (run with --debug for the traceback)", err=True)
        return ExitStatus.ERROR
    return int(result) if isinstance(result, int) else ExitStatus.SUCCESS
