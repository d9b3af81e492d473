"""How ctl reports failure: one line on stderr, worded like kubectl, exit code 1.

Commands raise `CliError` with the finished message; `cli.main` prints it as
`error: <message>`. Errors returned by the API server (`controlplane.client.ApiError`)
are printed the way kubectl prints them: `Error from server (NotFound): pods "x" not found`.
When the server cannot be reached at all, the message says how to start one.
"""

from __future__ import annotations

import sys

from controlplane.client import (AlreadyExists, ApiError, Conflict, FailedPrecondition, Forbidden, Invalid, NotFound,
                                 TooOld, Unavailable)

# kubectl's StatusReason for each error the client raises.
_REASONS: list[tuple[type[ApiError], str]] = [
    (NotFound, "NotFound"),
    (AlreadyExists, "AlreadyExists"),
    (Conflict, "Conflict"),
    (Invalid, "Invalid"),
    (FailedPrecondition, "Forbidden"),
    (Forbidden, "Forbidden"),
    (TooOld, "Expired"),
    (Unavailable, "ServiceUnavailable"),
]


class CliError(Exception):
    """A failure with a message ready for the user. `code` is the exit status."""

    def __init__(self, message: str, *, code: int = 1, detail: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.detail = detail  # printed as is under the error line (e.g. the tail of a log)

    def lines(self) -> list[str]:
        return [f"error: {one_line(self.message)}", *self.detail.splitlines()]


class ManyErrors(CliError):
    """Several independent failures (one per bad document), each printed on its own line."""

    def __init__(self, messages: list[str], *, code: int = 1):
        super().__init__("; ".join(messages), code=code)
        self.messages = messages

    def lines(self) -> list[str]:
        return [f"error: {one_line(m)}" for m in self.messages]


def one_line(text: str) -> str:
    """Fold a multi-line message into one line."""
    return "; ".join(part.strip() for part in str(text).splitlines() if part.strip())


def is_unreachable(exc: ApiError) -> bool:
    return isinstance(exc, Unavailable) and "unreachable" in exc.message


def api_error_line(exc: ApiError, context: str = "") -> str:
    """The line kubectl would print for an error from the server. `context` goes in front
    of the server's message (`error when creating "web.yaml": `)."""
    if is_unreachable(exc):
        return f"error: {one_line(exc.message)} (start one with: ctl cluster up)"
    reason = next((name for cls, name in _REASONS if isinstance(exc, cls)), "")
    if not reason:
        code = getattr(exc, "code", None)
        reason = {"DEADLINE_EXCEEDED": "Timeout"}.get(getattr(code, "name", ""), "InternalError")
    return f"Error from server ({reason}): {context}{one_line(exc.message)}"


def print_error(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def report(exc: BaseException) -> None:
    """Print one error (API, validation or CLI) as its one line on stderr."""
    if isinstance(exc, ApiError):
        print_error(api_error_line(exc))
    elif isinstance(exc, CliError):
        for line in exc.lines():
            print_error(line)
    else:
        print_error(f"error: {one_line(str(exc))}")
