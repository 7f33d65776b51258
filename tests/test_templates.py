"""Template habits a rendered page cannot show wrong until a member sees it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = sorted(
    path
    for folder in (ROOT / "templates", ROOT / "oficina")
    for path in folder.rglob("*")
    if path.suffix in {".html", ".txt"} and "templates" in path.parts
)


def test_the_templates_are_found():
    assert len(TEMPLATES) > 40


def test_no_template_comment_spans_lines():
    """Django's `{# … #}` ends at the line's end: one written over two lines is printed on the page,
    comment and all (a note for developers shown to members). Longer ones take {% comment %}."""
    opened = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in TEMPLATES
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if re.search(r"\{#(?!.*#\})", line)
    ]
    assert opened == []


def test_what_identifies_a_control_and_the_focus_ring_stand_out_from_the_page():
    """WCAG 1.4.11 (3:1 for what identifies a control, and for the focus indicator). The keys'
    and choices' edges were #c9d3cf, 1.5:1 on white, and the focus ring #d97706, 2.9:1 on the page's
    background (UX review, 2026-12-06); axe does not measure either."""
    from oficina.branding import _channel

    css = (ROOT / "static" / "css" / "app.css").read_text(encoding="utf-8")
    colours = dict(re.findall(r"--([\w-]+):\s*(#[0-9a-fA-F]{6})", css))

    def luminance(colour: str) -> float:
        r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
        return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)

    def contrast(a: str, b: str) -> float:
        high, low = sorted((luminance(colours[a]), luminance(colours[b])), reverse=True)
        return (high + 0.05) / (low + 0.05)

    for edge in ("control", "focus"):
        for ground in ("card", "bg"):
            assert contrast(edge, ground) >= 3, (edge, ground)
    for selector in (".key {", ".choice {", ".gallery__item {"):
        rule = css[css.index(selector) :].split("}", 1)[0]
        assert "solid var(--control)" in rule, selector


def test_the_back_offices_own_forms_that_post_send_once():
    """A twin of an operator's POST did the work twice (two SMS with the instructions, two imports) or
    hid the first one's answer (the chain's walk: «Ya hay una verificación de la cadena en curso»).
    static/js/backoffice.js sends a data-once form once; Django's own forms are left as they are (an
    action's answer may be a download, after which the form must still send)."""
    posting = [
        (path.relative_to(ROOT).as_posix(), tag)
        for path in TEMPLATES
        if "admin" in path.parts
        for tag in re.findall(r"<form\b[^>]*>", path.read_text(encoding="utf-8"))
        if 'method="post"' in tag
    ]
    assert len(posting) >= 5
    assert [(path, tag) for path, tag in posting if " data-once" not in tag] == []


def test_every_page_url_a_template_links_to_exists():
    """The sign-in's pages link through page_urls (oficina/context_processors.py), not {% url %}: a
    name missing there renders as an empty link where {% url %} would have failed loudly."""
    from oficina.context_processors import page_constants

    known = set(page_constants("/")["page_urls"])
    used = {
        (path.relative_to(ROOT).as_posix(), key)
        for path in TEMPLATES
        for key in re.findall(r"page_urls\.(\w+)", path.read_text(encoding="utf-8"))
    }
    assert {key for _, key in used} >= {"signin_identify", "signin_forgot_pin", "office_keep_alive"}
    assert [(path, key) for path, key in used if key not in known] == []


def test_the_linked_urls_are_the_ones_url_would_give():
    from django.urls import reverse

    from oficina.context_processors import JOURNEY_URLS, page_constants

    urls = page_constants("/")["page_urls"]
    assert {urls[name.replace(":", "_")] for name in JOURNEY_URLS} == {reverse(name) for name in JOURNEY_URLS}
