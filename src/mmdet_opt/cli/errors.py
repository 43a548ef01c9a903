"""The one error the commands print as a single line (exit code 2) instead of a traceback."""
from __future__ import annotations


class CliError(Exception):
    """Bad input to a command: the message names the problem in one line."""


def one_line(exc: BaseException) -> str:
    """``Type: first line of the message``, for errors that come from other libraries."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
