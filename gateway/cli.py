"""Operator commands: `flask --app wsgi scores load FILE.json` loads model scores for /v1/route."""

from __future__ import annotations

import json

import click
from flask import current_app
from flask.cli import AppGroup
from pydantic import ValidationError

from .profiles import ProfilesUnavailable, parse_scores
from .runtime import EXTENSION

scores_cli = AppGroup("scores", help="Model scores that POST /v1/route chooses by.")


@scores_cli.command("load")
@click.argument("file", type=click.File("rb"))
def load_scores(file) -> None:
    """Load FILE (JSON list of {model, deployment_mode, score, window_start[, window_end, samples]}).

    A score replaces the one of the same model, mode and window start; the file loads whole or not at all.
    Use "-" to read standard input.
    """
    try:
        scores = parse_scores(json.load(file))
    except ValueError as exc:  # malformed JSON, or pydantic's ValidationError (a ValueError)
        raise click.ClickException(f"{file.name}: {_explain(exc)}") from None
    runtime = current_app.extensions[EXTENSION]
    try:
        count = runtime.profiles.record_scores(scores)
    except ProfilesUnavailable as exc:
        raise click.ClickException(f"the model score store did not answer: {exc}") from None
    finally:
        runtime.store.close()
    click.echo(f"loaded {count} model score(s) into the {runtime.profiles.kind} store")
    if runtime.profiles.kind == "memory":
        # The embedded store lives inside each gateway process; a separate command cannot reach it.
        click.echo("warning: POSTGRES_DSN is not set, so these scores are held only by this command's "
                   "in-process store; set POSTGRES_DSN to load them for running gateways", err=True)


def _explain(exc: ValueError) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}"
                         for e in exc.errors())
    return f"not valid JSON ({exc})"
