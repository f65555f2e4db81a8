"""Exception types.

``InputError`` (and its subclass ``ConfigError``) mean *bad input*: they must be raised
identically on every rank before any collective, so the CLI prints them once and every rank exits
cleanly.  Any other exception is treated as a rank-local failure and aborts the whole job (see
:func:`hpcmsm.parallel.abort_on_error`).
"""


class HpcmsmError(Exception):
    """Base class of hpcmsm's own errors."""


class InputError(HpcmsmError):
    """Bad user input (file, value, option). Raised on every rank, before any collective."""


class ConfigError(InputError):
    """A TOML input that fails validation; the message names the file and the key."""

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file, self.key, self.reason = file, key, message
        where = ""
        if file:
            where += f"{file}: "
        if key:
            where += f"'{key}': "
        super().__init__(where + message)


class ConvergenceError(HpcmsmError):
    """A nonlinear or linear solve did not converge (callers may cut the step back)."""
