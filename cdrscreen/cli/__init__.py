"""Command-line interface: ``cdrscreen VERB ...``; one module per verb.

Every user-facing error is a :class:`cdrscreen.core.errors.CdrscreenError`; :func:`main`
prints its message (one line per problem) and exits with status 2, never a traceback.
"""

from __future__ import annotations

import sys

from cdrscreen.core.memory import arrow_on_the_c_heap

arrow_on_the_c_heap()  # before pandas imports pyarrow: bounded memory on long recordings

import typer  # noqa: E402

from cdrscreen.cli import ablate, check, demo, evaluate, extract, info, report  # noqa: E402
from cdrscreen.core.errors import CdrscreenError  # noqa: E402

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

for _mod in (demo, info, check, extract, evaluate, ablate, report):
    app.command(name=_mod.NAME, help=_mod.__doc__)(_mod.command)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``cdrscreen`` script; returns the exit status."""
    try:
        rv = app(args=argv, prog_name="cdrscreen", standalone_mode=False)
    except CdrscreenError as err:
        for line in str(err).splitlines():
            typer.secho(f"error: {line}", fg="red", err=True)
        return 2
    except typer.Exit as err:
        return int(err.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("aborted", err=True)
        return 130
    except typer.TyperException as err:  # usage errors: unknown verb/option, bad value
        err.show()
        return int(getattr(err, "exit_code", 2))
    if rv == 130:  # click (standalone_mode=False) returns 130 for Ctrl-C instead of raising
        typer.echo("aborted", err=True)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
