"""Usernames people cannot confuse: invites go by username, so "аlice" (a Cyrillic "а")
must not sit beside "alice".

The rule, applied at sign-up: NFKC-normalise (full-width and ligature forms become plain
letters); refuse invisible and control characters; refuse a name whose letters mix
alphabets that share look-alike letters (Latin, Cyrillic, Greek, ...), while Chinese,
Japanese and Korean characters may stand beside Latin ones ("张wei"); and refuse a name
whose look-alike skeleton equals an existing user's, case-insensitively (an all-Cyrillic
"аре" against "ape").
"""

from __future__ import annotations

import unicodedata

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

# Scripts that combine with others without looking like them.
IDEOGRAPHIC = {"CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO", "IDEOGRAPHIC"}
# The common Cyrillic and Greek letters that look like Latin ones (lower case).
LOOKALIKES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "ԛ": "q", "ԝ": "w", "ӏ": "l", "ү": "y", "һ": "h", "α": "a", "β": "b", "ε": "e",
        "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
        "χ": "x", "ω": "w", "ѵ": "v", "ɡ": "g", "ı": "i",
    }
)  # fmt: skip


def _script(char: str) -> str:
    name = unicodedata.name(char, "")
    first = name.split(" ", 1)[0] if name else "UNKNOWN"
    return "CJK" if first in IDEOGRAPHIC else first


def username_skeleton(name: str) -> str:
    """What a name looks like: case-folded, look-alike letters mapped to Latin."""
    return unicodedata.normalize("NFKC", name).casefold().translate(LOOKALIKES)


def username_clean(raw: str) -> str:
    """The normalised username, or ValidationError saying why it could be confused.

    Raises:
        ValidationError: invisible characters, mixed alphabets, or a look-alike of an
            existing username.
    """
    name = unicodedata.normalize("NFKC", raw or "").strip()
    if any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cn", "Zs", "Zl", "Zp") for c in name):
        raise ValidationError("A username cannot contain spaces or invisible characters.")
    alphabets = {_script(c) for c in name if c.isalpha()} - {"CJK"}
    if len(alphabets) > 1:
        shown = ", ".join(sorted(a.title() for a in alphabets))
        raise ValidationError(
            f"This username mixes alphabets ({shown}), so it could pass for another one; "
            "use letters of one alphabet."
        )
    skeleton = username_skeleton(name)
    for existing in get_user_model().objects.values_list("username", flat=True).iterator():
        if username_skeleton(existing) == skeleton:
            raise ValidationError("A user with this name, or one that looks the same, exists.")
    return name
