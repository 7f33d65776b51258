#!/usr/bin/env python3
"""Extract the anti-phishing security image gallery from an Iconify JSON icon set.

Source: the MIT-licensed Microsoft Fluent UI Emoji, "flat" style, as published on the npm
registry in ``@iconify-json/fluent-emoji-flat``. To regenerate the committed files::

    npm install --prefix /tmp/gallery-src @iconify-json/fluent-emoji-flat
    python tools/extract_gallery.py \\
        /tmp/gallery-src/node_modules/@iconify-json/fluent-emoji-flat/icons.json

This writes ``static/antiphishing/gallery/<id>.svg`` for every entry of ``SOURCES`` and
regenerates ``ATTRIBUTION.md`` next to them (``LICENSE.txt`` is committed by hand). The list
of ids and their order must match ``oficina/antiphishing/gallery.py`` (a test checks it).

Standard library only, so it runs without the project's virtualenv.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET  # the input is trusted package data; we validate what we write
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "static" / "antiphishing" / "gallery"
NPM_PACKAGE = "@iconify-json/fluent-emoji-flat"
SVG_NS = "http://www.w3.org/2000/svg"

# (gallery id, icon name in the Fluent Emoji Flat set), in gallery order.
SOURCES: tuple[tuple[str, str], ...] = (
    # Animales
    ("gato", "cat-face"),
    ("perro", "dog-face"),
    ("buho", "owl"),
    ("tortuga", "turtle"),
    ("mariposa", "butterfly"),
    ("pinguino", "penguin"),
    # Naturaleza
    ("girasol", "sunflower"),
    ("cactus", "cactus"),
    ("arbol", "deciduous-tree"),
    ("montana", "snow-capped-mountain"),
    ("arcoiris", "rainbow"),
    ("sol", "sun"),
    ("luna", "crescent-moon"),
    ("estrella", "star"),
    # Frutas y alimentos
    ("manzana", "red-apple"),
    ("banano", "banana"),
    ("aguacate", "avocado"),
    ("pina", "pineapple"),
    ("mazorca", "ear-of-corn"),
    ("fresa", "strawberry"),
    ("cafe", "hot-beverage"),
    # Objetos
    ("guitarra", "guitar"),
    ("bicicleta", "bicycle"),
    ("velero", "sailboat"),
    ("paraguas", "umbrella"),
    ("llave", "old-key"),
    ("casa", "house"),
    ("cohete", "rocket"),
    ("libros", "books"),
    ("camara", "camera"),
    ("ancla", "anchor"),
    ("cometa", "kite"),
)

_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")

# Elements an emoji illustration may legitimately use; anything else (script, foreignObject,
# image, a, style, animate/set...) makes the extraction fail rather than ship it.
_ALLOWED_TAGS = frozenset(
    {
        "svg",
        "g",
        "path",
        "circle",
        "ellipse",
        "rect",
        "line",
        "polyline",
        "polygon",
        "defs",
        "clipPath",
        "mask",
        "linearGradient",
        "radialGradient",
        "stop",
        "use",
        "filter",
        "feBlend",
        "feColorMatrix",
        "feFlood",
        "feGaussianBlur",
        "feOffset",
        "feComposite",
        "feMerge",
        "feMergeNode",
    }
)
_EXTERNAL_URL_RE = re.compile(r"url\(\s*['\"]?(?!#)", re.IGNORECASE)


class GalleryError(Exception):
    """The icon set does not contain what we need, or an icon is not safe to ship."""


def _fmt(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else repr(float(number))


def resolve_icon(icon_set: dict[str, Any], name: str) -> dict[str, Any]:
    """Return the icon data for ``name``, following a plain alias; transforms are refused."""
    icons: dict[str, Any] = icon_set.get("icons", {})
    aliases: dict[str, Any] = icon_set.get("aliases", {})
    seen: set[str] = set()
    current = name
    while current not in icons:
        alias = aliases.get(current)
        if alias is None or current in seen:
            raise GalleryError(f"icon {name!r} not found in the icon set")
        if set(alias) - {"parent"}:
            raise GalleryError(f"icon {name!r} is an alias with transformations; pick another icon")
        seen.add(current)
        current = alias["parent"]
    data: dict[str, Any] = icons[current]
    if data.get("rotate") or data.get("hFlip") or data.get("vFlip"):
        raise GalleryError(f"icon {name!r} needs transformations; pick another icon")
    return data


def build_svg(icon_set: dict[str, Any], name: str) -> str:
    """Return a standalone SVG document for icon ``name``."""
    data = resolve_icon(icon_set, name)
    left = data.get("left", icon_set.get("left", 0))
    top = data.get("top", icon_set.get("top", 0))
    width = data.get("width", icon_set.get("width", 16))
    height = data.get("height", icon_set.get("height", 16))
    body = data["body"]
    view_box = " ".join(_fmt(v) for v in (left, top, width, height))
    svg = f'<svg xmlns="{SVG_NS}" viewBox="{view_box}">{body}</svg>\n'
    check_svg(svg, name)
    return svg


def check_svg(svg: str, name: str) -> None:
    """Fail unless ``svg`` is well-formed, uses only allow-listed elements and stays self-contained."""
    try:
        root = ET.fromstring(svg)  # noqa: S314 - trusted package data, parsed only to validate it
    except ET.ParseError as exc:
        raise GalleryError(f"icon {name!r} is not well-formed XML: {exc}") from exc
    for element in root.iter():
        namespace, _, tag = element.tag.rpartition("}")
        if namespace != "{" + SVG_NS or tag not in _ALLOWED_TAGS:
            raise GalleryError(f"icon {name!r} uses element {element.tag!r}")
        for attr, value in element.attrib.items():
            local = attr.rpartition("}")[2]
            if local.lower().startswith("on"):
                raise GalleryError(f"icon {name!r} has event handler attribute {attr!r}")
            if local == "href" and not value.startswith("#"):
                raise GalleryError(f"icon {name!r} references {value!r}")
            if _EXTERNAL_URL_RE.search(value):
                raise GalleryError(f"icon {name!r} has a non-local url() in {attr!r}")


def attribution(version: str, files: list[str]) -> str:
    lines = [
        "# Galería de imágenes de seguridad (antiphishing)",
        "",
        "Images in this folder are taken unmodified (only wrapped in a standalone `<svg>` element) from",
        "**Microsoft Fluent UI Emoji**, *flat* style — https://github.com/microsoft/fluentui-emoji —",
        f"via the npm package `{NPM_PACKAGE}` version {version} (Iconify JSON format).",
        "",
        "- Copyright (c) Microsoft Corporation.",
        "- License: MIT — see `LICENSE.txt` in this folder.",
        "- Regenerate with `tools/extract_gallery.py` (instructions in its docstring).",
        "",
        "| File | Fluent Emoji name |",
        "| --- | --- |",
    ]
    names = dict(SOURCES)
    for filename in files:
        lines.append(f"| `{filename}` | {names[filename.removesuffix('.svg')]} |")
    return "\n".join(lines) + "\n"


def package_version(icons_json: Path) -> str:
    package_json = icons_json.with_name("package.json")
    if package_json.is_file():
        version = json.loads(package_json.read_text(encoding="utf-8")).get("version")
        if isinstance(version, str):
            return version
    return "unknown"


def extract(icons_json: Path, out_dir: Path) -> list[str]:
    ids = [gallery_id for gallery_id, _ in SOURCES]
    if len(set(ids)) != len(ids) or not all(_ID_RE.fullmatch(i) for i in ids):
        raise GalleryError("gallery ids must be unique [a-z0-9-] slugs")
    icon_set = json.loads(icons_json.read_text(encoding="utf-8"))
    license_info = icon_set.get("info", {}).get("license", {}).get("spdx")
    if license_info not in (None, "MIT"):
        raise GalleryError(f"unexpected licence {license_info!r}")

    documents = {f"{gallery_id}.svg": build_svg(icon_set, name) for gallery_id, name in SOURCES}
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in sorted(out_dir.glob("*.svg")):
        if stale.name not in documents:
            stale.unlink()
    for filename, svg in documents.items():
        (out_dir / filename).write_text(svg, encoding="utf-8", newline="\n")
    files = list(documents)
    (out_dir / "ATTRIBUTION.md").write_text(
        attribution(package_version(icons_json), files), encoding="utf-8", newline="\n"
    )
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("icons_json", type=Path, help=f"path to {NPM_PACKAGE}/icons.json")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    try:
        files = extract(args.icons_json, args.out)
    except (GalleryError, OSError, ValueError) as exc:
        print(f"extract_gallery: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {len(files)} SVG files and ATTRIBUTION.md to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
