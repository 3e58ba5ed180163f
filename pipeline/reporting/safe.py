"""User strings made inert for each output: terminal (rich), spreadsheet (CSV) cells.

HTML needs nothing here: the templates autoescape, and chart data is JSON with every markup
character written as a \\u escape.
"""

from __future__ import annotations

import re

from rich.text import Text

# Cells a spreadsheet reads as a formula (OWASP "CSV injection"): first character one of these.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")


def printable(value: str) -> str:
    """``value`` with every control character (escape, bell, newline...) shown as ``\\xNN``."""
    if value.isprintable():
        return value
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in value)


def term(value: object) -> Text:
    """A cell for a rich table: plain text, never parsed as markup or emoji codes."""
    return Text(printable(str(value)))


def csv_cell(value: str) -> str:
    """A CSV cell no spreadsheet runs: a leading formula character gets a ``'`` prefix.

    Plain numbers (``-1.5``) stay as they are: a spreadsheet reads them as numbers, not formulas.
    """
    if value.startswith(FORMULA_STARTS) and not _NUMBER.match(value):
        return "'" + value
    return value
