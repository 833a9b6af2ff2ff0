"""What an empty turn is: one made only of characters that show nothing. Every rule that checks
for empty turns uses this definition (normalize blanks such turns, format_rules truncates at them),
so a turn of zero-width spaces is empty everywhere, not only where someone remembered it.

Shows nothing:
  - whitespace (Unicode White_Space: spaces, NBSP, ideographic space, line/paragraph separators)
  - control characters (C0, DEL, C1)
  - Unicode Default_Ignorable_Code_Point: soft hyphen, combining grapheme joiner, Arabic letter
    mark, Hangul fillers, Khmer inherent vowels, Mongolian selectors, zero-width space / non-joiner
    / joiner, LRM/RLM, bidi embeddings, overrides and isolates, word joiner and invisible operators,
    variation selectors, BOM, halfwidth Hangul filler, shorthand format controls, musical symbol
    format controls, tag characters
  - U+2800 Braille pattern blank (not default-ignorable, but drawn as nothing: a favourite
    "invisible character" for filling required fields)
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_RANGES = [
    # whitespace
    (0x20, 0x20),
    (0xA0, 0xA0),
    (0x1680, 0x1680),
    (0x2000, 0x200A),
    (0x2028, 0x2029),
    (0x202F, 0x202F),
    (0x205F, 0x205F),
    (0x3000, 0x3000),
    # controls (tab, newline, CR included)
    (0x00, 0x1F),
    (0x7F, 0x9F),
    # Default_Ignorable_Code_Point (Unicode 15 DerivedCoreProperties.txt)
    (0xAD, 0xAD),
    (0x34F, 0x34F),
    (0x61C, 0x61C),
    (0x115F, 0x1160),
    (0x17B4, 0x17B5),
    (0x180B, 0x180F),
    (0x200B, 0x200F),
    (0x202A, 0x202E),
    (0x2060, 0x206F),
    (0x3164, 0x3164),
    (0xFE00, 0xFE0F),
    (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0),
    (0xFFF0, 0xFFF8),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
    # Braille pattern blank
    (0x2800, 0x2800),
]

# The same class for Python's re and for RE2 (Arrow's regex kernels), which spell code points differently.
_PY_CLASS = "".join(f"\\U{a:08x}" if a == b else f"\\U{a:08x}-\\U{b:08x}" for a, b in _RANGES)
_RE2_CLASS = "".join(f"\\x{{{a:x}}}" if a == b else f"\\x{{{a:x}}}-\\x{{{b:x}}}" for a, b in _RANGES)
_BLANK = re.compile(f"[{_PY_CLASS}]*")
BLANK_RE2 = f"^[{_RE2_CLASS}]*$"


def is_blank(text: str | None) -> bool:
    """True for None, "" and text that shows nothing."""
    return text is None or _BLANK.fullmatch(text) is not None


def blank_mask(texts: pa.Array) -> np.ndarray:
    """is_blank over a string array, in Arrow (nulls are blank)."""
    if not len(texts):
        return np.zeros(0, bool)
    return pc.fill_null(pc.match_substring_regex(texts, BLANK_RE2), True).to_numpy(zero_copy_only=False)
