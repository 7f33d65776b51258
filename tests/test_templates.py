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
