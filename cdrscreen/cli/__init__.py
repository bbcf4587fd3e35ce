"""Command-line interface: ``cdrscreen VERB ...``; one module per verb.

Every user-facing error is a :class:`cdrscreen.errors.CdrscreenError`; :func:`main`
prints its message (one line per problem) and exits with status 2, never a traceback.
"""

from __future__ import annotations

import sys

import click
import typer

from cdrscreen.cli import ablate, demo, evaluate, extract, info, report
from cdrscreen.errors import CdrscreenError

app = typer.Typer(
    name="cdrscreen",
    help=(
        "Dementia (CDR) screening research toolkit: extract interview features, evaluate "
        "leak-free leave-one-subject-out protocols, and write reports. A research tool, "
        "not a diagnostic device."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _mod in (demo, info, extract, evaluate, ablate, report):
    app.command(name=_mod.NAME, help=_mod.__doc__)(_mod.command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cdrscreen`` script; returns the exit status."""
    try:
        app(args=argv, standalone_mode=False)
    except CdrscreenError as err:
        for line in str(err).splitlines():
            typer.secho(f"error: {line}", fg="red", err=True)
        return 2
    except click.exceptions.Exit as err:
        return err.exit_code
    except click.exceptions.Abort:
        typer.echo("aborted", err=True)
        return 130
    except click.ClickException as err:
        err.show()
        return err.exit_code
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
