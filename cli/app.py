"""The ``interdict`` command: one typer app, one handler per subcommand, one error exit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import typer

from interdict.home import Home

app = typer.Typer(
    name="interdict",
    help="Inter-agency sanction sharing: verified entries in, signed directives out, "
         "every step in a verifiable audit log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
)


@dataclass
class Options:
    home: Home
    verbose: bool


@app.callback()
def _root(
    ctx: typer.Context,
    home: Annotated[str | None, typer.Option(
        "--home", envvar="INTERDICT_HOME", metavar="DIR",
        help="The installation's folder [default: ./.interdict]")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v",
                                          help="Show Prefect's own logs.")] = False,
) -> None:
    ctx.obj = Options(Home.resolve(home), verbose)


JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def options(ctx: typer.Context) -> Options:
    found = ctx.find_root().obj
    assert isinstance(found, Options)
    return found
