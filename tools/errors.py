"""One error type for every expected failure, and the wrapper that turns it into one line."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

P = ParamSpec("P")
R = TypeVar("R")

err_console = Console(stderr=True, highlight=False, soft_wrap=True)

# Exit codes shared by every command: 0 ok, 1 "the check found a problem", 2 bad input.
EXIT_FINDING = 1
EXIT_BAD_INPUT = 2


class ToolError(Exception):
    """A failure the user can act on: printed as one line, never as a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_BAD_INPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def one_line_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn ToolError (and Ctrl-C) into `error: <message>` on stderr and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except ToolError as exc:
            err_console.print(f"error: {exc}", markup=False)
            raise typer.Exit(code=exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("error: interrupted", markup=False)
            raise typer.Exit(code=130) from None

    return wrapper
