"""Every exception tickhub raises on purpose, in one tree.

Errors are values in the protocol, exceptions at the edges. A client's mistake is never raised:
it is a :class:`tickhub.core.protocol.ProtocolError` value (a ``code`` and a ``message``) that
the validator returns and the hub sends back as an ``error`` message, while the connection stays
open. An exception is for what stops an operation at the boundary of the service: a setting that
cannot be used (the start stops), a file or a frame from outside that cannot be read, a backend
that cannot answer now. Catching :class:`TickhubError` catches exactly those, and nothing that
is a bug::

    TickhubError                              (Exception)
    ├── ConfigError                           a setting has a bad value: exit code 2 at start
    ├── UnknownSymbolError                    (LookupError) no instrument answers to a name
    ├── InputFileError                        (ValueError) outside data that cannot be used
    │   ├── InstrumentsFileError              an instruments dump
    │   ├── ReplayError                       a tick or bar file, or one line of it
    │   ├── PortfolioFileError                a positions file (CSV or JSON)
    │   └── KiteParseError                    a Kite binary frame cut short
    └── UnavailableError                      (ConnectionError) a backend cannot answer now
        ├── BusUnavailableError               Redis, for a call that needs it
        └── StoreUnavailableError             PostgreSQL

Each class keeps the Python base it had before the tree existed (in parentheses above), so a
caller that catches ``ValueError``, ``LookupError`` or ``ConnectionError`` still catches it:
the hub, for one, treats any ``ConnectionError`` from the bus as "down, say so once".

Two exceptions stay private to their module and out of the tree, on purpose: the Kite client's
``_SessionEnd`` and the checker's ``_Abort`` are control flow (they unwind one loop to its
``except`` a few frames up, carrying why) and never leave the module, so no caller can or should
catch them. Field validation raises nothing: it returns ``ProtocolError`` values, in one place
(``tickhub.core.commands``), for client messages and positions-file rows alike.
"""

from __future__ import annotations

__all__ = [
    "BusUnavailableError",
    "ConfigError",
    "InputFileError",
    "InstrumentsFileError",
    "KiteParseError",
    "PortfolioFileError",
    "ReplayError",
    "StoreUnavailableError",
    "TickhubError",
    "UnavailableError",
    "UnknownSymbolError",
]


class TickhubError(Exception):
    """The root: anything tickhub raises on purpose. Its message is meant for a person (a log
    line, the CLI's one-line error) and names what is at fault."""


class ConfigError(TickhubError):
    """A setting has a bad value; the message names the variable."""


class UnknownSymbolError(TickhubError, LookupError):
    """No instrument answers to this name; ``name`` is the name as given."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown symbol: {name!r}")


class InputFileError(TickhubError, ValueError):
    """Data from outside the service (a file, a frame) that cannot be used. The message says
    where (file and line, or byte offset) and why; nothing of the input has been applied."""


class _LocatedFileError(InputFileError):
    """A file error at ``source:line`` (``line`` 1-based, ``None``: the whole file)."""

    def __init__(self, source: str, line: int | None, reason: str) -> None:
        self.source = source
        self.line = line
        self.reason = reason
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


class InstrumentsFileError(_LocatedFileError):
    """An instruments file that cannot be used; ``line`` is 1-based (``None``: the whole file)."""


class ReplayError(_LocatedFileError):
    """A tick or bar file that cannot be used, or one bad line of it.

    ``line`` is 1-based (``None``: the whole file); the message reads ``source:line: reason``.
    The replay also yields it as a value for a bad line it skips.
    """


class PortfolioFileError(InputFileError):
    """A positions file that cannot be used, and where: ``line`` (1-based; CSV rows, JSON syntax
    errors) or ``item`` (JSON: ``[2]`` or ``positions[2]``, the 0-based list index); both
    ``None`` when the whole file is at fault."""

    def __init__(
        self, source: str, line: int | None, reason: str, *, item: str | None = None
    ) -> None:
        self.source = source
        self.line = line
        self.item = item
        self.reason = reason
        if line is not None:
            where = f"{source}:{line}"
        elif item is not None:
            where = f"{source}: {item}"
        else:
            where = source
        super().__init__(f"{where}: {reason}")


class KiteParseError(InputFileError):
    """A binary frame whose envelope is cut short; ``offset`` is where it breaks (0-based)."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class UnavailableError(TickhubError, ConnectionError):
    """A backend could not answer a call that needs it: unreachable, or lost during the call.
    Callers degrade (an empty snapshot, a retry later) rather than fail the request."""


class BusUnavailableError(UnavailableError):
    """Redis could not answer a request that needs it (``retained``)."""


class StoreUnavailableError(UnavailableError):
    """The database could not be reached, or the connection was lost during a call."""
