"""The instruments dump from Kite Connect's REST API, through the official ``kiteconnect`` client.

Kite publishes the dump once a day (fetch it after 08:30 IST). The official client performs the
authenticated request and parses the CSV; its rows are written back to the dump's CSV form and
validated by :func:`tickhub.core.instruments.parse_instruments_csv`, so a broken row is
reported with its line number exactly as for a file, and the registry is keyed on
``exchange:tradingsymbol``.
``kiteconnect`` is an optional dependency: ``pip install 'tickhub[kite]'``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Any

from tickhub.core.instruments import (
    KITE_COLUMNS,
    InstrumentRegistry,
    InstrumentsFileError,
    parse_instruments_csv,
)


def rows_to_csv(rows: Iterable[Mapping[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(KITE_COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in KITE_COLUMNS])
    return out.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def fetch_registry(
    api_key: str,
    access_token: str,
    *,
    root: str | None = None,
    exchanges: Sequence[str] = (),
) -> InstrumentRegistry:
    """Download the dump (all exchanges, or the listed ones) and build a registry."""
    try:
        from kiteconnect import KiteConnect
    except ImportError:
        raise RuntimeError(
            "fetching instruments from Kite needs the kiteconnect package: "
            "pip install 'tickhub[kite]'"
        ) from None
    kite = KiteConnect(api_key=api_key, access_token=access_token, root=root)
    source = f"kite:{root or 'api.kite.trade'}/instruments"
    rows: list[Mapping[str, Any]] = []
    try:
        if exchanges:
            for exchange in exchanges:
                rows.extend(kite.instruments(exchange))
        else:
            rows.extend(kite.instruments())
    except (ValueError, KeyError) as exc:
        # The official client's own parser failed on a row: it does not say which.
        raise InstrumentsFileError(source, None, f"malformed dump ({exc})") from None
    return InstrumentRegistry(parse_instruments_csv(rows_to_csv(rows), source))
