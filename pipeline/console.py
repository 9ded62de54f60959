"""The command line's console, and how it prints tables.

Where the output is not a terminal (a pipe, a log file, a script) Rich cannot ask for a width and lays
everything out for 80 columns, which would cut the versions, identifiers and paths that a script or a
person copies from a table; there tables are laid out for their whole content instead.
"""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

UNCUT_WIDTH = 1000  # columns for a table printed where there is no terminal: wider than any the CLI prints

console = Console()


def print_table(table: Table) -> None:
    if console.is_terminal:
        console.print(table)
    else:  # a console's width caps what it prints, so a wider one for this table, to the same output
        Console(file=console.file, width=UNCUT_WIDTH).print(table)
