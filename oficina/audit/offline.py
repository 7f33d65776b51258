"""Checks an exported audit CSV without the database: each sealed event's hash against its own cells,
and each event against the one before it where the file holds both (consecutive `seq`).

Standard library only, so an auditor can run it on the file alone, with the portal's source and any
Python ≥ 3.11 (`python -m oficina.audit.offline eventos-….csv`) or on the server (`manage.py
audit_verify --csv FILE`). What it proves: the file is the export of a sound chain, as far as its rows
go, and it was not cut short. It cannot tell that a row was left out of a filtered export (a gap in
`seq` is counted, not an error), nor that the whole file was forged with new hashes: for that, compare
its newest hash with the one `manage.py audit_verify` prints for the same `seq`, or with one kept
elsewhere (a printed report, an e-mail to the auditor). On the server, `manage.py audit_verify --csv`
also checks each row's `firma` (the application's signature, with the audit key this module never
sees), and each sealed row's `seq` and hash against the database's chain: a file forged with new
hashes is told there.

`event_hash` is also what the sealer uses (`Event.compute_hash`): one definition of the chain."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

END_OF_FILE = "# fin del archivo: "  # as oficina.backoffice.csvexport writes it
# The largest `seq` the database holds (a 64-bit integer): a larger one is no event's, and the server's
# check of the file against its chain failed on it (OverflowError on SQLite) instead of saying so.
SEQ_MAX = 2**63 - 1
# Longer than any event waits for its seal with the worker running (AUDIT_SEAL_MAX_DELAY_SECONDS is 300).
UNSEALED_AT_MOST = timedelta(hours=1)
# Whether `mac` is the application's signature of an event's content (audit/services.py, with the key).
Signed = Callable[[dict[str, Any], str], bool]
# The hash the database holds for each of these `seq` (sealed events only): the server's own chain.
ChainHashes = Callable[[list[int]], dict[int, str]]


def canonical(body: dict[str, Any]) -> str:
    """The event's content as the chain hashes it (and the application signs it)."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, body: dict[str, Any]) -> str:
    """SHA-256 of `prev_hash` and the canonical JSON of the event's content."""
    return hashlib.sha256((prev_hash + canonical(body)).encode("utf-8")).hexdigest()


@dataclass
class CsvCheck:
    rows: int = 0
    sealed: int = 0
    unsealed: int = 0
    linked: int = 0  # events whose predecessor (seq - 1) is in the file, and chains to it
    gaps: int = 0  # places where the file skips seq numbers (a filtered export)
    complete: bool = False  # the file ends with its row count, and the count matches
    problems: list[str] = field(default_factory=list)
    newest: tuple[int, str] | None = None  # (seq, hash) of the newest sealed event in the file
    signed: int | None = None  # rows whose signature verified; None when not checked (no key)

    @property
    def sound(self) -> bool:
        return self.complete and not self.problems


def _body(row: dict[str, str]) -> dict[str, Any]:
    return {
        "created_at": row["created_at"],
        "kind": row["kind"],
        "member_id": int(row["member_id"]) if row["member_id"] else None,
        "document_hmac": row["document_hmac"],
        "ip_address": row["ip"] or None,
        # The `user_agent` column is made safe for spreadsheets (a leading apostrophe before a formula);
        # `user_agent_exacto` holds it as it was hashed, as a JSON string.
        "user_agent": json.loads(row["user_agent_exacto"]),
        "data": json.loads(row["data"]),
    }


def csv_check(
    lines: Iterable[str],
    *,
    signed: Signed | None = None,
    signed_from_seq: int = 0,
    chain: ChainHashes | None = None,
) -> CsvCheck:
    """Checks the export read as text lines (the BOM, if any, is skipped). With `signed` (on the
    server, which holds the key), every row's signature too: sealed rows below `signed_from_seq`
    were appended before signatures existed and may carry none. With `chain` (on the server, which
    holds the database), every sealed row's `seq` must have the row's hash there: a signature covers
    an event's content, not its place in the chain, so a row taken out and the rest numbered down and
    re-chained, or a row made up under a `seq` from before signatures, kept every signature valid."""
    result = CsvCheck()
    text = "".join(lines).removeprefix("\ufeff")
    # Only the file's very last line counts (a user agent may hold the same words).
    body, _, last = text.rstrip("\r\n").rpartition("\n")
    tail = last.removeprefix(END_OF_FILE) if last.startswith(END_OF_FILE) else ""
    if not tail:
        body = text
    reader = csv.DictReader(io.StringIO(body))
    missing = {"id", "seq", "created_at", "hash", "prev_hash", "user_agent_exacto"} - set(
        reader.fieldnames or []
    )
    if missing:
        result.problems.append(f"al archivo le faltan columnas: {', '.join(sorted(missing))}")
        return result
    if signed is not None and "firma" not in (reader.fieldnames or []):
        result.problems.append(
            "al archivo le falta la columna firma: expórtalo de nuevo para verificar sus firmas"
        )
        signed = None
    if signed is not None:
        result.signed = 0
    macs: set[str] = set()
    sealed: list[tuple[int, dict[str, str]]] = []
    unsealed: list[dict[str, str]] = []
    for row in _rows(reader, result):
        result.rows += 1
        if signed is not None:
            problem = _signature_problem(row, signed, signed_from_seq, macs)
            if problem:
                result.problems.append(f"evento {row.get('id')}: {problem}")
            elif row["firma"]:
                result.signed = (result.signed or 0) + 1
        if not row["hash"]:
            result.unsealed += 1
            unsealed.append(row)
            continue
        try:
            seq = int(row["seq"])
            if not 0 <= seq <= SEQ_MAX:
                raise ValueError("seq")
            computed = event_hash(row["prev_hash"], _body(row))
        except (ValueError, KeyError, TypeError) as exc:
            result.problems.append(f"evento {row.get('id')}: fila ilegible ({exc.__class__.__name__})")
            continue
        if computed != row["hash"]:
            result.problems.append(f"evento {row['id']}: su contenido no corresponde a su hash")
        sealed.append((seq, row))
    result.sealed = len(sealed)
    sealed.sort(key=lambda item: item[0])
    for (seq, row), (next_seq, following) in itertools.pairwise(sealed):
        if next_seq == seq:
            result.problems.append(f"evento {following['id']}: repite el n.º de sello {seq}")
        elif next_seq == seq + 1:
            if following["prev_hash"] == row["hash"]:
                result.linked += 1
            else:
                result.problems.append(
                    f"evento {following['id']}: no encadena con el evento anterior (n.º {seq})"
                )
        else:
            result.gaps += 1
    if chain is not None:
        result.problems += _not_in_chain(sealed, chain)
    if sealed:
        result.newest = (sealed[-1][0], sealed[-1][1]["hash"])
        result.problems += _unsealed_too_old(unsealed, sealed)
    count = tail.split(" ", 1)[0].strip()
    result.complete = count.isdigit() and int(count) == result.rows
    if not result.complete:
        result.problems.append("el archivo está incompleto: le falta la última línea con el número de filas")
    return result


def _rows(reader: csv.DictReader[str], result: CsvCheck) -> Iterator[dict[str, str]]:
    """The file's rows until one the csv module cannot read (a cell past its 131,072 characters):
    a file handed to the auditor is not to be trusted, and it ended the check in a traceback."""
    try:
        yield from reader
    except csv.Error as exc:
        result.problems.append(f"el archivo no es un CSV válido desde su línea {reader.line_num} ({exc})")


def _signature_problem(row: dict[str, str], signed: Signed, signed_from_seq: int, macs: set[str]) -> str:
    mac = row["firma"] or ""
    if not mac:
        seq = row["seq"] or ""
        if seq.isdigit() and int(seq) < signed_from_seq:
            return ""  # appended before signatures existed
        return "no tiene firma: se escribió por fuera de la aplicación"
    try:
        body = _body(row)
    except (ValueError, KeyError, TypeError) as exc:
        return f"fila ilegible ({exc.__class__.__name__})"
    if not signed(body, mac):
        return "no tiene una firma válida: se escribió o se cambió por fuera de la aplicación"
    if mac in macs:
        return "repite la firma de otro evento del archivo"
    macs.add(mac)
    return ""


def _not_in_chain(sealed: list[tuple[int, dict[str, str]]], chain: ChainHashes) -> list[str]:
    held: dict[int, str] = {}
    seqs = [seq for seq, _ in sealed]
    for start in range(0, len(seqs), 1000):
        held.update(chain(seqs[start : start + 1000]))
    problems = []
    for seq, row in sealed:
        if seq not in held:
            problems.append(
                f"evento {row['id']}: no hay en la cadena del servidor un evento sellado con el n.º {seq}"
            )
        elif held[seq] != row["hash"]:
            problems.append(
                f"evento {row['id']}: su hash no es el de ese n.º en la cadena del servidor (n.º {seq}): "
                "el archivo no es una exportación de esta cadena"
            )
    return problems


def _unsealed_too_old(unsealed: list[dict[str, str]], sealed: list[tuple[int, dict[str, str]]]) -> list[str]:
    """An event waits for its seal about a second (the worker), a few minutes at worst: one shown
    unsealed beside events sealed long after it was made had its seal removed from the file, which
    would otherwise pass an edit off as "sin sellar (no se verifican)"."""
    try:
        newest = max(datetime.fromisoformat(row["created_at"]) for _, row in sealed)
    except ValueError:
        return []
    late = []
    for row in unsealed:
        try:
            made = datetime.fromisoformat(row["created_at"])
        except ValueError:
            late.append(f"evento {row.get('id')}: fila ilegible (created_at)")
            continue
        if newest - made > UNSEALED_AT_MOST:
            late.append(
                f"evento {row.get('id')}: figura sin sellar, pero hay eventos sellados mucho más nuevos: "
                "se le quitó el sello en el archivo"
            )
    return late


def report(result: CsvCheck) -> str:
    lines = [
        f"{result.rows} filas: {result.sealed} eventos sellados, "
        f"{result.unsealed} sin sellar (no se verifican).",
        f"{result.linked} eventos encadenan con el anterior del archivo; {result.gaps} saltos de numeración"
        " (normales si la exportación se filtró).",
    ]
    if result.signed is None:
        lines.append(
            "Firmas: no se verifican aquí (no se tiene la clave); en el servidor, "
            "manage.py audit_verify --csv ARCHIVO las verifica."
        )
    else:
        lines.append(f"{result.signed} eventos con firma válida de la aplicación.")
    lines += result.problems
    if result.newest is not None:
        seq, digest = result.newest
        lines.append(
            f"Último evento sellado del archivo: n.º {seq}, hash {digest}. Compáralo con el de la base "
            f"(manage.py audit_verify --seq {seq})."
        )
    lines.append("El archivo es íntegro." if result.sound else "El archivo NO es íntegro.")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("Uso: python -m oficina.audit.offline ARCHIVO.csv", file=sys.stderr)
        return 2
    try:
        with open(argv[0], encoding="utf-8", newline="") as handle:
            result = csv_check(handle)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"No se pudo leer {argv[0]}: {exc}", file=sys.stderr)
        return 2
    print(report(result))
    return 0 if result.sound else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
