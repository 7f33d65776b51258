from __future__ import annotations

from django.contrib.auth.hashers import Argon2PasswordHasher


class PinArgon2Hasher(Argon2PasswordHasher):
    """Argon2id at the OWASP Password Storage parameters: m=19 MiB, t=2, p=1.

    Keeps the algorithm name "argon2", so hashes stay readable by Django's stock hasher; a change
    of parameters is picked up on the next successful sign-in through must_update().
    """

    time_cost = 2
    memory_cost = 19 * 1024  # KiB
    parallelism = 1
