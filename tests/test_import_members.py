from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from oficina.audit.models import Event
from oficina.members.importer import ImportReport, LineError, members_import
from oficina.members.management.commands.import_members import Command
from oficina.members.models import Member
from oficina.notify.gsm import gsm7_length
from oficina.notify.models import OutboxMessage
from oficina.notify.outbox import BULK_PRIORITY
from tests.factories import make_member
from tests.notify_fixtures import counted_renders, queued_task_messages
from tests.postgres import a_statement_waits_for_a_row_lock

HEADER = "documento,nombre,celular,correo\n"
GOOD_ROWS = (
    "1.234.567,  María   Fernanda Rojas ,311 123 4567,mynameis@Mail.COM\n"
    "7654321,Juan Pérez,+57 300 765 4321,\n"
    "99887766,Ana Gómez,,Ana.Gomez@Correo.co\n"
)
NOTHING_IMPORTED = "No se importó nada: corrige las líneas con error o usa --skip-invalid."
ACTOR = "manage.py import_members"


def write_csv(tmp_path: Path, text: str, *, encoding: str = "utf-8") -> Path:
    path = tmp_path / "asociados.csv"
    path.write_bytes(text.encode(encoding))
    return path


def run_import(path: Path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("import_members", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failed_import(path: Path, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_members", str(path), *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def contacts(document: str) -> tuple[str, str, str]:
    return Member.objects.values_list("name", "mobile", "email").get(document=document)


def portal_owned(member: Member) -> dict[str, object]:
    """Every column an import must leave alone, including ones added after this test was written."""
    imported = {"name", "mobile", "email", "updated_at"}
    return {
        f.attname: getattr(member, f.attname) for f in Member._meta.concrete_fields if f.name not in imported
    }


def test_it_creates_members_from_a_good_file(db, tmp_path):
    out, err = run_import(write_csv(tmp_path, HEADER + GOOD_ROWS))

    assert out.splitlines() == ["Creados: 3, actualizados: 0, sin cambios: 0, con errores: 0"]
    assert err == ""
    assert contacts("1234567") == ("María Fernanda Rojas", "+573111234567", "mynameis@mail.com")
    assert contacts("7654321") == ("Juan Pérez", "+573007654321", "")
    assert contacts("99887766") == ("Ana Gómez", "", "Ana.Gomez@correo.co")
    new = Member.objects.get(document="7654321")
    assert new.pin_hash == "" and new.is_active and new.created_at is not None


def test_names_with_quotes_backslashes_and_any_letter_arrive_as_written(db):
    """PostgreSQL gets a batch as JSON text: nothing in a name may be read as JSON or SQL."""
    names = ['Ana "La Toña" D\'Alemán', "Jhon \\ Ñañez Çelik", "Zoë Þórsdóttir 李小龍", "María {x} [y], ü"]
    lines = [
        HEADER,
        *(
            f'{50000 + i},"{name.replace(chr(34), chr(34) * 2)}",,p{i}@correo.example\n'
            for i, name in enumerate(names)
        ),
    ]

    assert members_import(lines=lines, actor=ACTOR).errors == []
    report = members_import(lines=lines, actor=ACTOR)  # again: each is found, and found unchanged

    assert [contacts(str(50000 + i))[0] for i in range(len(names))] == names
    assert report.unchanged == len(names) and report.updated == report.created == 0


def test_it_updates_existing_members_without_duplicating_or_touching_credentials(db, tmp_path):
    long_ago = timezone.now() - timedelta(days=30)
    existing = make_member(
        document="1234567",
        pin="480263",
        name="Maria Rojas",
        mobile="+573009998877",
        email="old@mail.com",
        security_image="colibri",
        security_phrase="Mi café de la mañana",
        failed_pin_attempts=2,
        locked_at=long_ago,
        pin_changed_at=long_ago,
        status=Member.Status.DISABLED,
    )
    Member.objects.filter(pk=existing.pk).update(created_at=long_ago, updated_at=long_ago)
    existing.refresh_from_db()
    credentials_and_state = portal_owned(existing)
    path = write_csv(tmp_path, HEADER + GOOD_ROWS)

    out, _ = run_import(path)

    assert out.splitlines() == ["Creados: 2, actualizados: 1, sin cambios: 0, con errores: 0"]
    assert Member.objects.count() == 3
    member = Member.objects.get(document="1234567")
    assert member.pk == existing.pk
    assert (member.name, member.mobile, member.email) == (
        "María Fernanda Rojas",
        "+573111234567",
        "mynameis@mail.com",
    )
    assert member.pin_hash == existing.pin_hash != ""
    assert (member.security_image, member.security_phrase) == ("colibri", "Mi café de la mañana")
    assert (member.failed_pin_attempts, member.locked_at, member.pin_changed_at) == (2, long_ago, long_ago)
    assert member.status == Member.Status.DISABLED
    assert member.created_at == long_ago
    assert portal_owned(member) == credentials_and_state
    assert member.updated_at > long_ago

    out, _ = run_import(path)

    assert out.splitlines() == ["Creados: 0, actualizados: 0, sin cambios: 3, con errores: 0"]
    assert Member.objects.count() == 3


def test_it_imports_nothing_when_a_line_is_bad_and_reports_each_line_number(db, tmp_path):
    path = write_csv(
        tmp_path,
        HEADER
        + "1234567,María Rojas,3111234567,\n"  # line 2: fine
        + "12AB,Juan Pérez,3007654321,\n"  # line 3
        + "7654321,Juan Pérez,6011234567,\n"  # line 4: a landline
        + "99887766,Ana Gómez,,no-es-correo\n"  # line 5
        + "55555555,,3111234567,\n"  # line 6: no name
        + "44444444,Luis Díaz,3111234567\n",  # line 7: three columns
    )

    out, err = failed_import(path)

    assert out.splitlines() == [
        "Línea 3: La cédula debe tener entre 5 y 10 dígitos, sin letras.",
        "Línea 4: El celular debe ser un número móvil colombiano de 10 dígitos que empiece por 3.",
        "Línea 5: El correo no es válido.",
        "Línea 6: El nombre es obligatorio.",
        "Línea 7: La línea debe tener 4 columnas y tiene 3.",
        "Creados: 0, actualizados: 0, sin cambios: 0, con errores: 5",
    ]
    assert err.strip() == NOTHING_IMPORTED
    assert not Member.objects.exists()


def test_it_reports_every_problem_of_a_line_at_once(db, tmp_path):
    path = write_csv(tmp_path, HEADER + "12AB,,6011234567,\n")

    out, _ = failed_import(path)

    assert out.splitlines()[0] == (
        "Línea 2: La cédula debe tener entre 5 y 10 dígitos, sin letras. El nombre es obligatorio. "
        "El celular debe ser un número móvil colombiano de 10 dígitos que empiece por 3."
    )


def test_it_imports_the_good_rows_with_skip_invalid(db, tmp_path):
    path = write_csv(tmp_path, HEADER + GOOD_ROWS + "12AB,Juan Pérez,3007654321,\n")

    out, err = run_import(path, "--skip-invalid")

    assert out.splitlines() == [
        "Línea 5: La cédula debe tener entre 5 y 10 dígitos, sin letras.",
        "Creados: 3, actualizados: 0, sin cambios: 0, con errores: 1",
    ]
    assert err == ""
    assert set(Member.objects.values_list("document", flat=True)) == {"1234567", "7654321", "99887766"}


def test_it_rejects_a_documento_repeated_in_the_file_on_the_later_line(db, tmp_path):
    path = write_csv(
        tmp_path,
        HEADER
        + "1.234.567,María Rojas,3111234567,\n7654321,Juan Pérez,3007654321,\n1234567,Otra,3001112233,\n",
    )

    out, _ = failed_import(path)
    assert out.splitlines()[0] == "Línea 4: Esta cédula ya apareció en una línea anterior del archivo."

    run_import(path, "--skip-invalid")
    assert contacts("1234567") == ("María Rojas", "+573111234567", "")
    assert Member.objects.count() == 2


def test_it_accepts_a_header_with_a_byte_order_mark_odd_case_and_spaces(db, tmp_path):
    path = write_csv(
        tmp_path,
        " Documento , NOMBRE,Celular ,correo\r\n7654321,Juan Pérez,3007654321,\r\n",
        encoding="utf-8-sig",
    )
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")

    out, _ = run_import(path)

    assert out.splitlines() == ["Creados: 1, actualizados: 0, sin cambios: 0, con errores: 0"]
    assert contacts("7654321") == ("Juan Pérez", "+573007654321", "")


@pytest.mark.parametrize(
    "header",
    [
        "cedula,nombre,celular,correo",
        "documento,nombre,correo,celular",
        "documento,nombre,celular",
        "7654321,Juan,3007654321,",
    ],
)
def test_it_refuses_a_wrong_header_and_imports_nothing_even_skipping_invalid_rows(db, tmp_path, header):
    path = write_csv(tmp_path, f"{header}\n1234567,María Rojas,3111234567,\n")

    out, err = failed_import(path, "--skip-invalid")

    assert out.splitlines() == [
        "Línea 1: La primera línea debe ser el encabezado «documento,nombre,celular,correo», "
        "separado por comas.",
        "Creados: 0, actualizados: 0, sin cambios: 0, con errores: 1",
    ]
    assert "No se importó nada" in err
    assert "7654321" not in out  # a headerless file starts with a member's data: it is not echoed
    assert not Member.objects.exists()


def test_it_explains_a_file_separated_by_semicolons(db, tmp_path):
    path = write_csv(tmp_path, "documento;nombre;celular;correo\n1234567;María Rojas;3111234567;\n")

    out, _ = failed_import(path)

    assert "Parece separado por punto y coma" in out.splitlines()[0]


def test_it_refuses_an_empty_file(db, tmp_path):
    out, _ = failed_import(write_csv(tmp_path, ""))

    assert out.splitlines()[0].startswith("Línea 1: El archivo está vacío")


def test_it_accepts_a_file_with_only_the_header(db, tmp_path):
    out, _ = run_import(write_csv(tmp_path, HEADER))

    assert out.splitlines() == ["Creados: 0, actualizados: 0, sin cambios: 0, con errores: 0"]


def test_it_names_the_line_of_a_file_that_is_not_utf8_and_imports_nothing(db, tmp_path):
    path = write_csv(
        tmp_path,
        HEADER + "7654321,Juan Perez,3007654321,\n1234567,José Rojas,3111234567,\n",
        encoding="latin-1",
    )

    out, err = failed_import(path, "--skip-invalid")

    assert out.splitlines() == [
        "Línea 3: El archivo no está codificado en UTF-8. Guárdalo como «CSV UTF-8» y vuelve a intentarlo.",
        "Creados: 0, actualizados: 0, sin cambios: 0, con errores: 1",
    ]
    assert "No se importó nada" in err
    assert not Member.objects.exists()


def test_it_turns_a_decoding_failure_of_a_strict_reader_into_an_error(db, tmp_path):
    path = write_csv(tmp_path, HEADER + "1234567,José Rojas,3111234567,\n", encoding="latin-1")

    with open(path, encoding="utf-8-sig") as strict:
        report = members_import(lines=strict, actor=ACTOR)

    assert report.aborted
    assert report.errors[0].message.startswith("El archivo no está codificado en UTF-8.")


def test_it_stops_at_broken_csv_quoting_and_imports_nothing(db, tmp_path):
    path = write_csv(tmp_path, HEADER + GOOD_ROWS + '1234567,"María" Rojas,3111234567,\n')

    out, _ = failed_import(path, "--skip-invalid")

    assert out.splitlines()[0] == "Línea 5: El archivo no es un CSV válido a partir de esta línea."
    assert not Member.objects.exists()


def test_it_requires_a_mobile_or_an_email(db, tmp_path):
    out, _ = failed_import(write_csv(tmp_path, HEADER + "1234567,María Rojas,  ,\n"))

    assert out.splitlines()[0] == "Línea 2: El asociado debe tener celular o correo."


@pytest.mark.parametrize(
    ("raw", "document"),
    [("1.234.567", "1234567"), (" 1 234 567 ", "1234567"), ('"1,234,567"', "1234567"), ("12.345", "12345")],
)
def test_it_normalises_formatted_cedulas(db, tmp_path, raw, document):
    run_import(write_csv(tmp_path, HEADER + f"{raw},María Rojas,3111234567,\n"))

    assert Member.objects.get().document == document


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("M" * 151, "El nombre no puede tener más de 150 caracteres."),
        ("María\u202eRojas", "El nombre tiene caracteres no permitidos."),
        ('"María\tRojas"', "El nombre tiene caracteres no permitidos."),
    ],
)
def test_it_refuses_bad_names(db, tmp_path, name, message):
    out, _ = failed_import(write_csv(tmp_path, HEADER + f"1234567,{name},3111234567,\n"))

    assert out.splitlines()[0] == f"Línea 2: {message}"


def test_it_keeps_a_name_of_exactly_150_characters_with_commas_inside_quotes(db, tmp_path):
    name = "Rojas, " + "M" * 143
    run_import(write_csv(tmp_path, HEADER + f'1234567,"{name}",3111234567,\n'))

    assert Member.objects.get().name == name


def test_it_refuses_an_email_longer_than_254_characters(db, tmp_path):
    email = "a" * 64 + "@" + ".".join(["b" * 60] * 4) + ".co"
    out, _ = failed_import(write_csv(tmp_path, HEADER + f"1234567,María Rojas,,{email}\n"))

    assert out.splitlines()[0] == "Línea 2: El correo no puede tener más de 254 caracteres."


def test_it_counts_physical_lines_across_quoted_newlines_and_blank_lines(db, tmp_path):
    path = write_csv(
        tmp_path,
        HEADER
        + '1234567,"María\nRojas",3111234567,\n'  # lines 2-3: a newline inside a name is refused
        + "\n"  # line 4: blank, ignored
        + "7654321,Juan Pérez,3007654321,\n"  # line 5
        + "12AB,Ana Gómez,3001112233,\n",  # line 6
    )

    out, _ = run_import(path, "--skip-invalid")

    assert out.splitlines() == [
        "Línea 2: El nombre tiene caracteres no permitidos.",
        "Línea 6: La cédula debe tener entre 5 y 10 dígitos, sin letras.",
        "Creados: 1, actualizados: 0, sin cambios: 0, con errores: 2",
    ]


def test_it_fails_with_a_clear_message_for_a_missing_file(db, tmp_path):
    with pytest.raises(CommandError, match=r"No existe el archivo .*no-existe\.csv"):
        call_command("import_members", str(tmp_path / "no-existe.csv"))


def test_an_import_from_the_command_is_an_event_of_the_audit_chain(db, tmp_path):
    """Uploaded in the back office, an import is an `operator_import` event with its counts; run as the
    command it was none: members created from a file (each can then ask a first temporary code at the
    contacts the file gave) left no trace in the chain unless an existing member's contact changed.
    A file that imports nothing is recorded too, as from the back office."""
    make_member(document="1234567", name="María Fernanda Rojas", mobile="+573009998877", email="ana@mail.com")
    run_import(write_csv(tmp_path, HEADER + GOOD_ROWS))
    failed_import(write_csv(tmp_path, HEADER + "12AB,Juan Pérez,3007654321,\n"))

    events = list(Event.objects.filter(kind="operator_import").order_by("id").values_list("data", flat=True))
    assert events == [
        {
            "operator": ACTOR,
            "file": "asociados.csv",
            "imported": True,
            "created": 2,
            "updated": 1,
            "unchanged": 0,
            "contacts_changed": 1,
            "errors": 0,
            "aborted": False,
            "skip_invalid": False,
        },
        {
            "operator": ACTOR,
            "file": "asociados.csv",
            "imported": False,
            "created": 0,
            "updated": 0,
            "unchanged": 0,
            "contacts_changed": 0,
            "errors": 1,
            "aborted": False,
            "skip_invalid": False,
        },
    ]


def test_the_demo_is_not_loaded_over_a_real_members_cedula_outside_debug(db, settings):
    """`load_demo_members --force` (DEBUG off) on a database that already holds a member under one of
    the demo's cédulas gave that member the demo's PIN, printed in the README, and the demo's name and
    contacts: a real member whose access anyone could open. Nothing is loaded then."""
    settings.DEBUG = False
    real = make_member(document="1020304050", name="Persona Real", mobile="+573001112233", email="")
    out, err = io.StringIO(), io.StringIO()

    with pytest.raises(CommandError, match="1020304050"):
        call_command("load_demo_members", "--force", stdout=out, stderr=err)

    real.refresh_from_db()
    assert (real.name, real.mobile, real.email, real.pin_hash) == ("Persona Real", "+573001112233", "", "")
    assert Member.objects.count() == 1
    real.delete()  # a registry without the demo's cédulas: the demo loads, as before
    call_command("load_demo_members", "--force", stdout=io.StringIO(), stderr=io.StringIO())
    assert Member.objects.count() == 5 and Member.objects.get(document="1020304050").pin_hash


@pytest.mark.django_db(transaction=True)
def test_it_exits_non_zero_when_nothing_was_imported(tmp_path, capsys):
    path = write_csv(tmp_path, HEADER + "12AB,Juan Pérez,3007654321,\n")

    with pytest.raises(SystemExit) as exit_info:
        Command().run_from_argv(["manage.py", "import_members", str(path)])

    assert exit_info.value.code == 1
    assert NOTHING_IMPORTED in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_it_exits_non_zero_for_a_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        Command().run_from_argv(["manage.py", "import_members", str(tmp_path / "no-existe.csv")])

    assert exit_info.value.code == 1
    assert "No existe el archivo" in capsys.readouterr().err


@pytest.mark.django_db(transaction=True)
def test_it_exits_zero_when_the_invalid_rows_were_skipped_on_purpose(tmp_path, capsys):
    path = write_csv(tmp_path, HEADER + GOOD_ROWS + "12AB,Juan Pérez,3007654321,\n")

    Command().run_from_argv(["manage.py", "import_members", str(path), "--skip-invalid"])

    assert "con errores: 1" in capsys.readouterr().out
    assert Member.objects.count() == 3


def generated_rows(count: int, *, renamed_every: int = 0) -> list[str]:
    rows = []
    for index in range(count):
        name = f"Asociado {index}" + (" Renombrado" if renamed_every and index % renamed_every == 0 else "")
        rows.append(f"{10_000_000 + index},{name},+5731{index:08d},asociado{index}@Correo.co\n")
    return rows


def test_it_imports_thousands_of_rows_in_batches_and_reimports_them_idempotently(
    db, django_assert_max_num_queries
):
    lines = [HEADER, *generated_rows(3_000)]

    with django_assert_max_num_queries(300):  # per-row work would be thousands of queries
        report = members_import(lines=iter(lines), actor=ACTOR, batch_size=250)

    assert report == ImportReport(created=3_000)
    assert Member.objects.count() == 3_000
    assert contacts("10002999") == ("Asociado 2999", "+573100002999", "asociado2999@correo.co")

    report = members_import(
        lines=[HEADER, *generated_rows(3_000, renamed_every=10)], actor=ACTOR, batch_size=250
    )

    assert (report.created, report.updated, report.unchanged, report.errors) == (0, 300, 2_700, [])
    assert Member.objects.count() == 3_000
    assert Member.objects.filter(name__endswith="Renombrado").count() == 300


def test_it_rolls_back_batches_already_written_when_a_later_line_is_bad(db):
    lines = [HEADER, *generated_rows(10), "12AB,Juan Pérez,3007654321,\n", *generated_rows(0)]

    report = members_import(lines=lines, actor=ACTOR, batch_size=3)

    assert report == ImportReport(
        errors=[LineError(12, "La cédula debe tener entre 5 y 10 dígitos, sin letras.")]
    )
    assert not Member.objects.exists()


def test_it_rolls_back_written_batches_when_the_file_turns_out_not_to_be_utf8(db):
    lines = [HEADER, *generated_rows(10), "1234567,Jos\udce9 Rojas,3111234567,\n"]

    report = members_import(lines=lines, actor=ACTOR, skip_invalid=True, batch_size=3)

    assert report.aborted and report.errors[0].line == 12
    assert (report.created, report.updated, report.unchanged) == (0, 0, 0)
    assert not Member.objects.exists()


def test_it_summarises_a_report_in_spanish():
    report = ImportReport(created=3, updated=1, errors=[LineError(7, "x"), LineError(9, "y")])

    assert report.summary == "Creados: 3, actualizados: 1, sin cambios: 0, con errores: 2"
    assert str(report.errors[0]) == "Línea 7: x"


def test_it_refuses_a_batch_size_below_one():
    with pytest.raises(ValueError, match="batch_size"):
        members_import(lines=[HEADER], actor=ACTOR, batch_size=0)


# --- contact changes (the channels "Olvidé mi clave" sends codes to) --------------------------------------


def contact_events() -> list[tuple[int | None, dict[str, object]]]:
    return list(
        Event.objects.filter(kind="import_contact_changed").order_by("id").values_list("member_id", "data")
    )


def notices() -> list[tuple[int | None, str, str]]:
    return list(OutboxMessage.objects.order_by("id").values_list("member_id", "channel", "to"))


def test_a_changed_mobile_is_audited_and_the_old_number_told_not_the_new_one(
    db, tmp_path, sms_outbox, mailoutbox
):
    member = make_member(document="1234567", returning=True, mobile="+573009998877", email="ana@mail.com")

    out, _ = run_import(
        write_csv(tmp_path, HEADER + "1234567,María Fernanda Rojas,311 123 4567,ana@mail.com\n")
    )

    assert "actualizados: 1" in out
    assert contacts("1234567")[1] == "+573111234567"
    assert contact_events() == [(member.pk, {"operator": ACTOR, "fields": ["mobile"]})]
    assert notices() == [(member.pk, "sms", "+573009998877")]
    assert [sms.to for sms in sms_outbox] == ["+573009998877"]
    assert "actualizamos tu celular o tu correo" in sms_outbox[0].body
    assert mailoutbox == []


def test_a_changed_email_tells_the_old_email_only(db, tmp_path, sms_outbox, mailoutbox):
    member = make_member(document="1234567", mobile="+573111234567", email="antes@mail.com")

    run_import(write_csv(tmp_path, HEADER + "1234567,María Fernanda Rojas,311 123 4567,despues@mail.com\n"))

    assert contact_events() == [(member.pk, {"operator": ACTOR, "fields": ["email"]})]
    assert [message.to for message in mailoutbox] == [["antes@mail.com"]]
    assert mailoutbox[0].subject == "Se actualizaron tus datos de contacto"
    assert "Hola, María" in mailoutbox[0].body and "antes del cambio" in mailoutbox[0].body
    assert sms_outbox == []


def test_a_removed_channel_is_told_it_was_removed(db, tmp_path, sms_outbox, mailoutbox):
    member = make_member(document="1234567", mobile="+573111234567", email="ana@mail.com")

    run_import(write_csv(tmp_path, HEADER + "1234567,María Fernanda Rojas,311 123 4567,\n"))

    assert contacts("1234567")[2] == ""
    assert contact_events() == [(member.pk, {"operator": ACTOR, "fields": ["email"]})]
    assert [message.to for message in mailoutbox] == [["ana@mail.com"]]
    assert sms_outbox == []


def test_a_channel_added_where_there_was_none_is_audited_and_the_changed_one_told(
    db, tmp_path, sms_outbox, mailoutbox
):
    member = make_member(document="1234567", mobile="+573111234567", email="")

    run_import(write_csv(tmp_path, HEADER + "1234567,María Fernanda Rojas,300 765 4321,ana@mail.com\n"))

    assert contact_events() == [(member.pk, {"operator": ACTOR, "fields": ["mobile", "email"]})]
    # The old mobile is told; there was no old e-mail to tell, and the new one is not.
    assert notices() == [(member.pk, "sms", "+573111234567")]
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("had", "row", "told"),
    [
        ({"mobile": "+573111234567", "email": ""}, "311 123 4567,otra@mail.com", ("sms", "+573111234567")),
        ({"mobile": "", "email": "ana@mail.com"}, "300 765 4321,ana@mail.com", ("email", "ana@mail.com")),
    ],
)
def test_a_channel_added_beside_the_only_one_the_member_had_is_told_on_that_one(
    db, tmp_path, sms_outbox, mailoutbox, had, row, told
):
    """An e-mail added to a member who had only a mobile (or the reverse) changes no old channel, and
    nobody was told: a new channel for «Olvidé mi clave» came in silently, the step before a reset
    through it. The channel the member already had is told."""
    member = make_member(document="1234567", **had)

    run_import(write_csv(tmp_path, HEADER + f"1234567,María Fernanda Rojas,{row}\n"))

    assert len(contact_events()) == 1 and contact_events()[0][0] == member.pk
    assert notices() == [(member.pk, *told)]
    assert len(sms_outbox) + len(mailoutbox) == 1


def test_an_unchanged_or_renamed_member_and_a_created_one_record_and_send_nothing(
    db, tmp_path, sms_outbox, mailoutbox
):
    make_member(document="1234567", name="Maria Rojas", mobile="+573111234567", email="mynameis@mail.com")
    make_member(document="7654321", name="Juan Pérez", mobile="+573007654321", email="")

    out, _ = run_import(write_csv(tmp_path, HEADER + GOOD_ROWS))

    assert out.splitlines() == ["Creados: 1, actualizados: 1, sin cambios: 1, con errores: 0"]
    assert contacts("1234567")[0] == "María Fernanda Rojas"
    assert contact_events() == [] and notices() == []
    assert sms_outbox == [] and mailoutbox == []


def test_a_strict_import_that_fails_changes_no_contact_records_nothing_and_sends_nothing(
    db, tmp_path, sms_outbox, mailoutbox
):
    make_member(document="1234567", mobile="+573009998877", email="antes@mail.com")
    path = write_csv(
        tmp_path,
        HEADER + "1234567,María Rojas,311 123 4567,despues@mail.com\n" + "12AB,Juan Pérez,3007654321,\n",
    )

    failed_import(path)

    assert contacts("1234567")[1:] == ("+573009998877", "antes@mail.com")
    assert contact_events() == [] and notices() == []
    assert sms_outbox == [] and mailoutbox == []


def test_contact_changes_are_found_in_every_batch_and_counted(db, sms_outbox):
    members_import(lines=[HEADER, *generated_rows(30)], actor=ACTOR, batch_size=7)
    changed = [
        row.replace(",+5731", ",+5732", 1) if index % 10 == 3 else row
        for index, row in enumerate(generated_rows(30))
    ]

    report = members_import(lines=[HEADER, *changed], actor="maria", batch_size=7)

    assert (report.created, report.updated, report.unchanged, report.contacts_changed) == (0, 3, 27, 3)
    documents = Member.objects.filter(pk__in=[pk for pk, _ in contact_events()]).values_list(
        "document", flat=True
    )
    assert sorted(documents) == ["10000003", "10000013", "10000023"]
    assert {data["operator"] for _, data in contact_events()} == {"maria"}
    assert sorted(sms.to for sms in sms_outbox) == ["+573100000003", "+573100000013", "+573100000023"]


def test_the_notice_fits_one_sms_even_with_a_long_cooperative_name(db, tmp_path, settings, sms_outbox):
    settings.COOPERATIVE_NAME = (
        "Cooperativa Multiactiva de Ahorro y Crédito de los Trabajadores de la Educación del Departamento de "
        "Cundinamarca"
    )
    make_member(document="1234567", mobile="+573009998877")

    run_import(write_csv(tmp_path, HEADER + "1234567,María Fernanda Rojas,311 123 4567,\n"))

    assert [gsm7_length(sms.body) <= 160 for sms in sms_outbox] == [True]


def changed_mobiles(count: int, *, every: int) -> list[str]:
    return [
        row.replace(",+5731", ",+5732", 1) if index % every == 0 else row
        for index, row in enumerate(generated_rows(count))
    ]


def import_statements(lines: list[str], monkeypatch) -> int:
    """The SQL statements of one import, without the delivery of its notices (counted apart)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from oficina.members import importer

    monkeypatch.setattr(importer, "outbox_dispatch", lambda messages, **options: None)
    with CaptureQueriesContext(connection) as queries:
        members_import(lines=lines, actor=ACTOR, batch_size=1_000)
    return len(queries)


def test_a_batch_records_its_contact_changes_in_one_statement_for_events_and_one_for_notices(db, monkeypatch):
    """A re-import that changes many contacts: the events of a batch go in one statement and its
    notices in another, instead of two per member (a million-row import that changes 1 % of the
    mobiles spent ~20 s there). 40 changes, not more: SQLite splits a bulk INSERT at 999 parameters."""
    members_import(lines=[HEADER, *generated_rows(400)], actor=ACTOR)

    few = import_statements([HEADER, *changed_mobiles(400, every=100)], monkeypatch)  # 4 changes
    members_import(lines=[HEADER, *generated_rows(400)], actor=ACTOR)  # back as they were
    many = import_statements([HEADER, *changed_mobiles(400, every=10)], monkeypatch)  # 40 changes

    assert Event.objects.filter(kind="import_contact_changed").count() == 4 + 4 + 40
    assert OutboxMessage.objects.filter(kind="import_contact_changed").count() == 4 + 4 + 40
    assert many == few


def test_a_batch_renders_its_identical_sms_notice_once(db, monkeypatch, sms_outbox):
    members_import(lines=[HEADER, *generated_rows(40)], actor=ACTOR)
    renders = counted_renders(monkeypatch)
    members_import(lines=[HEADER, *changed_mobiles(40, every=4)], actor=ACTOR, batch_size=20)  # 2 batches

    assert renders.count("notify/import_contact_changed_sms.txt") == 2
    assert len(sms_outbox) == 10 and len({sms.body for sms in sms_outbox}) == 1


def test_contact_change_events_recorded_together_are_sealed_into_a_sound_chain(db, sms_outbox):
    from oficina.audit.services import audit_seal, chain_verify

    members_import(lines=[HEADER, *generated_rows(50)], actor=ACTOR)
    members_import(lines=[HEADER, *changed_mobiles(50, every=5)], actor="maria")
    audit_seal()

    events = Event.objects.filter(kind="import_contact_changed")
    assert events.count() == 10 and not events.filter(seq__isnull=True).exists()
    assert list(chain_verify()) == []
    assert len(sms_outbox) == 10


def test_with_the_database_backend_every_notice_of_an_import_waits_for_the_worker(db, database_tasks):
    members_import(lines=[HEADER, *generated_rows(30)], actor=ACTOR)
    members_import(lines=[HEADER, *changed_mobiles(30, every=3)], actor=ACTOR, batch_size=4)

    notices = set(OutboxMessage.objects.filter(kind="import_contact_changed").values_list("pk", flat=True))
    assert len(notices) == 10 and sorted(queued_task_messages()) == sorted(notices)
    # In bulk: fewer task rows than notices, each after whatever a member is waiting for.
    tasks = DBTaskResult.objects.values_list("priority", flat=True)
    assert 0 < len(tasks) < len(notices) and set(tasks) == {BULK_PRIORITY}


def pin_attempt_waits(document: str) -> bool:
    """Whether a PIN attempt's write to the member's row (the attempt counter) has to wait, tried on
    another connection with a 1 s lock timeout."""
    import threading

    from django.db import OperationalError, connection, transaction

    from oficina.signin.flows.login import _attempt_claim

    waited: list[bool] = []

    def attempt() -> None:
        try:
            with transaction.atomic():
                with connection.cursor() as cursor:
                    cursor.execute("SET LOCAL lock_timeout = '1s'")
                _attempt_claim(Member.objects.get(document=document).pk)
            waited.append(False)
        except OperationalError:  # lock_timeout: still waiting after 1 s
            waited.append(True)
        finally:
            connection.close()

    thread = threading.Thread(target=attempt)
    thread.start()
    thread.join()
    return waited == [True]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_an_import_in_progress_does_not_hold_up_the_sign_in_of_a_member_it_leaves_unchanged():
    """docs/security.md G18: a re-import of the whole registry used to lock every member's row until it
    committed, so a sign-in waited for the whole import. Now only the members it changes wait."""
    from django.db import transaction

    members_import(lines=[HEADER, *generated_rows(20)], actor=ACTOR)

    with transaction.atomic():  # the import, not yet committed
        report = members_import(lines=[HEADER, *changed_mobiles(20, every=10)], actor=ACTOR)
        assert (report.updated, report.unchanged) == (2, 18)
        assert not pin_attempt_waits("10000005")  # unchanged
        assert pin_attempt_waits("10000010")  # its mobile changed: written, locked until the commit


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_sign_in_held_up_by_an_import_gets_a_page_to_retry_instead_of_a_killed_worker():
    """docs/security.md G18: a member whose contacts the import changes waits for its commit. A web
    request gives up after DATABASE_LOCK_TIMEOUT_MS (10 s under gunicorn, before its 30 s timeout;
    1 s here) with a page that says to retry, and the attempt is not counted."""
    import threading

    from django.db import connection, connections, transaction
    from django.test import Client

    from tests.factories import DEFAULT_PIN
    from tests.keypad import type_on_keypad

    make_member(returning=True, document="10000010", name="Asociado 10", mobile="+573100000010")
    members_import(lines=[HEADER, *generated_rows(20)], actor=ACTOR)
    responses = []

    def sign_in() -> None:
        try:
            browser = Client()
            browser.post("/", {"usuario": "10000010"})
            responses.append(type_on_keypad(browser, "/clave/", DEFAULT_PIN))
        finally:
            connection.close()

    options = connections.settings["default"].setdefault("OPTIONS", {})
    options["options"] = "-c lock_timeout=1000"  # what DATABASE_LOCK_TIMEOUT_MS sets, for new connections
    try:
        with transaction.atomic():  # the import, not yet committed
            members_import(lines=[HEADER, *changed_mobiles(20, every=10)], actor=ACTOR)
            thread = threading.Thread(target=sign_in)
            thread.start()
            thread.join(timeout=20)
    finally:
        del options["options"]

    [response] = responses
    assert response.status_code == 503 and response["Retry-After"] == "60"
    assert "Estamos actualizando tus datos" in response.content.decode()
    member = Member.objects.get(document="10000010")
    assert member.failed_pin_attempts == 0 and member.last_login_at is None


@pytest.mark.postgres
@pytest.mark.parametrize("statistics", ["never analysed", "analysed with few live rows among many pages"])
def test_each_batch_finds_its_members_through_the_document_index_whatever_the_statistics(db, statistics):
    """A registry loaded into a new table: its statistics still describe the empty table, and a hash join
    over the whole table per batch made a million-row import quadratic (29.6 → 42.6 s). The import's
    batches must probe the index instead. Statistics of a few live rows among many pages (dead rows:
    CI's suite left them, 13 rows) made the nested loop read the whole table for every batch."""
    from django.db import connection

    if statistics != "never analysed":  # 13 live rows among the pages of 20,000 deleted ones
        Member.objects.bulk_create(
            Member(document=str(90_000_000 + i), name="Dead", mobile="+573111234567") for i in range(20_000)
        )
        Member.objects.filter(name="Dead").delete()
        Member.objects.bulk_create(
            Member(document=str(80_000_000 + i), name="Live", mobile="+573111234567") for i in range(13)
        )
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE members_member")
    plans: list[str] = []

    def explained(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        if sql.startswith("WITH batch AS"):
            context["cursor"].execute("EXPLAIN " + sql, params)
            plans.append("\n".join(row[0] for row in context["cursor"].fetchall()))
        return execute(sql, params, many, context)

    members_import(lines=[HEADER, *generated_rows(3_000)], actor=ACTOR)  # no ANALYZE since
    with connection.execute_wrapper(explained):
        members_import(lines=[HEADER, *changed_mobiles(3_000, every=10)], actor=ACTOR, batch_size=1_000)

    assert len(plans) == 6  # per batch: the lock on the rows it changes, then the upsert
    for plan in plans:
        assert "Seq Scan on members_member" not in plan, plan
        assert "Index" in plan


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_contact_change_committed_while_the_import_waits_for_the_row_is_the_old_contact_it_notifies():
    """docs/security.md G18: a member changes their mobile in the office while an import that replaces
    it waits for that row. The import still replaces it, and the contact it tells is the one it
    replaced (the member's new mobile), not the one before the member's change, which the member's own
    change has already told. Before the fix the import read the old contacts on its statement's
    snapshot: the first mobile was told twice, the member's own never."""
    import threading
    import time

    from django.db import connection, transaction

    members_import(lines=[HEADER, *generated_rows(20)], actor=ACTOR)
    document, first, members_own = "10000010", "+573100000010", "+573009990010"
    assert Member.objects.get(document=document).mobile == first
    changed, failures, import_waited = threading.Event(), [], []

    def the_member_changes_their_mobile() -> None:
        try:
            with transaction.atomic():
                Member.objects.filter(document=document).update(mobile=members_own)
                changed.set()
                deadline = time.monotonic() + 10
                while not a_statement_waits_for_a_row_lock() and time.monotonic() < deadline:
                    time.sleep(0.02)
                import_waited.append(a_statement_waits_for_a_row_lock())
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            changed.set()
            connection.close()

    def the_import() -> None:
        try:
            members_import(lines=[HEADER, *changed_mobiles(20, every=10)], actor=ACTOR)
        except Exception as error:  # pragma: no cover - reported below
            failures.append(error)
        finally:
            connection.close()

    member = threading.Thread(target=the_member_changes_their_mobile)
    member.start()
    assert changed.wait(10)
    importing = threading.Thread(target=the_import)
    importing.start()
    member.join(20)
    importing.join(20)

    assert failures == [] and import_waited == [True]  # the race happened: the import waited for the row
    assert Member.objects.get(document=document).mobile == "+573200000010"  # the import's value
    told = OutboxMessage.objects.filter(kind="import_contact_changed", member__document=document)
    assert [notice.to for notice in told] == [members_own]
