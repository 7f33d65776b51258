"""The docs cite tests as evidence (docs/security.md: "every test cited as `tests/…::test_name` exists in
the repository"): a renamed or deleted test must not leave a control documented as proven by nothing.
A citation `…::test_name` refers to the file of the citation before it."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Not `tests/…::test_name` (the form itself) nor `test_a_*_cannot_be_*` (a family, by pattern).
CITATION = re.compile(r"(tests/[\w/]+\.py|(?<![/\w])…)::(test_\w+)(?![\w*])")


def citations() -> list[tuple[str, str, str]]:
    found = []
    for doc in DOCS:
        last = ""
        for file, name in CITATION.findall(doc.read_text(encoding="utf-8")):
            if file != "…":
                last = file
            found.append((doc.name, last, name))
    return found


def test_the_docs_cite_tests():
    assert len(citations()) > 100  # the pattern still reads the docs' way of citing


def test_every_test_the_docs_cite_exists():
    missing = [
        f"{doc}: {file}::{name}"
        for doc, file, name in citations()
        if not file
        or not (ROOT / file).is_file()
        or not re.search(rf"^\s*(async )?def {name}\(", (ROOT / file).read_text(encoding="utf-8"), re.M)
    ]
    assert missing == []
