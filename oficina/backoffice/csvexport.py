"""CSV files for auditors: UTF-8 with a BOM (spreadsheets then read accents right), streamed in chunks.

Every file ends with a last line that counts its rows (`# fin del archivo: N filas`): a file cut
short (the worker stopped mid-stream, the connection dropped) lacks it, so the auditor can tell."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.http import StreamingHttpResponse

END_OF_FILE = "# fin del archivo: "  # the last line, then the number of rows
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# A ";" that a spreadsheet splitting cells on semicolons would make the start of a formula cell.
_FORMULA_AFTER_SEMICOLON = re.compile(r';(?=[\s"]*[=+\-@])')


class _Echo:
    def write(self, value: str) -> str:
        return value


def cell_text(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (CSV injection): free text that begins like a
    formula (a user agent is chosen by whoever sends the request) gets a leading apostrophe. So does
    a formula right after a ";": Excel with Colombian regional settings (decimal comma) opens a
    .csv splitting cells on ";", not on ",", and "Mozilla;=HYPERLINK(…)" would start a cell there."""
    return cell_exact(_FORMULA_AFTER_SEMICOLON.sub(";'", value))


def cell_exact(value: str) -> str:
    """Text whose exact content is the point (the policy text next to its SHA-256 in the consent
    proof; superusers write it, and "derechos; - conocer" is ordinary prose): only a leading formula
    gets the apostrophe, so the text hashes as the proof says."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def cell_json(value: object) -> str:
    """A JSON cell (an event's data: a failed operator login's username, a refused path) with no ";"
    a spreadsheet could split it on: written as \\u003b, which every JSON reader reads back as ";"."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return text.replace(";", "\\u003b")


def utc_iso(moment: datetime | None) -> str:
    return moment.astimezone(UTC).isoformat() if moment is not None else ""


def csv_response(*, filename: str, header: list[str], rows: Iterable[list[Any]]) -> StreamingHttpResponse:
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield "\ufeff" + writer.writerow(header)
        count = 0
        for row in rows:
            count += 1
            yield writer.writerow(row)
        yield f"{END_OF_FILE}{count} filas\r\n"

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
