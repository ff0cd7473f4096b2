"""Every Vietnamese UI text in the templates and views has an English translation in the catalogue."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.pofile import read_po

CENTRAL = Path(__file__).resolve().parents[2] / "central"
CATALOGUE = CENTRAL / "translations" / "en" / "LC_MESSAGES" / "messages.po"
MARKED = re.compile(r"""\b_l?\(\s*(["'])((?:(?!\1).)+)\1""")


def marked_texts() -> dict[str, str]:
    """Each text marked for translation with ``_()`` / ``_l()`` in a template or a Python module, with a file."""
    found: dict[str, str] = {}
    for path in sorted([*CENTRAL.rglob("*.html"), *CENTRAL.rglob("*.py")]):
        for match in MARKED.finditer(path.read_text(encoding="utf-8")):
            if not match.group(2).isascii():  # the source language is Vietnamese; ASCII-only texts are symbols
                found.setdefault(match.group(2), str(path.relative_to(CENTRAL)))
    return found


def test_every_marked_text_has_an_english_translation() -> None:
    with CATALOGUE.open("rb") as source:
        catalogue = read_po(source)
    translated = {message.id for message in catalogue if message.id and message.string}
    texts = marked_texts()
    assert len(texts) > 200  # the scan itself works: the UI has hundreds of texts
    missing = {text: path for text, path in texts.items() if text not in translated}
    assert missing == {}
