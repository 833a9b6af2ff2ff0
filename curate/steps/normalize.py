"""normalize: Unicode NFC, control and zero-width characters, mojibake, blank-line runs and trailing
whitespace; fenced code blocks are left byte for byte. A turn that shows nothing (curate.blank) becomes
"". Never rejects a row by itself: a turn that becomes empty is left for format_rules (or the other
steps) to judge.

Vectorised in Arrow for turns without code fences (all fixes are Arrow kernels, each run only on
the turns a byte scan says it could change); Python only for turns that hold a fence (the fixes apply
between fences) and could change, or look like mojibake.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.blank import blank_mask
from curate.kernels import utf8_buffers
from curate.registry import register
from curate.schema import Part, parts_param, turns_of, with_texts
from curate.steps import _literal
from curate.steps.base import MapStep, Params, StepOutput

# C0/C1 controls except tab and newline (a CR is dropped: "\r\n" becomes "\n").
_CONTROL = "[\\x00-\\x08\\x0b\\x0c\\x0d\\x0e-\\x1f\\x7f-\\x9f]"
# Zero-width and invisible format characters; U+200D (zero-width joiner) is kept: emoji sequences need it.
_INVISIBLE = "[\\x{200b}\\x{200c}\\x{200e}\\x{200f}\\x{2060}-\\x{2064}\\x{feff}\\x{00ad}]"
_TRAILING = "[ \\t]+(\\n|$)"
_BLANK_RUN = "\\n[ \\t]*\\n([ \\t]*\\n)+"
# UTF-8 read as Windows-1252/Latin-1: "â€™", "Ã©", "Ã¼" ...
_MOJIBAKE = re.compile("(?:Ã[\u0080-\u00bf]|â€[\u0080-\u00bf\u2018-\u201e\u2020-\u2122]|Â[\u00a0-\u00bf])")
_FENCE = re.compile(r"(```.*?(?:```|$))", re.S)
# The same fixes in Python's syntax, for the prose between fences (compiled once: a turn uses each)
_PY_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_PY_INVISIBLE = re.compile("[\u200b\u200c\u200e\u200f\u2060-\u2064\ufeff\u00ad]")
_PY_TRAILING = re.compile(r"[ \t]+(\n|$)")
_PY_BLANK_RUN = re.compile(r"\n[ \t]*\n([ \t]*\n)+")


class NormalizeParams(Params):
    nfc: bool = Field(True, description="Unicode NFC (composed characters)")
    control_chars: bool = Field(True, description="remove control characters (keeps tab and newline)")
    invisible_chars: bool = Field(True, description="remove zero-width and other invisible characters (keeps ZWJ)")
    mojibake: bool = Field(True, description='repair UTF-8 that was decoded as Windows-1252 ("â€™" -> "’")')
    blank_lines: bool = Field(True, description="runs of blank lines become one blank line")
    trailing_whitespace: bool = Field(True, description="strip spaces and tabs at line ends")
    parts: list[Part] = parts_param(["system", "user", "assistant", "tool", "reasoning"], "what is normalised")


def fix_mojibake(text: str) -> str:
    """Re-decode runs of mojibake; keep the text when that does not give valid UTF-8 or does not help."""
    try:
        fixed = text.encode("cp1252", errors="strict").decode("utf-8", errors="strict")
    except (UnicodeEncodeError, UnicodeDecodeError):
        # mixed text: fix each suspicious word on its own
        def one(m: re.Match) -> str:
            try:
                return m.group(0).encode("cp1252").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                return m.group(0)

        fixed = re.sub(r"\S*(?:Ã|â€|Â)\S*", one, text)
    return fixed if len(_MOJIBAKE.findall(fixed)) < len(_MOJIBAKE.findall(text)) else text


@register
class Normalize(MapStep):
    """Unicode NFC, control/zero-width characters, mojibake, blank-line runs, trailing spaces; code untouched."""

    name = "normalize"
    Params = NormalizeParams

    def _arrow_fixes(self, texts: pa.Array, counters: Counter) -> pa.Array:
        """The fixes in Arrow, each run only on the turns it could change (`_fix_flags`: most chat
        turns need none, and five passes over every turn were 40% of the step): the same result as
        every pass on every turn."""
        p = self.params
        if not len(texts):
            return texts
        data, offsets = utf8_buffers(texts)
        flags = np.zeros((len(texts), 4), np.bool_)
        _fix_flags(data, offsets, flags)
        control, trailing, blank_run, non_ascii = flags.T
        removed = np.zeros(len(texts), bool)  # a character removed: trailing spaces or a blank run may appear
        for enabled, name, pattern, by, may in (
            (p.control_chars, "control_chars", _CONTROL, "", lambda: control),
            (p.invisible_chars, "invisible_chars", _INVISIBLE, "", lambda: non_ascii),
            (p.trailing_whitespace, "trailing_whitespace", _TRAILING, "\\1", lambda: trailing | removed),
            # removing spaces before newlines never makes or unmakes a blank-line run
            (p.blank_lines, "blank_lines", _BLANK_RUN, "\n\n", lambda: blank_run | removed),
            (p.nfc, "nfc", None, None, lambda: non_ascii),  # ASCII text is NFC
        ):
            if not enabled:
                continue
            counters[f"turns_fixed:{name}"] += 0  # reported even when no turn needed it
            which = may()
            if not which.any():
                continue
            mask = pa.array(which)
            old = texts.filter(mask)
            new = pc.utf8_normalize(old, "NFC") if pattern is None else pc.replace_substring_regex(old, pattern, by)
            differ = pc.fill_null(pc.not_equal(new, old), False).to_numpy(zero_copy_only=False)
            counters[f"turns_fixed:{name}"] += int(differ.sum())
            if differ.any():
                texts = pc.replace_with_mask(texts, mask, new)
                if by == "":
                    removed[np.nonzero(which)[0][differ]] = True
        return texts

    def _python_fixes(self, text: str, counters: Counter) -> str:
        """The same fixes for a turn with code fences: only the prose between fences changes."""
        parts = _FENCE.split(text)
        for k in range(0, len(parts), 2):
            part = parts[k]
            if self.params.control_chars:
                part = _PY_CONTROL.sub("", part)
            if self.params.invisible_chars:
                part = _PY_INVISIBLE.sub("", part)
            if self.params.trailing_whitespace:
                part = _PY_TRAILING.sub(r"\1", part)
            if self.params.blank_lines:
                part = _PY_BLANK_RUN.sub("\n\n", part)
            if self.params.nfc:
                part = unicodedata.normalize("NFC", part)
            parts[k] = part
        new = "".join(parts)
        if new != text:
            counters["turns_fixed:with_code"] += 1
        return new

    def _prose_may_change(self, fenced: pa.Array) -> np.ndarray:
        """For turns with code fences: could a fix change the prose between the fences? Most such
        turns have nothing to fix, and _python_fixes costs Python per turn (~40% of the step). Tested
        on the prose with each fence replaced by a bare ``` (where a prose part ends): a control or
        invisible character, spaces before a newline or a part's end, a run of blank lines, or, in
        non-ASCII text, a part Python would not call NFC (a split at a backtick, which composes with
        nothing, leaves an NFC text's parts NFC). Conservative: a "may" goes through _python_fixes."""
        p = self.params
        prose = pc.replace_substring_regex(fenced, r"(?s)```.*?(?:```|\z)", "```")
        patterns = [
            pattern
            for enabled, pattern in (
                (p.control_chars, _CONTROL),
                (p.invisible_chars, _INVISIBLE),
                (p.trailing_whitespace, r"[ \t]+(?:\n|```|\z)"),
                (p.blank_lines, _BLANK_RUN),
            )
            if enabled
        ]
        may = np.zeros(len(fenced), bool)
        if patterns:
            may |= pc.fill_null(pc.match_substring_regex(prose, "|".join(patterns)), True).to_numpy(
                zero_copy_only=False
            )
        if p.nfc:
            ascii_only = pc.fill_null(pc.string_is_ascii(prose), False).to_numpy(zero_copy_only=False)
            for i in np.nonzero(~ascii_only & ~may)[0]:
                may[i] = not unicodedata.is_normalized("NFC", prose[int(i)].as_py() or "")
        return may

    def process(self, table: pa.Table) -> StepOutput:
        t = turns_of(table, self.params.parts)
        counters: Counter = Counter()
        texts = t.text
        if self.params.mojibake and len(texts):
            # its markers are non-ASCII: only those turns are searched
            non_ascii = ~pc.fill_null(pc.string_is_ascii(texts), True).to_numpy(zero_copy_only=False)
            if non_ascii.any():
                sel = np.nonzero(non_ascii)[0]
                hit = pc.fill_null(pc.match_substring_regex(texts.take(pa.array(sel)), "Ã|â€|Â"), False)
                texts = self._fix_some(
                    texts, sel[hit.to_numpy(zero_copy_only=False)], fix_mojibake, "mojibake", counters
                )
        has_fence = _literal.contains(texts, "```").to_numpy(zero_copy_only=False) if len(texts) else np.zeros(0, bool)
        if has_fence.any():
            plain = pa.array(~has_fence)
            texts = pc.replace_with_mask(texts, plain, self._arrow_fixes(texts.filter(plain), counters))
            may_change = np.zeros(len(texts), bool)
            may_change[has_fence] = self._prose_may_change(texts.filter(pa.array(has_fence)))
            fix = lambda text: self._python_fixes(text, counters)  # noqa: E731
            texts = self._fix_some(texts, np.nonzero(may_change)[0], fix, None, counters)
        else:
            texts = self._arrow_fixes(texts, counters)
        if self.params.invisible_chars and len(texts):
            texts = self._blank_out(texts, counters)
        return StepOutput(with_texts(table, texts, t), counters=counters)

    @staticmethod
    def _fix_some(texts: pa.Array, which: np.ndarray, fix, name: str | None, counters: Counter) -> pa.Array:
        """`fix` (str -> str) applied in Python to the turns at `which`; with a `name`, the turns it
        changed are counted as turns_fixed:<name>."""
        if not len(which):
            return texts
        old = texts.take(pa.array(which, pa.int64())).to_pylist()
        new = [fix(x) if x is not None else None for x in old]
        if name:
            counters[f"turns_fixed:{name}"] += sum(a != b for a, b in zip(old, new))
        mask = np.zeros(len(texts), bool)
        mask[which] = True
        return pc.replace_with_mask(texts, pa.array(mask), pa.array(new, texts.type))

    @staticmethod
    def _blank_out(texts: pa.Array, counters: Counter) -> pa.Array:
        """A turn that shows nothing (curate.blank: ZWJ, bidi marks, Hangul fillers, ... which the
        fixes above keep inside text) becomes "", so every later rule sees it as empty."""
        blank = blank_mask(texts) & (pc.fill_null(pc.utf8_length(texts), 0).to_numpy(zero_copy_only=False) > 0)
        if not blank.any():
            return texts
        counters["turns_fixed:blank"] += int(blank.sum())
        return pc.if_else(pa.array(blank), pa.scalar("", pa.string()), texts)


@numba.njit(cache=True, nogil=True)
def _fix_flags(data, offsets, out):
    """Per text, whether each Arrow fix could change it (a superset; exact for the first three):
    [a _CONTROL character, _TRAILING spaces, a _BLANK_RUN, a non-ASCII byte (the only texts
    _INVISIBLE, NFC and mojibake can change)]."""
    for d in range(offsets.shape[0] - 1):
        a, b = offsets[d], offsets[d + 1]
        newlines = 0  # in the current run of newlines with only spaces and tabs between
        for i in range(a, b):
            c = data[i]
            if c == 10:
                newlines += 1
                if newlines >= 3:
                    out[d, 2] = True
            elif c == 32 or c == 9:
                if i + 1 == b or data[i + 1] == 10:
                    out[d, 1] = True
            else:
                newlines = 0
                if c >= 0x80:
                    out[d, 3] = True
                    if c == 0xC2 and i + 1 < b and 0x80 <= data[i + 1] <= 0x9F:
                        out[d, 0] = True  # U+0080-U+009F
                elif c < 32 or c == 0x7F:
                    out[d, 0] = True
