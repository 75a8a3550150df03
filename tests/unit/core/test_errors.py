"""The error tree: one root, and every class keeps the Python base its callers catch."""

from __future__ import annotations

import pickle

import pytest

from tickhub.core import errors
from tickhub.core.errors import (
    BusUnavailableError,
    ConfigError,
    InputFileError,
    InstrumentsFileError,
    KiteParseError,
    PortfolioFileError,
    ReplayError,
    StoreUnavailableError,
    TickhubError,
    UnavailableError,
    UnknownSymbolError,
)

OLD_BASES: dict[type[Exception], type[Exception]] = {
    ConfigError: Exception,
    InstrumentsFileError: ValueError,
    UnknownSymbolError: LookupError,
    ReplayError: ValueError,
    PortfolioFileError: ValueError,
    KiteParseError: ValueError,
    BusUnavailableError: ConnectionError,
    StoreUnavailableError: ConnectionError,
}
"""Each class that existed before the tree, and the base it had then."""


@pytest.mark.parametrize("cls", list(OLD_BASES), ids=lambda c: c.__name__)
def test_every_error_is_a_tickhub_error_and_keeps_its_old_base(cls: type[Exception]) -> None:
    assert issubclass(cls, TickhubError)
    assert issubclass(cls, OLD_BASES[cls])


def test_every_public_class_of_the_module_is_in_the_tree() -> None:
    public = {getattr(errors, name) for name in errors.__all__}
    assert all(isinstance(c, type) and issubclass(c, TickhubError) for c in public)
    assert set(OLD_BASES) | {TickhubError, InputFileError, UnavailableError} == public


def test_branches() -> None:
    cls: type[Exception]
    for cls in (InstrumentsFileError, ReplayError, PortfolioFileError, KiteParseError):
        assert issubclass(cls, InputFileError)
    for cls in (BusUnavailableError, StoreUnavailableError):
        assert issubclass(cls, UnavailableError) and issubclass(cls, OSError)
    assert not issubclass(ConfigError, ValueError | LookupError | OSError)


def test_tree_drawn_in_the_docstring_names_every_class() -> None:
    assert errors.__doc__ is not None
    for name in errors.__all__:
        assert name in errors.__doc__


def test_messages_and_attributes_are_unchanged() -> None:
    e = InstrumentsFileError("x.csv", 3, "bad token")
    assert (str(e), e.source, e.line, e.reason) == ("x.csv:3: bad token", "x.csv", 3, "bad token")
    assert str(InstrumentsFileError("x.csv", None, "empty")) == "x.csv: empty"
    r = ReplayError("t.csv", None, "no header")
    assert (str(r), r.line) == ("t.csv: no header", None)
    assert str(ReplayError("t.csv", 7, "bad price")) == "t.csv:7: bad price"
    u = UnknownSymbolError("FOO")
    assert (str(u), u.name) == ("unknown symbol: 'FOO'", "FOO")
    k = KiteParseError("frame cut short", 12)
    assert (str(k), k.offset) == ("frame cut short", 12)
    assert str(PortfolioFileError("p.csv", 2, "bad")) == "p.csv:2: bad"
    p = PortfolioFileError("p.json", None, "bad", item="[2]")
    assert (str(p), p.item, p.line) == ("p.json: [2]: bad", "[2]", None)
    assert str(PortfolioFileError("p.json", None, "empty")) == "p.json: empty"
    b = BusUnavailableError("redis down")
    assert (str(b), b.args) == ("redis down", ("redis down",))


def test_errors_are_importable_where_they_were_defined() -> None:
    from tickhub.app import config
    from tickhub.core import instruments
    from tickhub.feeds.kite import parse
    from tickhub.feeds.replay import ticks

    # config.py imports ConfigError without re-exporting it (no ``__all__`` there), so the
    # attribute is read from the module's namespace, which is what ``config.ConfigError`` reads
    assert config.ConfigError is ConfigError
    assert instruments.InstrumentsFileError is InstrumentsFileError
    assert instruments.UnknownSymbolError is UnknownSymbolError
    assert parse.KiteParseError is KiteParseError
    assert ticks.ReplayError is ReplayError


def test_simple_errors_survive_pickling() -> None:
    for exc in (ConfigError("PORT: bad"), BusUnavailableError("down")):
        again = pickle.loads(pickle.dumps(exc))
        assert type(again) is type(exc) and str(again) == str(exc)
