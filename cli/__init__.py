"""The command line: ``interdict --help``. ``main`` is the console script and test entry."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from interdict.cli import (  # noqa: F401  (each module registers its commands)
    accountability,
    agencies,
    audit,
    delivery,
    erasure,
    importing,
    issuing,
    main_job,
    objections,
    onboarding,
    quarantine,
)
from interdict.cli.app import app
from interdict.cli.output import err
from interdict.errors import InterdictError


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; errors become one line on stderr and a non-zero exit status."""
    try:
        result = app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except InterdictError as exc:
        sys.stderr.write(f"error[{exc.code}]: {' '.join(exc.message.split())}\n")
        return 1
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        err.print("aborted")
        return 130
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
