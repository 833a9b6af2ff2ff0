"""pii: redact e-mail addresses, phone numbers, IP addresses, credit-card numbers and secrets.

Every redaction is typed: in prose the value becomes a placeholder (`[EMAIL]`, `[PHONE]`,
`[IP_ADDRESS]`, `[CREDIT_CARD]`, `[SECRET]` by default). Inside code (fenced blocks and inline
backticks) a bracketed placeholder would break the program (`ping [IP_ADDRESS]`), so there the
value becomes one of the same shape from the ranges reserved for documentation: user@example.com,
192.0.2.1, 2001:db8::1, 555-0100, 4111 1111 1111 1111, REDACTED_<KIND> for a token, and a private
key block keeps its BEGIN/END lines. Those reserved values, private and loopback addresses, test
card numbers and template addresses ("your@email.com") are not personal and are left alone, which
also makes the step idempotent.

Cost: one RE2 pass over the whole batch (Arrow) picks the few turns that can hold anything; only
those go through Python's `re` with a validating callback (Luhn, IP ranges, digit counts). Python's
`re` tries every alternative of the pattern at every position, so each turn gets the pattern of only
the recognizers whose necessary text it holds (a few RE2 or substring passes over those turns): an
alternative that can match nowhere in a text changes nothing in `sub`, so the result is the same.
Nothing is rejected; the row gets `pii_redactions` (count) and `pii_types`, stats count each type.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections import Counter
from functools import lru_cache
from typing import Literal

import numpy as np
import phonenumbers
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.errors import UserError
from curate.registry import register
from curate.schema import Part, parts_param, turns_of, with_texts
from curate.steps import _literal
from curate.steps.base import MapStep, Params, StepOutput, set_column

PiiType = Literal["email", "phone", "ip_address", "credit_card", "secret"]
ALL_TYPES: tuple[str, ...] = ("email", "phone", "ip_address", "credit_card", "secret")

# A superset of everything below, in RE2 syntax: most turns fail it and never reach Python.
_CANDIDATE = (
    r"@[\p{L}\p{N}]|\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|\d[ .)-]{0,2}\d{3}[ .-]\d{4}|(?:\d[ -]?){12}\d"
    r"|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:[0-9A-Fa-f]{0,4}:|[0-9A-Fa-f]{1,4}::|\+\d"
    r"|\d[ .)(-]{1,2}\d{2,5}[ .)(-]{1,2}\d{2}|\b0\d{9,11}\b|\b1[3-9]\d{9}\b"
    r"|PRIVATE KEY|AKIA|ASIA|ABIA|ACCA|gh[pousr]_|github_pat_|glpat-|sk-|[sprk]k_(?:live|test)_|AIza|xox[abposr]-"
    r"|hooks\.slack\.com|hf_|eyJ|SG\.|SK[0-9a-f]{32}|(?i:secret_?access_?key)"
)

# For each built-in recognizer, in RE2 syntax, text that every one of its matches contains (Python's
# `\d` is any Unicode decimal digit, `\p{Nd}` here): a turn without it skips that alternative.
_NEEDS = {
    "email": r"@",
    "card": r"\p{Nd}{4}[ -]?\p{Nd}{4}",
    "ipv4": r"\p{Nd}\.\p{Nd}{1,3}\.\p{Nd}{1,3}\.\p{Nd}",
    "ipv6": r":[:0-9A-Fa-f\p{Nd}]",
    "phone": r"\p{Nd}{3}[ .-]\p{Nd}{4}|\+[1-9]",
    "national": r"\p{Nd}(?:\)?[ .-]|\) ?)\(?\p{Nd}|\p{Nd}{10}",
}

# Local part and domain labels in any script (IDN), the TLD in letters of any script or as punycode (xn--).
_EMAIL = (
    r"(?<![\w.%+-])(?P<email>[^\W_][\w.%+-]{0,63}@(?:[^\W_](?:[\w-]{0,61}[^\W_])?\.)+"
    r"(?P<tld>[^\W\d_]{2,24}|xn--[A-Za-z0-9-]{1,59}))(?![\w@-]|\.\w)"
)
_V4 = r"(?:\d{1,3}\.){3}\d{1,3}"
# CIDR lengths belong to the address (`81.2.69.0/24` is one value): the placeholder covers them.
_IPV4 = rf"(?<![\w.])(?P<ipv4>{_V4}(?:/\d{{1,2}}(?!\d))?)(?![\w]|\.\d)"
# Every IPv6 form in one run: full, compressed (`2a00::1`, `::1`), with an embedded IPv4 (`::ffff:81.2.69.160`,
# `64:ff9b::192.0.2.1`), a zone (`fe80::1%eth0`) and a prefix length; validated by ipaddress.
_IPV6 = (
    rf"(?<![\w:.])(?P<ipv6>(?:[0-9A-Fa-f]{{1,4}}:|:){{1,7}}(?::|{_V4}|[0-9A-Fa-f]{{1,4}})"
    rf"(?:%[A-Za-z0-9_.-]+)?(?:/\d{{1,3}}(?!\d))?)(?![\w:]|\.\d)"
)
# NANP with separators ("(215) 204-3120", "+1 413-268-1956"), or international "+CC ..." forms.
_PHONE = (
    r"(?<![\w+.-])(?P<phone>(?:\+?1[ .-]?)?(?:\([2-9]\d{2}\)\s?|[2-9]\d{2}[ .-])\d{3}[ .-]\d{4}"
    r"|\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,4}\)?){2,5}\d{0,4})(?![\w]|[.-]\d)"
)
# National numbers without a country code, checked with libphonenumber against rules' regions: digit
# groups (`090-1234-5678`, `0 532 123 45 67`, `(11) 91234-5678`, two groups only with 10 or more digits:
# `98765 43210`), or one run with a trunk 0 (`05321234567`) or a Chinese mobile prefix (`13812345678`).
_NATIONAL = (
    r"(?<![\w+.,:-])(?!\(?\d{1,3}(?:\.\d{1,3}){3}(?![\d.]))(?P<national>\(?\d{1,5}\)?(?:(?:[ .-]|(?<=\)) ?)\(?\d{1,8}\)?){1,5}|0\d{9,11}|1[3-9]\d{9})"
    r"(?![\w:]|[.,-]\d)"
)  # not before ":" (a time: 2023-03-01 00:00) or a decimal
# 13-19 digits in groups of four (the last one or two shorter), or Amex/Diners 4-6-5 / 4-6-4.
_CARD = r"(?<![\w.-])(?P<card>\d{4}(?:[ -]?\d{4}){2}(?:[ -]?\d{1,4}){1,2}|\d{4}[ -]?\d{6}[ -]?\d{4,5})(?![\w]|[.-]\d)"
_YEAR_IN_PARENS = re.compile(r"\((?:19|20)\d\d\)")
_DATE = re.compile(r"\d{4}([./-])\d{1,2}\1\d{1,2}|\d{1,2}([./-])\d{1,2}\2\d{4}")

_CODE_SPANS = re.compile(r"```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]+`", re.S)
_FAKE_MARKERS = re.compile(r"(?i)your|example|xxxx|here|dummy|placeholder|fake|redacted|<|\*\*\*")

# Same-shape values from reserved ranges, used inside code.
_CODE_VALUE = {
    "email": "user@example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "phone": "555-0100",
    "card": "4111 1111 1111 1111",
}
_CODE_VALUE["national"] = _CODE_VALUE["phone"]
_TYPE_OF_GROUP = {
    "email": "email",
    "ipv4": "ip_address",
    "ipv6": "ip_address",
    "phone": "phone",
    "national": "phone",
    "card": "credit_card",
}
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IP_WORDS = re.compile(
    r"(?i)\b(?:ip|ips|ipv4|address|addr|server|host|dns|gateway|router|proxy|ping|connect\w*|from|to|at|via|peer|client)\b"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def parse_issuers(issuers: dict) -> list[tuple[str, int, int, int, frozenset[int]]]:
    """rules' credit_card.issuers ({name: {iin: ["4", "2221-2720"], lengths: [16]}}) as (name, prefix
    length, low, high, lengths) ranges."""
    out = []
    for name, spec in (issuers or {}).items():
        if not isinstance(spec, dict) or not spec.get("iin") or not spec.get("lengths"):
            raise UserError(
                f"rules/pii.yaml: credit_card.issuers.{name}: needs iin (a list of prefixes or ranges) and lengths"
            )
        lengths = frozenset(int(n) for n in spec["lengths"])
        for iin in spec["iin"]:
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", str(iin).strip())
            if m is None or (m.group(2) and len(m.group(2)) != len(m.group(1))):
                raise UserError(
                    f"rules/pii.yaml: credit_card.issuers.{name}: {iin!r} is not a prefix (4) or a range of equal-length prefixes (2221-2720)"
                )
            lo = int(m.group(1))
            out.append((name, len(m.group(1)), lo, int(m.group(2) or lo), lengths))
    return out


def _outer_parens(value: str) -> tuple[str, str, str]:
    """A phone match may take the brackets around it, `(090-1234-5678)` or the `)` after `(+44 20 7946 0958`:
    those stay outside the placeholder. Returns (before, number, after)."""
    lead = tail = ""
    if (
        value.startswith("(")
        and value.endswith(")")
        and value.count("(") == value.count(")")
        and not re.fullmatch(r"\([^()]*\).*\([^()]*\)|\(\d{1,5}\)[^()]+", value)
    ):
        lead, value, tail = "(", value[1:-1], ")"
    while value.endswith(")") and value.count(")") > value.count("("):
        value, tail = value[:-1], ")" + tail
    while value.startswith("(") and value.count("(") > value.count(")"):
        lead, value = lead + "(", value[1:]
    return lead, value, tail


def _looks_fake(value: str) -> bool:
    """Template tokens in docs and tutorials: sk-YOUR_KEY_HERE, AKIAIOSFODNN7EXAMPLE, sk-xxxx..."""
    return bool(_FAKE_MARKERS.search(value)) or len(set(value)) < 8


def _looks_like_version(m: re.Match) -> bool:
    """`pkg==1.2.3.4`, `v1.2.3.4`, pip's `civis (3.10.0.2)`: four numbers that are a version, not a host. In
    parentheses it is a version only with small parts and no word about addresses before it (`my server
    (81.2.69.160) is down` is a host)."""
    before = m.string[m.start() - 1] if m.start() else ""
    after = m.string[m.end()] if m.end() < len(m.string) else ""
    if before in ("=", "<", ">", "~", "v", "V"):
        return True
    if before == "(" and after == ")":
        small = all(int(p) < 100 for p in m.group("ipv4").split("/")[0].split("."))
        return small and not _IP_WORDS.search(m.string, max(0, m.start() - 40), m.start())
    return False


def _key_body(block: str) -> str:
    """The base64 between BEGIN and END: a real key has hundreds of characters, a template few."""
    body = re.sub(r"-----[A-Z0-9 ]+-----|\\n|\s", "", block)
    return body if len(body) >= 64 else "<too short for a key>"


def literal_prefixes(regex: str) -> tuple[str, ...] | None:
    """Strings one of which every match of `regex` begins with (after zero-width assertions such as
    `\\b`), read from the parsed regex; None when it starts with anything else (a class, a repeat,
    a case-insensitive part: see caseless_prefixes): such a secret pattern then runs on every
    candidate turn."""
    try:
        from re import _constants, _parser  # type: ignore[attr-defined]  # the stdlib's own parse tree

        parsed = _parser.parse(regex)
    except (ImportError, re.error, TypeError, RecursionError):
        return None
    if parsed.state.flags & re.IGNORECASE:
        return None
    found, _ = _prefixes(list(parsed), frozenset({""}), _constants)
    return tuple(sorted(found)) if found and "" not in found else None


# What Python's case-insensitive matching lets an ASCII letter match beyond its two cases (the
# stdlib's special folds; RE2's (?i) knows only K and s of them): tests/steps/test_pii.py checks
# this against every code point.
_CASELESS_EXTRA = {"i": "\u0130\u0131", "k": "\u212a", "s": "\u017f"}


def caseless_prefixes(regex: str) -> str | None:
    """For a regex whose first part is case-insensitive (`(?i)...` or `(?i:...)`, as in "aws_secret
    _access_key"), an RE2 regex that every text holding a match matches: its literal ASCII
    prefixes, each letter as a class of every character Python's re.IGNORECASE lets it match.
    None when there is no such prefix (or it is not ASCII)."""
    try:
        from re import _constants as c  # type: ignore[attr-defined]
        from re import _parser  # type: ignore[attr-defined]

        parsed = _parser.parse(regex)
    except (ImportError, re.error, TypeError, RecursionError):
        return None
    items = [item for item in parsed if item[0] not in (c.AT, c.ASSERT, c.ASSERT_NOT)]
    if parsed.state.flags & re.IGNORECASE:
        body = items
    elif items and items[0][0] is c.SUBPATTERN and items[0][1][1] & re.IGNORECASE and not items[0][1][2]:
        body = list(items[0][1][3])
    else:
        return None
    found, _ = _prefixes(body, frozenset({""}), c)
    if not found or "" in found or not all(p.isascii() for p in found):
        return None

    def char(ch: str) -> str:
        if not ch.isalpha():
            return _literal.pattern(ch) if not ch.isalnum() else ch
        return (
            "["
            + ch.lower()
            + ch.upper()
            + "".join(f"\\x{{{ord(x):x}}}" for x in _CASELESS_EXTRA.get(ch.lower(), ""))
            + "]"
        )

    return "|".join("".join(char(ch) for ch in p) for p in sorted(found))


def _prefixes(items: list, start: frozenset[str], c) -> tuple[frozenset[str], bool]:
    """(literal prefixes after `items`, starting from `start`; whether all of `items` was literal);
    `c`: the opcodes of re._constants."""
    current = start
    for op, av in items:
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT):
            continue  # zero-width: the literals around it are still adjacent in the match
        if op is c.LITERAL:
            current = frozenset(p + chr(av) for p in current)
        elif op is c.IN and all(o is c.LITERAL for o, _ in av):
            current = frozenset(p + chr(ch) for p in current for _, ch in av)
        elif op is c.BRANCH:
            done = [_prefixes(list(alt), current, c) for alt in av[1]]
            current = frozenset().union(*(d[0] for d in done))
            if not all(d[1] for d in done):
                return current, False
        elif op is c.SUBPATTERN and not av[1] and not av[2]:  # a group adding no flags
            current, complete = _prefixes(list(av[3]), current, c)
            if not complete:
                return current, False
        else:
            return current, False
        if len(current) > 64:
            return frozenset({""}), False
    return current, True


@lru_cache(maxsize=65536)
def _valid_somewhere(value: str, regions: tuple[str, ...]) -> bool:
    for region in regions:
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(value, region)):
                return True
        except phonenumbers.NumberParseException:
            return False  # the same text fails to parse in every region
    return False


class PiiParams(Params):
    types: list[PiiType] = Field(list(ALL_TYPES), min_length=1, description="what to redact")
    placeholder: str = Field(
        "[{type}]", description="prose placeholder; {type} is EMAIL, PHONE, IP_ADDRESS, CREDIT_CARD or SECRET"
    )
    in_code: Literal["same_shape", "placeholder"] = Field(
        "same_shape",
        description="inside code: a reserved value of the same shape (keeps code valid) or the placeholder",
    )
    parts: list[Part] = parts_param(["system", "user", "assistant", "tool", "reasoning"], "what is redacted")

    @field_validator("placeholder")
    @classmethod
    def _has_type(cls, v: str) -> str:
        if "{type}" not in v:
            raise ValueError("must contain {type}, e.g. '[{type}]'")
        try:
            v.format(type="EMAIL")
        except (KeyError, IndexError, ValueError):
            raise ValueError("may hold no other {field} than {type}; write {{ and }} for literal braces") from None
        return v


class Redactor:
    """Compiled patterns and the rules file's exceptions; `redact(text)` -> (text, Counter)."""

    def __init__(self, rules: dict, params: PiiParams):
        self.params = params
        email = rules.get("email") or {}
        self.placeholder_domains = {d.lower() for d in email.get("placeholder_domains", [])}
        self.placeholder_locals = tuple(p.lower() for p in email.get("placeholder_local_prefixes", []))
        self.tlds = {t.lower() for t in email.get("generic_tlds", [])}
        phone = rules.get("phone") or {}
        self.phone_digits = (int(phone.get("min_digits", 10)), int(phone.get("max_digits", 15)))
        self.regions = [str(r).upper() for r in phone.get("regions") or []]
        unknown = sorted(set(self.regions) - phonenumbers.SUPPORTED_REGIONS)
        if unknown:
            raise UserError(
                f"rules/pii.yaml: phone.regions: {', '.join(unknown)} not a region libphonenumber knows (ISO 3166 alpha-2, e.g. JP)"
            )
        card = rules.get("credit_card") or {}
        self.test_cards = set(card.get("test_numbers") or [])
        self.issuers = parse_issuers(card.get("issuers"))
        types = set(params.types)
        parts: list[str] = []
        # per part: what a text must hold for it to match (an RE2 regex, literal prefixes, or None: always)
        self.needs: list[str | tuple[str, ...] | None] = []
        if "secret" in types:
            for kind, regex in (rules.get("secrets") or {}).items():
                if not str(kind).isidentifier():
                    raise UserError(
                        f"rules/pii.yaml: secrets.{kind}: a name must be letters, digits and _ (it names a regex group)"
                    )
                try:
                    re.compile(regex)
                except (re.error, TypeError) as e:
                    raise UserError(f"rules/pii.yaml: secrets.{kind}: not a valid regex ({e})") from None
                # Named groups must be unique across the alternation: rename `value` per kind.
                parts.append(f"(?P<secret_{kind}>{regex.replace('(?P<value>', f'(?P<value_{kind}>')})")
                self.needs.append(literal_prefixes(regex) or caseless_prefixes(regex))
        builtin = [
            ("email", _EMAIL, "email" in types),
            ("card", _CARD, "credit_card" in types),
            ("ipv4", _IPV4, "ip_address" in types),
            ("ipv6", _IPV6, "ip_address" in types),
            ("phone", _PHONE, "phone" in types),
            ("national", _NATIONAL, "phone" in types and bool(self.regions)),
        ]
        for name, regex, wanted in builtin:
            if wanted:
                parts.append(regex)
                self.needs.append(_NEEDS[name])
        self.parts = parts
        self.pattern = re.compile("|".join(parts))
        self._patterns: dict[tuple[int, ...], re.Pattern] = {tuple(range(len(parts))): self.pattern}

    def pattern_of(self, which: tuple[int, ...]) -> re.Pattern:
        """The pattern of only these parts (indices into self.parts, in order), compiled once."""
        if which not in self._patterns:
            self._patterns[which] = re.compile("|".join(self.parts[i] for i in which))
        return self._patterns[which]

    def possible(self, texts: pa.Array) -> np.ndarray:
        """(texts x parts) bool: whether each text holds what each part needs to match."""
        out = np.ones((len(texts), len(self.parts)), bool)
        for j, need in enumerate(self.needs):
            if isinstance(need, str):
                out[:, j] = pc.match_substring_regex(texts, need).to_numpy(zero_copy_only=False)
            elif need is not None:
                hit = np.zeros(len(texts), bool)
                for literal in need:
                    hit |= _literal.contains(texts, literal).to_numpy(zero_copy_only=False)
                out[:, j] = hit
        return out

    def _keep_email(self, value: str, tld: str) -> bool:
        local, _, domain = value.lower().rpartition("@")
        tld = tld.lower()
        if len(tld) != 2 and tld not in self.tlds and tld.isascii() and not tld.startswith("xn--"):
            return True  # `x@np.linalg.inv`, `icon@2x.png`
        if domain in self.placeholder_domains or domain.endswith(
            (".example", ".test", ".invalid", ".localhost", ".local")
        ):
            return True
        return domain.split(".")[-2:-1] == ["example"] or local.startswith(self.placeholder_locals)

    def _keep_phone(self, value: str) -> bool:
        digits = re.sub(r"\D", "", value)
        lo, hi = self.phone_digits
        if not lo <= len(digits) <= hi:
            return True
        national = digits[1:] if len(digits) == 11 and digits[0] == "1" else digits
        # NANP 555 exchanges and area code 555 are fictional or unassigned (films, examples).
        return len(national) == 10 and (national[3:6] == "555" or national[:3] == "555")

    def _keep_national(self, value: str) -> bool:
        """Kept unless libphonenumber finds it a valid number of one of the rules' regions."""
        digits = re.sub(r"\D", "", value)
        groups = len(re.findall(r"\d+", value))
        seps = set(re.findall(r"[ .-]", value))
        if ("." in seps and len(seps) > 1) or _YEAR_IN_PARENS.search(value):
            return True  # decimals beside other numbers (2.25 0 103.9), a citation's (2014)
        if not (8 if groups > 2 else 10) <= len(digits) <= 12 or len(set(digits)) <= 2 or _DATE.search(value):
            return True
        return not _valid_somewhere(value, tuple(self.regions))

    def _is_card(self, digits: str) -> bool:
        if digits in self.test_cards or len(set(digits)) == 1 or not luhn_valid(digits):
            return False
        n = len(digits)
        return any(n in lengths and lo <= int(digits[:k]) <= hi for _, k, lo, hi, lengths in self.issuers)

    def _card_span(self, value: str) -> int:
        """How much of the matched digit groups is a card: all of it, the longest group-boundary prefix that
        is one (a card followed by a year), or 0."""
        if len(set(re.sub(r"\d", "", value))) > 1:
            return 0  # mixed separators: not how a card is written
        cuts = [m.start() for m in re.finditer(r"[ -]", value)][::-1]
        for end in [len(value), *cuts]:
            digits = re.sub(r"\D", "", value[:end])
            if 13 <= len(digits) <= 19 and self._is_card(digits):
                return end
        return 0

    @staticmethod
    def _keep_ip(value: str) -> bool:
        address = value.split("/")[0].split("%")[0]
        if (
            ":" in address
            and "." not in address
            and sum(1 for g in address.split(":") if g) < 3
            and not re.match(r"[23][0-9A-Fa-f]{3}:", address)
        ):
            return True  # `a::b` (C++/Rust paths) is valid IPv6 but nobody's; 2xxx:/3xxx: (global unicast) is
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return True  # 999.1.2.3, 12:30:45 (a time)
        if ip.version == 6 and (ip.ipv4_mapped or ip in _NAT64):
            ip = ip.ipv4_mapped or ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)  # judged by the IPv4 inside
        return not ip.is_global

    def redact(self, text: str, pattern: re.Pattern | None = None) -> tuple[str, Counter]:
        """`pattern`: self.pattern_of(parts that can match in `text`); the same result as the full one."""
        counts: Counter = Counter()
        code = [(m.start(), m.end()) for m in _CODE_SPANS.finditer(text)] if "`" in text or "~~~" in text else []
        starts = [s for s, _ in code]
        fmt = self.params.placeholder

        def in_code(pos: int) -> bool:
            i = bisect.bisect_right(starts, pos) - 1
            return i >= 0 and pos < code[i][1]

        def replace(m: re.Match) -> str:
            group = m.lastgroup or ""
            value = m.group(group)
            if group.startswith("secret_"):
                kind = group[len("secret_") :]
                inner = m.groupdict().get(f"value_{kind}")
                secret = inner if inner is not None else value
                if _looks_fake(_key_body(secret) if kind == "private_key" else secret):
                    return value
                counts["secret"] += 1
                counts[f"secret:{kind}"] += 1
                if self.params.in_code == "same_shape" and in_code(m.start()):
                    new = (
                        re.sub(r"(?s)(-----BEGIN [^-]+-----).*(-----END [^-]+-----)", r"\1\nREDACTED\n\2", secret)
                        if kind == "private_key"
                        else f"REDACTED_{kind.upper()}"
                    )
                else:
                    new = fmt.format(type="SECRET")
                if inner is None:
                    return new
                s, e = m.span(f"value_{kind}")
                return value[: s - m.start()] + new + value[e - m.start() :]
            kind = _TYPE_OF_GROUP[group]
            lead, rest = "", ""
            if group in ("phone", "national"):
                lead, value, rest = _outer_parens(value)
            if group == "card":
                end = self._card_span(value)
                value, rest = value[:end], value[end:]
                if not end:
                    return rest
            if (
                (group == "email" and self._keep_email(value, m.group("tld")))
                or (group == "phone" and self._keep_phone(value))
                or (group == "national" and self._keep_national(value))
                or (group in ("ipv4", "ipv6") and self._keep_ip(value))
                or (group == "ipv4" and _looks_like_version(m))
            ):
                return lead + value + rest
            counts[kind] += 1
            if self.params.in_code == "same_shape" and in_code(m.start()):
                return lead + _CODE_VALUE[group] + rest
            return lead + fmt.format(type=kind.upper()) + rest

        return (pattern or self.pattern).sub(replace, text), counts


@register
class Pii(MapStep):
    """Redact e-mails, phones, IPs, credit cards (Luhn) and secrets with typed placeholders."""

    name = "pii"
    Params = PiiParams
    columns = {"pii_redactions": pa.int32(), "pii_types": pa.string()}

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self._redactor: Redactor | None = None

    def setup(self) -> None:
        if self._redactor is not None:
            return
        path = self.ctx.rules_dir / "pii.yaml"
        rules = self.ctx.rules_yaml("pii.yaml", "the PII rules")
        if not isinstance(rules, dict) or not all(
            isinstance(rules.get(k) or {}, dict) for k in ("email", "phone", "credit_card", "secrets")
        ):
            raise UserError(
                f"{path}: email, phone, credit_card and secrets must each be a mapping (see the shipped rules/pii.yaml)"
            )
        self._redactor = Redactor(rules, self.params)

    def process(self, table: pa.Table) -> StepOutput:
        self.setup()
        assert self._redactor is not None
        t = turns_of(table, self.params.parts)
        texts = pc.fill_null(t.text, "")
        candidate = pc.match_substring_regex(texts, _CANDIDATE).to_numpy(zero_copy_only=False)
        candidate &= np.isin(t.role, self.params.parts)
        per_row = np.zeros(table.num_rows, np.int32)
        types: list[set[str]] = [set() for _ in range(table.num_rows)]
        counters: Counter = Counter()
        changed_idx, changed_text = [], []
        picked = np.nonzero(candidate)[0]
        possible = self._redactor.possible(texts.take(pa.array(picked, pa.int64())))
        for i, can in zip(picked, possible):
            which = tuple(np.nonzero(can)[0].tolist())
            if not which:
                continue
            new, counts = self._redactor.redact(texts[int(i)].as_py(), self._redactor.pattern_of(which))
            if not counts:
                continue
            changed_idx.append(int(i))
            changed_text.append(new)
            r = int(t.row[i])
            kinds = {k for k in counts if ":" not in k}
            per_row[r] += sum(counts[k] for k in kinds)
            types[r] |= kinds
            counters.update({f"redacted:{k}": v for k, v in counts.items()})
        out = table
        if changed_idx:
            mask = np.zeros(len(texts), bool)
            mask[changed_idx] = True
            new_texts = pc.replace_with_mask(t.text, pa.array(mask), pa.array(changed_text, pa.string()))
            out = with_texts(table, new_texts, t)
            counters["rows_redacted"] = int((per_row > 0).sum())
        out = set_column(out, "pii_redactions", pa.array(per_row, pa.int32()))
        out = set_column(out, "pii_types", pa.array([",".join(sorted(s)) or None for s in types], pa.string()))
        return StepOutput(out, counters=counters)
