"""The CLI's one error handler: every failure becomes a clear message and a non-zero exit.

`ShoalGroup` is the root click group of `shoal`; every verb runs inside its `invoke`, so API
errors (with their field-path causes), an unreachable server, bad manifests and Ctrl-C are
reported here, never as a traceback. A verb whose exit codes mean something else (`diff`:
1 = differences) sets a different error exit code with `set_error_exit_code`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from shoal.api.errors import ApiError
from shoal.cli.context import DEFAULT_SERVER
from shoal.cli.manifests import ManifestError

ERROR_EXIT_META_KEY = "shoal.error_exit_code"
LOCATOR_META_KEY = "shoal.locate_field"
INTERRUPTED_EXIT_CODE = 130
DEBUG_ENV = "SHOAL_DEBUG"


class CommandError(Exception):
    """A failure the command itself detected; the message says what to do."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def set_error_exit_code(ctx: typer.Context, code: int) -> None:
    """Exit with `code` instead of 1 when the running command fails."""
    ctx.meta[ERROR_EXIT_META_KEY] = code


def set_field_locator(ctx: typer.Context, locate: Callable[[str], str]) -> None:
    """Show API causes' field paths through `locate` (apply: `items[2].x` → file and doc)."""
    ctx.meta[LOCATOR_META_KEY] = locate


def error_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def format_api_error(error: ApiError, locate: Callable[[str], str] | None = None) -> list[str]:
    """The message and one line per cause: `  spec.replicas: must be >= 0`."""
    lines = [f"error: {error.message}"]
    for cause in error.causes:
        field = locate(cause.field) if locate else cause.field
        lines.append(f"  {field}: {cause.message}" if field else f"  {cause.message}")
    return lines


def unreachable_message(server: str, error: Exception) -> str:
    """What to say when the server cannot be reached, and what to do about it."""
    detail = str(error) or type(error).__name__
    return (
        f"cannot reach shoal server at {server}: {detail} "
        "(is `shoal server` running? set --server or SHOAL_SERVER)"
    )


def server_of(error: httpx.TransportError) -> str:
    """The server URL a failed request was sent to."""
    try:
        url = error.request.url
    except RuntimeError:  # an error raised before any request was made
        return DEFAULT_SERVER
    return f"{url.scheme}://{url.netloc.decode('ascii')}"


class ShoalGroup(TyperGroup):
    """Root group: runs the verb and turns any failure into a message and an exit code."""

    def invoke(self, ctx: Any) -> Any:  # typer's Context (typer vendors its own click)
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # usage errors and deliberate exits: typer reports them itself
        except KeyboardInterrupt:
            raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
        except Exception as error:  # the one place that turns failures into messages
            if os.environ.get(DEBUG_ENV):
                raise  # a developer asked for the traceback
            code = self._report(ctx.meta, error)
            raise typer.Exit(code) from None

    @staticmethod
    def _report(meta: dict[str, Any], error: Exception) -> int:
        console = error_console()
        code = int(meta.get(ERROR_EXIT_META_KEY, 1))
        transport = error if isinstance(error, httpx.TransportError) else error.__cause__
        if isinstance(transport, httpx.TransportError):
            # The client raises Unavailable from the transport error; say it our way.
            console.print(escape("error: " + unreachable_message(server_of(transport), transport)))
        elif isinstance(error, ApiError):
            locate = meta.get(LOCATOR_META_KEY)
            for line in format_api_error(error, locate):
                console.print(escape(line))
        elif isinstance(error, ManifestError):
            console.print(escape(f"error: {error}"))
        elif isinstance(error, CommandError):
            console.print(escape(f"error: {error}"))
            code = max(code, error.exit_code)
        else:
            console.print(
                escape(
                    f"error: unexpected {type(error).__name__}: {error} "
                    f"(set {DEBUG_ENV}=1 for the traceback)"
                )
            )
        return code
