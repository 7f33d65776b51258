"""Decoys: what an unknown cédula is shown, so the pages never reveal who is a member.

Everything is derived from a keyed HMAC of the cédula: the same cédula always gets the same decoy
(asking twice shows nothing new), and without DECOY_KEY nobody can compute which decoy a cédula gets.

A decoy must also not look made up (docs/security.md G24): its masked contacts are real contacts'
masks, made by the same functions from a generated mobile (any prefix the portal accepts for a
Colombian mobile) and a generated e-mail address (names, separators and digits as people write them,
the domains members use), and its phrase comes from a few tens of thousands of combinations rather
than a short list an attacker could learn from a few dozen cédulas. Changing anything here changes
every decoy at once, as rotating DECOY_KEY does: do it before go-live, or with that in mind.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from django.utils.crypto import salted_hmac

from oficina.antiphishing.gallery import GALLERY
from oficina.lib.masking import mask_email, mask_mobile
from oficina.lib.phone import InvalidMobile, normalise_mobile

_SUBJECTS = (
    "La paciencia", "La constancia", "Mi familia", "El esfuerzo", "La alegría", "Mi abuela",
    "El trabajo", "La fe", "Mi casa", "El café", "La música", "El río", "La montaña", "Mi huerta",
    "El ahorro", "La lluvia", "Mi mamá", "Mi papá", "Mi hija", "Mi hijo", "El perro", "Mi gato",
    "La finca", "El mar", "La cosecha", "Mi pueblo", "La abuela Rosa", "El tío Pedro", "Mi esposa",
    "Mi esposo", "La bicicleta", "El fútbol", "La cocina", "Mi barrio", "El colegio", "La iglesia",
    "El sol", "La luna", "Mi jardín", "El arroz con pollo", "La arepa", "El sancocho", "Mi nieta",
    "Mi nieto", "La guitarra", "El parque", "La vecina", "Mi primera moto",
)  # fmt: skip
_PREDICATES = (
    "es mi fuerza", "abre caminos", "vale la pena", "me da paz", "siempre vuelve", "es lo primero",
    "nunca falla", "todo lo puede", "me enseñó a soñar", "da buenos frutos", "llega a tiempo",
    "es mi tesoro", "no se rinde", "me acompaña", "sabe a domingo", "trae calma", "me hace reír",
    "es lo mejor", "me espera", "canta bonito", "huele a casa", "sale temprano", "nos une",
    "es azul", "queda lejos", "brilla de noche", "es sagrado", "me cuida", "tiene flores",
    "es grande", "me da ánimo", "corre rápido", "me recuerda a ti", "es de Dios", "siempre gana",
    "está en Boyacá", "está en el Huila", "nunca se olvida", "da alegría", "me quita el frío",
    "es para siempre", "vive feliz", "me da suerte", "lo es todo", "está conmigo", "suena fuerte",
    "sabe rico", "me inspira",
)  # fmt: skip
# Without an ending, or with what people add (never four digits in a row: members may not type them,
# so a decoy that had them would be a tell; oficina/signin/flows/new_credentials.py::phrase_clean).
_ENDINGS = ("",) * 10 + (" 7", " 10", " 15", " 23", " 85", " 99", "!", ".")
_NAMES = (
    "maria", "juan", "luisa", "andres", "carlos", "diana", "jorge", "paola", "sebastian", "natalia",
    "camila", "felipe", "laura", "david", "sofia", "miguel", "ana", "jose", "luz", "pedro", "rosa",
    "oscar", "sandra", "william", "gloria", "fabio", "marta", "nelson", "adriana", "hernan", "claudia",
    "jhon", "yaneth", "edwin", "liliana", "mauricio", "angela", "alejandro", "carolina", "daniel",
    "valentina", "santiago", "mariana", "nicolas", "gabriela", "alba", "ruben", "stella",
)  # fmt: skip
_SURNAMES = (
    "gomez", "rodriguez", "martinez", "garcia", "lopez", "hernandez", "gonzalez", "perez", "sanchez",
    "ramirez", "torres", "diaz", "moreno", "rojas", "vargas", "castro", "ortiz", "jimenez", "ruiz",
    "suarez", "munoz", "rincon", "acosta", "cardenas", "pineda", "osorio", "mejia", "zapata",
    "quintero", "restrepo", "salazar", "arias",
)  # fmt: skip
_SEPARATORS = ("", "", ".", "_")
# Weighted as members' addresses are: mostly Gmail and Hotmail.
_EMAIL_DOMAINS = (
    ("gmail.com",) * 10 + ("hotmail.com",) * 6 + ("outlook.com",) * 2 + ("yahoo.com",) * 2
    + ("hotmail.es", "yahoo.es", "outlook.es", "live.com", "icloud.com", "yahoo.com.co", "une.net.co",
       "msn.com")
)  # fmt: skip


@cache
def _mobile_prefixes() -> tuple[str, ...]:
    """Every three-digit start the portal accepts for a Colombian mobile (oficina/lib/phone.py)."""
    prefixes = []
    for prefix in range(300, 400):
        try:
            normalise_mobile(f"{prefix}2345678")
        except InvalidMobile:
            continue
        prefixes.append(str(prefix))
    return tuple(prefixes)


@dataclass(frozen=True)
class Decoy:
    image_id: str
    phrase: str
    masked_mobile: str
    masked_email: str


def _pick(options: tuple[str, ...], value: int) -> str:
    return options[value % len(options)]


def _email(d: bytes) -> str:
    """A made-up address shaped as members' are: a name, perhaps a surname or an initial, perhaps
    digits."""
    local = _pick(_NAMES, d[10])
    form = d[11] % 6
    if form in (0, 1):
        local += _pick(_SEPARATORS, d[12]) + _pick(_SURNAMES, d[13])
    elif form == 2:
        local += _pick(_SURNAMES, d[13])[0]
    if d[14] % 3 == 0:
        local += str(int.from_bytes(d[15:17], "big") % (10 ** (1 + d[17] % 4)))
    return f"{local}@{_pick(_EMAIL_DOMAINS, d[18])}"


def decoy_for(document: str) -> Decoy:
    d = salted_hmac(
        "oficina.antiphishing.decoy", document, secret=settings.DECOY_KEY, algorithm="sha256"
    ).digest()
    channels = d[8] % 10  # about as often as real members: both (7 in 10), SMS only (2), e-mail only (1)
    mobile = (
        f"+57{_pick(_mobile_prefixes(), d[5])}{int.from_bytes(d[6:8] + d[19:21], 'big') % 10_000_000:07d}"
    )
    return Decoy(
        image_id=GALLERY[int.from_bytes(d[0:2], "big") % len(GALLERY)].id,
        phrase=f"{_pick(_SUBJECTS, d[2])} {_pick(_PREDICATES, d[9])}{_pick(_ENDINGS, d[3])}",
        masked_mobile=mask_mobile(mobile) if channels != 9 else "",
        masked_email=mask_email(_email(d)) if channels < 7 or channels == 9 else "",
    )
