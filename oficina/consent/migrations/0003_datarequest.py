from __future__ import annotations

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("consent", "0002_publish_version_1"),
        ("members", "0003_member_session_digest"),
    ]

    operations = [
        migrations.CreateModel(
            name="DataRequest",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("consulta", "Conocer mis datos y el uso que se les da"),
                            ("prueba", "Recibir prueba de la autorización que di"),
                            ("actualizar", "Actualizar o corregir mis datos"),
                            ("revocar", "Revocar la autorización"),
                            ("suprimir", "Suprimir mis datos"),
                        ],
                        max_length=12,
                        verbose_name="solicitud",
                    ),
                ),
                (
                    "detail",
                    models.TextField(blank=True, max_length=1000, verbose_name="descripción del asociado"),
                ),
                ("received_at", models.DateTimeField(verbose_name="recibida")),
                ("due_on", models.DateField(verbose_name="responder a más tardar")),
                (
                    "status",
                    models.CharField(
                        choices=[("recibida", "Recibida, en trámite"), ("respondida", "Respondida")],
                        default="recibida",
                        max_length=12,
                        verbose_name="estado",
                    ),
                ),
                ("answer", models.TextField(blank=True, max_length=2000, verbose_name="respuesta")),
                ("answered_at", models.DateTimeField(blank=True, null=True, verbose_name="respondida")),
                ("answered_by", models.CharField(blank=True, max_length=150, verbose_name="respondida por")),
                (
                    "member",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="data_requests",
                        to="members.member",
                    ),
                ),
            ],
            options={
                "verbose_name": "solicitud sobre datos personales",
                "verbose_name_plural": "solicitudes sobre datos personales",
                "ordering": ["-received_at", "-id"],
                "indexes": [models.Index(fields=["status", "due_on"], name="consent_dat_status_b0943d_idx")],
            },
        ),
    ]
