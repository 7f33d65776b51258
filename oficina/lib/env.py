"""Typed readers for environment variables; bad values fail loudly at start."""

from __future__ import annotations

import os
import re

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def envstr(name: str, default: str = "") -> str:
    """A string from the environment, or from the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            with open(file_name, encoding="utf-8") as fh:
                return fh.read().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_name!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def envbool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false, yes/no), not {raw!r}")


def envint(name: str, default: int, *, minimum: int | None = None, maximum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name} must be a whole number, not {raw!r}") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name} must be at least {minimum}, not {value}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name} must be at most {maximum}, not {value}")
    return value


def envchoice(name: str, choices: dict[str, str], default: str) -> str:
    """Maps a short name (e.g. 'console') to its dotted path; unknown names fail."""
    raw = os.environ.get(name, default).strip()
    if raw in choices:
        return choices[raw]
    if "." in raw:  # a dotted path to a custom backend is allowed
        return raw
    raise ImproperlyConfigured(f"{name} must be one of {', '.join(sorted(choices))}, not {raw!r}")


def envlist(name: str, default: str = "") -> list[str]:
    """Values separated by commas or line breaks, from NAME or from the file named by NAME_FILE (as
    envstr): a file with one old key a line must not become one key with a line break in it."""
    return [item.strip() for item in re.split(r"[,\n]", envstr(name, default)) if item.strip()]
