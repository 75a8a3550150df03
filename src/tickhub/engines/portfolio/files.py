"""The positions-file formats, CSV and JSON: the file's content in, positions out.

Reading the file is the caller's (``tickhub.ingest.portfolio.load_positions_file``); this module
only parses, so a broken file is reported the same way whoever read it. A file is parsed
completely before anything is applied: any broken row raises ``PortfolioFileError`` naming the
file and the line (CSV) or the item (JSON), and the caller has nothing to undo.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import PurePath
from typing import Final

from tickhub.core.commands import parse_position_fields
from tickhub.core.errors import PortfolioFileError
from tickhub.core.instruments import InstrumentRegistry
from tickhub.core.protocol import ProtocolError
from tickhub.engines.portfolio.positions import Position, position_of

__all__ = ["CSV_OPTIONAL", "CSV_REQUIRED", "parse_positions"]

CSV_REQUIRED: Final = ("symbol", "quantity", "average_price")
CSV_OPTIONAL: Final = ("product", "exchange")


def parse_positions(
    data: bytes | str, registry: InstrumentRegistry, source: str = "<positions>"
) -> list[Position]:
    """Positions from CSV or JSON text, all or nothing; ``source`` names the file in errors.

    The format follows ``source``'s suffix (``.json``/``.csv``), else the first character (``[`` or
    ``{``: JSON). CSV: a header naming ``symbol,quantity,average_price`` and optionally
    ``product,exchange`` in any order (case-insensitive; other columns are ignored), then one row
    per position with a value for every header column; blank lines are skipped. JSON: a list of
    objects with the same keys, or ``{"positions": [...]}``; quantities must be JSON integers
    there, prices numbers or numeric strings. Values are checked as in ``set_position``
    (``parse_position_fields``); a symbol listed twice is an error. Rows with quantity 0 are
    returned (a seed skips them). Bytes must be UTF-8 (a BOM is dropped). Raises
    ``PortfolioFileError``.
    """
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise PortfolioFileError(source, None, f"not UTF-8 text ({exc.reason})") from None
    else:
        text = data.removeprefix("\ufeff")
    suffix = PurePath(source).suffix.lower()
    if suffix == ".json" or (suffix != ".csv" and text.lstrip()[:1] in ("[", "{")):
        return _parse_json(text, registry, source)
    return _parse_csv(text, registry, source)


def _parse_csv(text: str, registry: InstrumentRegistry, source: str) -> list[Position]:
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    positions: list[Position] = []
    seen: dict[str, int] = {}
    try:
        header = next(reader, None)
        if header is None:
            raise PortfolioFileError(source, None, "empty file, expected a header line")
        header = [column.strip().lower() for column in header]
        missing = [column for column in CSV_REQUIRED if column not in header]
        if missing:
            raise PortfolioFileError(source, 1, f"header lacks columns: {', '.join(missing)}")
        index = {c: header.index(c) for c in CSV_REQUIRED + CSV_OPTIONAL if c in header}
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise PortfolioFileError(
                    source, line, f"expected {len(header)} columns, got {len(row)}"
                )
            fields: dict[str, object] = {c: row[i] for c, i in index.items()}
            checked = parse_position_fields(fields, registry, text=True)
            if isinstance(checked, ProtocolError):
                raise PortfolioFileError(source, line, checked.message)
            position = position_of(checked)
            if position.symbol in seen:
                reason = (
                    f"duplicate symbol {position.symbol!r} (first on line {seen[position.symbol]})"
                )
                raise PortfolioFileError(source, line, reason)
            seen[position.symbol] = line
            positions.append(position)
    except csv.Error as exc:
        raise PortfolioFileError(source, reader.line_num, f"malformed CSV ({exc})") from None
    return positions


def _parse_json(text: str, registry: InstrumentRegistry, source: str) -> list[Position]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PortfolioFileError(source, exc.lineno, f"invalid JSON ({exc.msg})") from None
    prefix = ""
    if isinstance(doc, dict) and "positions" in doc:
        doc, prefix = doc["positions"], "positions"
    if not isinstance(doc, list):
        raise PortfolioFileError(
            source, None, 'expected a list of positions or {"positions": [...]}'
        )
    positions: list[Position] = []
    seen: dict[str, str] = {}
    for i, entry in enumerate(doc):
        item = f"{prefix}[{i}]"
        if not isinstance(entry, dict):
            raise PortfolioFileError(
                source, None, f"expected an object, got {type(entry).__name__}", item=item
            )
        checked = parse_position_fields(entry, registry)
        if isinstance(checked, ProtocolError):
            raise PortfolioFileError(source, None, checked.message, item=item)
        position = position_of(checked)
        if position.symbol in seen:
            reason = f"duplicate symbol {position.symbol!r} (first at {seen[position.symbol]})"
            raise PortfolioFileError(source, None, reason, item=item)
        seen[position.symbol] = item
        positions.append(position)
    return positions
