"""Decoys: what an unknown cédula is shown, so the pages never reveal who is a member.

Everything is derived from a keyed HMAC of the cédula: the same cédula always gets the same decoy
(asking twice shows nothing new), and without DECOY_KEY nobody can tell a decoy from a real member.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.utils.crypto import salted_hmac

from oficina.antiphishing.gallery import GALLERY

_OPENINGS = (
    "La paciencia",
    "La constancia",
    "Mi familia",
    "El esfuerzo",
    "La alegría",
    "Mi abuela",
    "El trabajo",
    "La fe",
    "Mi casa",
    "El café",
    "La música",
    "El río",
    "La montaña",
    "Mi huerta",
    "El ahorro",
    "La lluvia",
)
_ENDINGS = (
    "es mi fuerza",
    "abre caminos",
    "vale la pena",
    "me da paz",
    "siempre vuelve",
    "es lo primero",
    "nunca falla",
    "todo lo puede",
    "me enseñó a soñar",
    "da buenos frutos",
    "llega a tiempo",
    "es mi tesoro",
    "no se rinde",
    "me acompaña",
    "sabe a domingo",
    "trae calma",
)
_EMAIL_STARTS = (
    "maria",
    "juanc",
    "luisa",
    "andre",
    "carlo",
    "diana",
    "jorge",
    "paola",
    "sebas",
    "natal",
    "camil",
    "felip",
    "laura",
    "david",
    "sofia",
    "migue",
)
_EMAIL_DOMAINS = ("gmail.com", "hotmail.com", "outlook.com", "yahoo.com", "hotmail.es", "gmail.com")
_MOBILE_PREFIXES = (
    "300",
    "301",
    "310",
    "311",
    "312",
    "313",
    "314",
    "315",
    "316",
    "317",
    "318",
    "320",
    "321",
    "350",
    "304",
    "305",
)


@dataclass(frozen=True)
class Decoy:
    image_id: str
    phrase: str
    masked_mobile: str
    masked_email: str


def decoy_for(document: str) -> Decoy:
    d = salted_hmac(
        "oficina.antiphishing.decoy", document, secret=settings.DECOY_KEY, algorithm="sha256"
    ).digest()
    channels = d[8] % 10  # about as often as real members: both (7 in 10), SMS only (2), e-mail only (1)
    masked_mobile = f"{_MOBILE_PREFIXES[d[5] % 16]} {d[6] % 10}{d[7] % 10}****" if channels != 9 else ""
    masked_email = (
        f"{_EMAIL_STARTS[d[3] % 16]}****@{_EMAIL_DOMAINS[d[4] % 6]}" if channels < 7 or channels == 9 else ""
    )
    return Decoy(
        image_id=GALLERY[int.from_bytes(d[0:2], "big") % len(GALLERY)].id,
        phrase=f"{_OPENINGS[d[2] % 16]} {_ENDINGS[d[9] % 16]}",
        masked_mobile=masked_mobile,
        masked_email=masked_email,
    )
