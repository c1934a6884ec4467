"""The `rawback` command line. Each command parses its options and calls plain functions
(rawback.batch, rawback.convert, rawback.camera, rawback.profile_curve...); only this package
and rawback.console draw.

app.py holds the Typer app, exit statuses and `run` (the console script); options.py the option
types commands share; convert.py, evaluate.py, train.py and profile.py one command group each.
Heavy imports (numpy, rawpy, Pillow, the converters) happen inside the commands, so
`rawback --help` is instant. A problem the user can fix (RawbackError) prints as one line,
`error: <message>`, on stderr, with exit status 1 (2 for contradictory options), never a traceback.
"""

# The command modules are imported for their side effect: their commands register on `app`, and
# `rawback --help` lists them in the order they register (convert, batch, sample, eval, train,
# calibrate; the profile group comes last whatever the order).
from rawback.cli import convert, evaluate, profile, train  # noqa: F401
from rawback.cli.app import app, run

__all__ = ["app", "run"]
