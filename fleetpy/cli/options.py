"""Shared per-command options (``--no-legend``, ``--full``/``-l``, ``--fields``, ``--no-block``,
``--block-attempts``, ``--replace``) and ``FleetCommand``, which accepts pflag's ``--flag=true|false`` spelling.

Edge of the CLI, no I/O. fleetctl (cobra/pflag) accepts ``--no-block=true`` and ``--strict-host-key-checking=false``;
click flags take no value, so ``FleetCommand`` rewrites those tokens before click parses them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

_TRUE = frozenset({"1", "t", "true", "y", "yes", "on"})
_FALSE = frozenset({"0", "f", "false", "n", "no", "off"})


def rewrite_bool_values(params: list[click.Parameter], args: list[str]) -> list[str]:
    """``--flag=false`` -> ``--no-flag`` (or nothing), ``--flag=true`` -> ``--flag``, for the bool flags in
    ``params``; everything after ``--`` is left alone."""
    flags: dict[str, tuple[str, str | None]] = {}
    for param in params:
        if isinstance(param, click.Option) and param.is_flag and param.is_bool_flag:
            off = param.secondary_opts[0] if param.secondary_opts else None
            for opt in param.opts:
                if opt.startswith("--"):
                    flags[opt] = (opt, off)
    out: list[str] = []
    for i, arg in enumerate(args):
        if arg == "--":
            out.extend(args[i:])
            break
        name, eq, value = arg.partition("=")
        if eq and name in flags:
            lowered = value.strip().lower()
            if lowered not in _TRUE | _FALSE:
                raise click.UsageError(f'invalid argument "{value}" for "{name}" flag: expected true or false')
            on, off = flags[name]
            if lowered in _TRUE:
                out.append(on)
            elif off is not None:
                out.append(off)
            continue
        out.append(arg)
    return out


class FleetCommand(click.Command):
    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rewrite_bool_values(self.get_params(ctx), args))


def no_legend(fn: F) -> F:
    return click.option("--no-legend", is_flag=True, help="Do not print a legend (column headers).")(fn)


def full(fn: F) -> F:
    return click.option("--full", "-l", "--l", "full", is_flag=True,
                        help="Do not ellipsize fields on output (fleetctl 1.0 rejected -l; fleetpy accepts it).")(fn)


def fields(default: str, valid: list[str]) -> Callable[[F], F]:
    return click.option("--fields", default=default, show_default=True, metavar="FIELDS",
                        help=f"Columns to print, comma-separated. Valid fields are {','.join(sorted(valid))!r}.")


def blocking(verb: str, *, no_block: bool = True) -> Callable[[F], F]:
    def decorate(fn: F) -> F:
        fn = click.option("--block-attempts", type=click.IntRange(min=0), default=0, metavar="N",
                          help=f"Wait until the units are {verb}, performing up to N attempts (about 2 s each) "
                               "before giving up. 0 means no limit. Does not apply to global units.")(fn)
        if no_block:
            fn = click.option("--no-block", is_flag=True,
                              help=f"Do not wait until the units are {verb} before exiting.")(fn)
        return fn

    return decorate


def replace(fn: F) -> F:
    return click.option("--replace", is_flag=True,
                        help="Replace the unit in the registry when the local file differs (allowed only in some "
                             "states: submit inactive; load inactive/loaded; start any).")(fn)
