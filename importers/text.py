"""Small text helpers shared by the importers: whitespace, scripts, partial dates, limits."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from datetime import date
from functools import lru_cache

# The first word of a character's Unicode name -> its ISO 15924 script code. Enough for the
# scripts sanction lists use; a name in any other script simply gets no ``script``.
_SCRIPTS = {
    "LATIN": "Latn", "ARABIC": "Arab", "CYRILLIC": "Cyrl", "GREEK": "Grek", "HEBREW": "Hebr",
    "CJK": "Hani", "HANGUL": "Hang", "HIRAGANA": "Hira", "KATAKANA": "Kana", "THAI": "Thai",
    "DEVANAGARI": "Deva", "BENGALI": "Beng", "GURMUKHI": "Guru", "GUJARATI": "Gujr",
    "TAMIL": "Taml", "TELUGU": "Telu", "KANNADA": "Knda", "MALAYALAM": "Mlym", "SINHALA": "Sinh",
    "ETHIOPIC": "Ethi", "GEORGIAN": "Geor", "ARMENIAN": "Armn", "SYRIAC": "Syrc",
    "THAANA": "Thaa", "MYANMAR": "Mymr", "KHMER": "Khmr", "LAO": "Laoo", "TIBETAN": "Tibt",
    "MONGOLIAN": "Mong",
}
_PARTIAL_DATE = re.compile(r"^\d{4}(-(0[1-9]|1[0-2])(-(0[1-9]|[12]\d|3[01]))?)?$")
MONTHS = {name: number for number, names in enumerate(
    (("jan", "january"), ("feb", "february"), ("mar", "march"), ("apr", "april"), ("may",),
     ("jun", "june"), ("jul", "july"), ("aug", "august"), ("sep", "sept", "september"),
     ("oct", "october"), ("nov", "november"), ("dec", "december")), start=1) for name in names}


def clean(text: str | None) -> str:
    """Collapse runs of whitespace (lists wrap long values over several lines)."""
    return " ".join((text or "").split())


def limit(text: str, most: int) -> str:
    """At most ``most`` characters, marking a cut with an ellipsis."""
    return text if len(text) <= most else text[: most - 1] + "…"


def script_of(text: str) -> str | None:
    """The ISO 15924 code of the script most of the letters are in, if a known one."""
    counts = Counter(_block(char) for char in text if char.isalpha())
    if not counts:
        return None
    return _SCRIPTS.get(counts.most_common(1)[0][0])


@lru_cache(maxsize=8192)
def _block(char: str) -> str:
    return unicodedata.name(char, "?").split(" ", 1)[0]


def partial_date(text: str) -> str | None:
    """``YYYY``, ``YYYY-MM`` or a real ``YYYY-MM-DD``, else None."""
    text = text.strip()[:10]
    if not _PARTIAL_DATE.match(text):
        return None
    if len(text) == 10:
        try:
            date.fromisoformat(text)
        except ValueError:
            return None
    return text


def month_of(word: str) -> int | None:
    return MONTHS.get(word.lower().rstrip("."))
