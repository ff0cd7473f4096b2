"""Translations: Vietnamese is the source language (the msgids); English lives in a .po file.

``central/translations/<lang>/LC_MESSAGES/messages.po`` is compiled to a .mo on first use into a cache
directory keyed by the .po contents, so a clean clone needs no ``pybabel compile`` step and an edited .po
is picked up at the next start.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

log = logging.getLogger(__name__)

SOURCE_DIR = Path(__file__).resolve().parent.parent / "translations"
LANGUAGES: dict[str, str] = {"vi": "Tiếng Việt", "en": "English"}
"""UI languages: code -> name in that language. Vietnamese first and default."""


@cache
def translation_directory() -> Path:
    """Return a directory holding ``<lang>/LC_MESSAGES/messages.mo`` compiled from the shipped .po files."""
    sources = sorted(SOURCE_DIR.glob("*/LC_MESSAGES/messages.po"))
    digest = hashlib.sha256()
    for po in sources:
        digest.update(po.relative_to(SOURCE_DIR).as_posix().encode())
        digest.update(po.read_bytes())
    base = Path(os.environ.get("VAORA_CACHE_DIR") or tempfile.gettempdir())
    target = base / f"vaora-translations-{digest.hexdigest()[:16]}"
    for po in sources:
        lang = po.parent.parent.name
        mo = target / lang / "LC_MESSAGES" / "messages.mo"
        if mo.exists():
            continue
        mo.parent.mkdir(parents=True, exist_ok=True)
        with po.open("rb") as handle:
            catalog = read_po(handle, locale=lang)
        partial = mo.with_suffix(f".{os.getpid()}.tmp")
        with partial.open("wb") as handle:
            write_mo(handle, catalog)
        partial.replace(mo)
        log.info("translations compiled lang=%s messages=%d", lang, len(catalog))
    return target
