"""The command line's console.

Where the output is not a terminal (a pipe, a log file, a script) Rich cannot ask for a width and lays
tables out for 80 columns, cutting the versions, identifiers and paths that a script or a person copies
from them; there tables are laid out for their whole content instead.
"""

from __future__ import annotations

import sys

from rich.console import Console

UNCUT_WIDTH = 1000  # columns for output that is not a terminal: wider than any table the CLI prints

console = Console(width=None if sys.stdout.isatty() else UNCUT_WIDTH)
