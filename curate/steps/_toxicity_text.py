"""Text preparation shared by the offline toxicity model's training and its use: the same function
on both sides, so the model sees at run time what it saw in training."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

MAX_CHARS = 2000


def prepare(texts: pa.Array) -> pa.Array:
    """Lowercase; URLs, @mentions, HTML entities and retweet marks out; one line (fastText predicts
    one line); capped length (the head of a long turn decides)."""
    t = pc.utf8_lower(pc.utf8_slice_codeunits(texts, 0, MAX_CHARS))
    t = pc.replace_substring_regex(t, r"https?://\S+|www\.\S+", " ")
    t = pc.replace_substring_regex(t, r"@\w+|&#?\w+;|\brt\b", " ")
    t = pc.replace_substring_regex(t, r"([.!?,;:()\"'*])", " \\1 ")
    return pc.utf8_trim_whitespace(pc.replace_substring_regex(t, r"\s+", " "))
