#!/usr/bin/env python3
"""Build oficina/signin/data/common_pins_6.txt: the most common six-digit PINs of a published corpus.

Source: Mark Burnett's "10 million passwords" (xato.net, 2015), in the frequency-ordered top-100,000
list that SecLists publishes under the MIT licence. To regenerate the committed file::

    curl -fLO https://raw.githubusercontent.com/danielmiessler/SecLists/\\
c205c36a445bff37f8e58a9ec829105cd4975c58/Passwords/Common-Credentials/xato-net-10-million-passwords-100000.txt
    python tools/build_common_pins.py xato-net-10-million-passwords-100000.txt

(or clone https://github.com/danielmiessler/SecLists at that commit and pass the file's path).

It keeps the lines that are exactly six ASCII digits, in corpus order (most common first), drops
repeats, and writes the first COUNT of them under a header naming the source. Nothing is sorted or
filtered beyond that: the existing rules of oficina/signin/common_pins.py overlap with the list on
purpose (the list is evidence, the rules explain). Standard library only.

The committed file (2026-12-06) was built with six_digit_pins() and render() from the corpus at that
commit as read through a stored copy (16,000 characters a page), on a machine without network, and
checked against a second transcription made without looking at it: the corpus's characters 0 to
256,000 read again page by page, each page's six-digit lines written down (a line cut by a page end
joined to its rest: 2|40188 is 240188, 070819|73 is 07081973), the 3,156 distinct six-digit lines fed
to the same two functions, the result diffed with the file line by line. One difference: the first
transcription had lost 010174 (entry 1,536, characters 191,994 to 191,999), whose line ends exactly
where a page ends, so the list ran one entry too far, to 140577; corrected. The 3,000th entry is
140683, at character 246,835 of 781,879. Running this script on a downloaded copy has still not been
done; it should give the same file.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "oficina" / "signin" / "data" / "common_pins_6.txt"
COUNT = 3000
SIX_DIGITS = re.compile(r"[0-9]{6}")

SOURCE_REPO = "https://github.com/danielmiessler/SecLists"
SOURCE_COMMIT = "c205c36a445bff37f8e58a9ec829105cd4975c58"
SOURCE_PATH = "Passwords/Common-Credentials/xato-net-10-million-passwords-100000.txt"

HEADER = """\
# The {count} most common six-digit PINs of a published password corpus, most common first.
# Source: Mark Burnett, "10 million passwords" (xato.net, 2015; usernames removed), as the
#   frequency-ordered top-100,000 list of SecLists (Daniel Miessler et al.),
#   {repo}/blob/{commit}/{path}
#   Licence: MIT, as SecLists; its notice is in LICENSE-SecLists.txt beside this file.
# Selection: every line of that list that is exactly six ASCII digits, in its order, repeats dropped;
#   the first {count} (the last one, {last}, sits about a third of the way down the list).
# Built {date} by tools/build_common_pins.py (it says how to get the source file). Do not edit by hand.
"""


def six_digit_pins(lines: Iterable[str]) -> list[str]:
    """The lines that are exactly six ASCII digits, in order, each once."""
    seen: dict[str, None] = {}
    for line in lines:
        candidate = line.rstrip("\r\n")
        if SIX_DIGITS.fullmatch(candidate):
            seen.setdefault(candidate, None)
    return list(seen)


def render(pins: list[str], *, date: str) -> str:
    header = HEADER.format(
        count=len(pins), repo=SOURCE_REPO, commit=SOURCE_COMMIT, path=SOURCE_PATH, last=pins[-1], date=date
    )
    return header + "".join(f"{pin}\n" for pin in pins)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("corpus", type=Path, help="local copy of xato-net-10-million-passwords-100000.txt")
    parser.add_argument("--count", type=int, default=COUNT)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--date", required=True, help="the date to write in the header, e.g. 2026-12-06")
    args = parser.parse_args(argv)

    with args.corpus.open(encoding="utf-8", errors="replace") as corpus:
        pins = six_digit_pins(corpus)
    if len(pins) < args.count:
        print(f"the corpus has only {len(pins)} six-digit lines, fewer than {args.count}", file=sys.stderr)
        return 1
    args.out.write_text(render(pins[: args.count], date=args.date), encoding="ascii")
    print(f"wrote {args.count} PINs to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
