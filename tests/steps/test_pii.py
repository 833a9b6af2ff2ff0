"""pii: each type, what must be left alone, code blocks, real rows, bad inputs, config errors."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from curate.errors import UserError
from curate.steps.base import StepContext, apply_map_step
from curate.steps.pii import Pii, PiiParams, caseless_prefixes, literal_prefixes, luhn_valid
from tests.helpers import (
    REPO,
    SHARED_DATA,
    assert_step_config_error,
    pipeline_yaml,
    read_dir,
    rows_table,
    run,
    texts,
    write_jsonl,
)

KEY_BODY = "MIIEowIBAAKCAQEA7bq9Zx1YpL0Q3m5fRk8uT2wVnC4sHd6JgXe1aPoI9rNyKzU3\nvW0tB5cQ8lMhS2jF7dGi4eRxA6oYkN1pZ3uTbL9mCwV5sJ0nHq2rXy8aDf4gEi7"


def step(**kw) -> Pii:
    return Pii(PiiParams(**kw), StepContext(rules_dir=REPO / "curate" / "rules"))


def redact(text: str, role: str = "user", **kw) -> str:
    return texts(step(**kw).process(rows_table([[(role, text)]])).table)[0][0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mail kathy.bates@gmail.com today", "Mail [EMAIL] today"),
        ("call (215) 204-3120 or +1 413-268-1956.", "call [PHONE] or [PHONE]."),
        ("London: +44 20 7946 0958", "London: [PHONE]"),
        ("dns 8.8.8.8, cloudflare 2606:4700:4700::1111", "dns [IP_ADDRESS], cloudflare [IP_ADDRESS]"),
        ("card 4539 1488 0343 6467 exp 12/27", "card [CREDIT_CARD] exp 12/27"),
        (
            "amex 3714-496353-98431? no: 3782-822463-10005",
            "amex 3714-496353-98431? no: 3782-822463-10005",
        ),  # test numbers
        ("key AKIA2OGYBAH6STMMNXNN here", "key [SECRET] here"),
        ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", "token [SECRET]"),
        ("OPENAI_API_KEY=sk-proj-abc123DEF456ghi789JKL012mno", "OPENAI_API_KEY=[SECRET]"),
        ("aws_secret_access_key = 'abcdEFGH1234ijklMNOP5678qrstUVWX9012yzab'", "aws_secret_access_key = '[SECRET]'"),
        (f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----\nthanks", "[SECRET]\nthanks"),
        # issue 19: IPv6 with an embedded IPv4, CIDR, parentheses, short forms
        ("net 64:ff9b::81.2.69.160 and ::ffff:81.2.69.160", "net [IP_ADDRESS] and [IP_ADDRESS]"),
        ("block 81.2.69.0/24. route 2a00:1450::/32", "block [IP_ADDRESS]. route [IP_ADDRESS]"),
        ("my server (81.2.69.160) is down; ping 2a00::1", "my server ([IP_ADDRESS]) is down; ping [IP_ADDRESS]"),
        (
            "JP 090-1234-5678, CN 13812345678, TR 05321234567 / 0 532 123 45 67",
            "JP [PHONE], CN [PHONE], TR [PHONE] / [PHONE]",
        ),
        ("call (090-1234-5678) or (+44 20 7946 0958)", "call ([PHONE]) or ([PHONE])"),
        ("a@xn--d1acufc.xn--p1ai и иван@пример.рф", "[EMAIL] и [EMAIL]"),
        (
            "UnionPay 6212 3456 7890 1234 569, Maestro 6759649826438453, Mir 2200 1234 5678 9019",
            "UnionPay [CREDIT_CARD], Maestro [CREDIT_CARD], Mir [CREDIT_CARD]",
        ),
        ("card 4539 1488 0343 6467 2027", "card [CREDIT_CARD] 2027"),  # a card, then a year
    ],
)
def test_each_type_is_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "write to your@email.com or yourname@yourdomain.com or bob@example.org",  # templates, RFC 2606
        "C = A@np.linalg.inv(B); see icon@2x.png",  # NumPy matmul, retina asset names
        "LAN 192.168.1.100, loopback 127.0.0.1, docs 203.0.113.7, v1.2.3.4.5, ::1, std::vector, a::b",
        "Dates 2023-10-12, 12:30:45, ISBN 978-3-16-148410-0, order 1234 5678 9012 3456",  # Luhn fails
        "Call 555-555-5555 or (555) 123-4567 (fictional NANP numbers)",
        '"-----BEGIN PRIVATE KEY-----\\nYOUR_PRIVATE_KEY\\n-----END PRIVATE KEY-----"',  # a template, not a key
        "pip: civis (3.10.0.2), numpy==1.2.3.4, firmware v8.8.8.8",  # versions, not hosts
        "Put sk-YOUR_OPENAI_API_KEY_HERE in .env; AKIAIOSFODNN7EXAMPLE is AWS's doc key; sk-xxxxxxxxxxxxxxxxxxxxxxxx",
        "Use [EMAIL] and [PHONE] placeholders",  # already redacted: idempotent
        "64:ff9b::192.0.2.1, ::ffff:10.0.0.1, 2001:db8::/32, 10.0.0.0/8",  # documentation and private, in every form
        "AAPL 2023-03-01 00:00:00-05:00 146.83; Plan 61288 (2014) 254 CLR 185; HKD 100-1,000 (USD 12.82-128.20)",
        "path d='M2.25 0 103.935 2.186 2.25 2.25 0 00-3.935-2.186' and std::vector, Foo::bar()",
    ],
)
def test_not_personal_is_left_alone(text):
    assert redact(text) == text


def test_code_keeps_its_syntax():
    text = (
        "Run:\n```bash\nping 8.8.8.8\ncurl -u kathy.bates@gmail.com -H 'Bearer sk-proj-abc123DEF456ghi789JKL012mno' x\n```\n"
        "or `export GH=ghp_0123456789abcdefghijABCDEFGHIJ012345`, then mail kathy.bates@gmail.com."
    )
    assert redact(text) == (
        "Run:\n```bash\nping 192.0.2.1\ncurl -u user@example.com -H 'Bearer REDACTED_OPENAI_KEY' x\n```\n"
        "or `export GH=REDACTED_GITHUB_TOKEN`, then mail [EMAIL]."
    )
    key = f"```\n-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n```"
    assert redact(key) == "```\n-----BEGIN OPENSSH PRIVATE KEY-----\nREDACTED\n-----END OPENSSH PRIVATE KEY-----\n```"
    assert redact("```\nping 8.8.8.8\n```", in_code="placeholder") == "```\nping [IP_ADDRESS]\n```"
    assert redact(redact(text)) == redact(text)  # idempotent, code included


def test_options_counts_and_columns():
    s = step(types=["email"], placeholder="<{type}>", roles=["user"])
    out = s.process(
        rows_table(
            [
                [
                    ("user", "a kathy.bates@gmail.com b dspande@davidspade.com, 8.8.8.8"),
                    ("assistant", "x kathy.bates@gmail.com"),
                ],
                [("user", "nothing here")],
            ]
        )
    )
    assert texts(out.table) == [["a <EMAIL> b <EMAIL>, 8.8.8.8", "x kathy.bates@gmail.com"], ["nothing here"]]
    assert out.reason is None
    assert out.table.column("pii_redactions").to_pylist() == [2, 0]
    assert out.table.column("pii_types").to_pylist() == ["email", None]
    assert out.counters["redacted:email"] == 2 and out.counters["rows_redacted"] == 1


def test_luhn():
    assert luhn_valid("4539148803436467") and not luhn_valid("4539148803436468")


def test_real_rows_hh_rlhf():
    """HH-RLHF's harmless test set has people's addresses and phone numbers in its dialogues."""
    rows = [
        json.loads(x) for x in gzip.open(SHARED_DATA / "instructions" / "hh_rlhf_harmless_base_test.jsonl.gz", "rt")
    ]
    hits = [r["chosen"] for r in rows if "kathy.bates@gmail.com" in r["chosen"] or "(215) 204-3120" in r["chosen"]]
    assert hits
    out = step().process(rows_table([[("user", h)] for h in hits]))
    for text in texts(out.table):
        assert "kathy.bates@gmail.com" not in text[0] and "(215) 204-3120" not in text[0]
        assert "[EMAIL]" in text[0] or "[PHONE]" in text[0]


def test_real_rows_sharegpt_template_keys_and_lan_addresses():
    """The ShareGPT sample's key blocks are templates (YOUR_PRIVATE_KEY), its 192.168 addresses private:
    both stay; its public DNS addresses and contact details go."""
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    convs = [[("user" if m["from"] == "human" else "assistant", m["value"]) for m in r["conversations"]] for r in rows]
    with_key = [c for c in convs if any("BEGIN PRIVATE KEY" in t for _, t in c)]
    with_lan = [c for c in convs if any("192.168.1.100" in t for _, t in c)]
    assert with_key and with_lan
    out = step().process(rows_table(with_key + with_lan))
    assert texts(out.table)[: len(with_key)] == [[t for _, t in c] for c in with_key]
    assert all(any("192.168.1.100" in t for t in conv) for conv in texts(out.table)[len(with_key) :])
    contacts = [c for c in convs if any("(613) 703-0277" in t or "8.8.4.4" in t for _, t in c)]
    redacted = "\n".join(t for conv in texts(step().process(rows_table(contacts)).table) for t in conv)
    assert contacts and "(613) 703-0277" not in redacted and "8.8.4.4" not in redacted


def test_each_turn_runs_only_the_recognizers_it_can_match_with_the_same_result():
    """The per-turn pattern (only the parts whose needed text the turn holds) redacts exactly as the
    full pattern, on every sample in every context, on mixes of them, and on the real ShareGPT rows."""
    s = step()
    s.setup()
    r = s._redactor
    cases = []
    for samples in SAMPLES.values():
        for sample in samples:
            value = "".join(sample) if isinstance(sample, tuple) else sample
            cases += [pre + value + post for pre, post in CONTEXTS]
    cases += [" and ".join(cases[i : i + 7]) for i in range(0, len(cases), 7)]
    rows = json.loads((SHARED_DATA / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    cases += [m["value"] for row in rows for m in row["conversations"]]
    possible = r.possible(pa.array(cases))
    narrowed = 0
    for text, can in zip(cases, possible):
        which = tuple(int(j) for j in np.nonzero(can)[0])
        full = r.redact(text)
        assert (r.redact(text, r.pattern_of(which)) if which else (text, Counter())) == full, text
        narrowed += len(which) < len(r.parts)
    assert narrowed > 0.9 * len(cases)
    # a real value of every recognizer keeps its own part
    for group, samples in SAMPLES.items():
        value = "".join(samples[0]) if isinstance(samples[0], tuple) else samples[0]
        part = next(j for j, p in enumerate(r.parts) if f"(?P<{group}>" in p)
        assert r.possible(pa.array([f"x {value} y"]))[0, part], group


def test_literal_prefixes_of_secret_patterns():
    assert literal_prefixes(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b") == ("AKIA", "ASIA")
    assert literal_prefixes(r"\bxox[ab]-[0-9]{10,}") == ("xoxa-", "xoxb-")
    assert literal_prefixes(r"\bsk-(?:proj-)?[A-Za-z0-9]{20,}") == ("sk-",)
    # nothing literal to find first: the pattern runs on every candidate turn
    assert literal_prefixes(r"(?i:aws_?secret)\s*=") is None
    assert literal_prefixes(r"(?i)token_[a-z]{8}") is None
    assert literal_prefixes(r"[A-Za-z]{3}_[0-9]{8}") is None
    assert literal_prefixes(r"(abc|[0-9]+)x") is None
    # ... unless it is case-insensitive: then an RE2 regex of its caseless prefixes
    assert caseless_prefixes(r"(?i:aws_?secret)\s*=") == r"[aA][wW][sS\x{17f}]"
    assert caseless_prefixes(r"(?i)\btoken_[a-z]{8}") == r"[tT][oO][kK\x{212a}][eE][nN]\x{5f}"
    assert caseless_prefixes(r"(?i:ab|c1)x") == r"[aA][bB]|[cC]1"
    for regex in (r"(?i:é)x", r"(?i:[a-z]+)", r"abc(?i:d)", r"[A-Za-z]{3}", r"(?i:a|b*)"):
        assert caseless_prefixes(regex) is None, regex


def test_caseless_prefixes_let_through_every_character_pythons_ignorecase_matches():
    """Python's re.IGNORECASE matches a few characters beyond an ASCII letter's two cases (İ ı for i,
    K for k, ſ for s); each letter's class in the RE2 need holds all of them: checked on every code point."""
    every = "".join(chr(i) for i in range(0x110000) if not 0xD800 <= i < 0xE000)
    for letter in "abcdefghijklmnopqrstuvwxyz":
        python = sorted(set(re.findall(f"(?i){letter}", every)))
        need = caseless_prefixes(f"(?i:{letter})")
        assert pc.match_substring_regex(pa.array(python), f"^(?:{need})$").to_pylist() == [True] * len(python), letter


def test_bad_inputs(tmp_path):
    table = rows_table(
        [
            [("user", "")],
            [("assistant", "8.8.8.8 " * 125_000)],
            [("user", "Почта: иван@пример.рф, 电话 +86 10 6552 9988")],
            [("user", "<div><p>kathy.bates@gmail.com</p></div>")],
            [("user", "1" * 100_000)],
        ]
    )
    out, stats = apply_map_step(step(), table)
    t = texts(out)
    assert t[0] == [""] and t[1][0].count("[IP_ADDRESS]") == 125_000
    assert "[PHONE]" in t[2][0] and t[3][0] == "<div><p>[EMAIL]</p></div>" and t[4][0] == "1" * 100_000
    assert stats.rows_kept == 5
    (tmp_path / "pii.yaml").write_text("secrets: {broken: '(unclosed'}\n")
    with pytest.raises(UserError, match=r"rules/pii.yaml: secrets.broken: not a valid regex"):
        Pii(PiiParams(), StepContext(rules_dir=tmp_path)).setup()
    (tmp_path / "pii.yaml").write_text("secrets: {my-key: 'x'}\n")
    with pytest.raises(UserError, match=r"secrets.my-key: a name must be letters, digits and _"):
        Pii(PiiParams(), StepContext(rules_dir=tmp_path)).setup()
    (tmp_path / "pii.yaml").write_text("secrets: [a, b]\n")
    with pytest.raises(UserError, match="secrets must each be a mapping"):
        Pii(PiiParams(), StepContext(rules_dir=tmp_path)).setup()
    (tmp_path / "pii.yaml").write_text("phone: {regions: [JP, XX]}\n")
    with pytest.raises(UserError, match=r"phone.regions: XX not a region libphonenumber knows"):
        Pii(PiiParams(), StepContext(rules_dir=tmp_path)).setup()
    (tmp_path / "pii.yaml").write_text("credit_card: {issuers: {visa: {iin: ['4-55'], lengths: [16]}}}\n")
    with pytest.raises(UserError, match=r"credit_card.issuers.visa: '4-55' is not a prefix"):
        Pii(PiiParams(), StepContext(rules_dir=tmp_path)).setup()
    (tmp_path / "pii.yaml").write_text("secrets: [unclosed\n")
    with pytest.raises(UserError, match="pii.yaml:2: cannot read the PII rules"):
        Pii(PiiParams(), StepContext(rules_dir=tmp_path)).setup()


def test_end_to_end(tmp_path):
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {
                "id": "a",
                "conversations": [
                    {"from": "human", "value": "I'm at kathy.bates@gmail.com"},
                    {"from": "gpt", "value": "Noted."},
                ],
            },
            {"id": "b", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
        ],
    )
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - pii: {}"))
    kept = read_dir(tmp_path / "out" / "kept")
    assert stats["rows_kept"] == 2 and kept.column("pii_redactions").to_pylist() == [1, 0]
    assert texts(kept)[0][0] == "I'm at [EMAIL]"
    assert stats["steps"][0]["step"] == "pii" and stats["steps"][0]["counters"]["redacted:email"] == 1


@pytest.mark.parametrize(
    ("step_yaml", "message"),
    [
        (
            "{types: [emails]}",
            "steps[0].types[0]: must be one of 'email', 'phone', 'ip_address', 'credit_card' or 'secret' (got 'emails')",
        ),
        ("{placeholder: 'XXX'}", "steps[0].placeholder: must contain {type}, e.g. '[{type}]'"),
        ("{types: []}", "steps[0].types: must list at least 1 item (got [])"),
        (
            "{placeholder: '<{type}:{n}>'}",
            "steps[0].placeholder: may hold no other {field} than {type}; write {{ and }} for literal braces",
        ),
        (
            "{roles: [human]}",
            "steps[0].roles[0]: must be one of 'system', 'user', 'assistant', 'tool' or 'reasoning' (got 'human')",
        ),
    ],
)
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "pii", step_yaml, message)


# One or more real-shaped values per recognizer (regex group of the Redactor's pattern). For a labelled
# secret only the part after the label is the value.
SAMPLES = {
    "email": [
        "kathy.bates@gmail.com",
        "a@xn--d1acufc.xn--p1ai",
        "иван@пример.рф",
        "j.doe+news@mail.example-corp.co.uk",
    ],
    "phone": ["(215) 204-3120", "+1 413-268-1956", "+44 20 7946 0958", "+55 11 98456 5666", "+905321234567"],
    "national": ["090-1234-5678", "13812345678", "05321234567", "0 532 123 45 67", "98765 43210", "8 (912) 345-67-89"],
    "ipv4": ["81.2.69.160", "8.8.8.8", "81.2.69.0/24"],
    "ipv6": [
        "2606:4700:4700::1111",
        "::ffff:81.2.69.160",
        "64:ff9b::81.2.69.160",
        "2a00::1",
        "2a00:1450::/32",
        "2a00:1450:4001:82b::200e",
        "0:0:0:0:0:FFFF:129.144.52.38",
    ],
    "card": [
        "4539 1488 0343 6467",
        "4539148803436467",
        "6212 3456 7890 1234 569",
        "6759649826438453",
        "3782-822463-10006",
        "2200 1234 5678 9019",
        "5019717010103742",
    ],
    "secret_private_key": [f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----"],
    "secret_aws_access_key_id": ["AKIA2OGYBAH6STMMNXNN"],
    "secret_aws_secret_access_key": [
        ("aws_secret_access_key = ", "abcdEFGH1234ijklMNOP5678qrstUVWX9012yzab"),
        ("AWS_Secret_AccessKey: ", "abcdEFGH1234ijklMNOP5678qrstUVWX9012yzab"),
    ],
    "secret_github_token": ["ghp_0123456789abcdefghijABCDEFGHIJ012345"],
    "secret_gitlab_token": ["glpat-Ab3dE5fG7hJ9kL1mN3pQ"],
    "secret_anthropic_key": ["sk-ant-api03-Xy7Qp2Lm9Rt4Vw8Zb1Nc6Df3"],
    "secret_openai_key": ["sk-proj-abc123DEF456ghi789JKL012mno"],
    "secret_stripe_key": ["sk_live_51H8xYzAbCdEfGhIjKlMnOp"],
    "secret_google_api_key": ["AIzaSyD4f8Kq2Lm9Rt4Vw8Zb1Nc6Df3Gh5Jk7Lx"],
    "secret_slack_token": ["xoxb-1234567890-abcdefABCDEF"],
    "secret_slack_webhook": ["https://hooks.slack.com/services/T00AB1CD2/B00EF3GH4/abcDEF123ghiJKL456"],
    "secret_huggingface_token": ["hf_AbCdEfGhIjKlMnOpQrStUvWxYz012345"],
    "secret_jwt": ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"],
    "secret_sendgrid_key": ["SG.aBcDeFgHiJkLmNoPqRsTuV.aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdefg"],
    "secret_twilio_key": ["SK0123456789abcdef0123456789abcdef"],
}
CONTEXTS = [
    ("", ""),
    ("x ", " y"),
    ("(", ")"),
    ("[", "]"),
    ("<", ">"),
    ('"', '"'),
    ("'", "'"),
    ("at ", "."),
    ("to: ", ","),
    ("\n", "\n"),
    ("mail ", "!"),
    ("a ", ";"),
    ("see ", "?"),
    ("{", "}"),
    ("= ", ")."),
    ("`", "`"),
]


def test_every_recognizer_has_samples():
    s = step()
    s.setup()
    groups = {g for g in s._redactor.pattern.groupindex if not g.startswith("value_") and g != "tld"}
    assert groups == set(SAMPLES)


@pytest.mark.parametrize("group", sorted(SAMPLES))
def test_no_placeholder_ever_leaves_part_of_a_value_visible(group):
    """Whatever the neighbours, a value is replaced whole or left whole: never `[IP_ADDRESS].0.2.1`."""
    s = step()
    s.setup()
    replaced = 0
    for sample in SAMPLES[group]:
        label, value = sample if isinstance(sample, tuple) else ("", sample)
        for pre, post in CONTEXTS:
            text = pre + label + value + post
            out = s._redactor.redact(text)[0]
            if out == text:
                continue
            assert out.startswith(pre + label) and out.endswith(post), (text, out)
            middle = out[len(pre + label) : len(out) - len(post)]
            assert re.fullmatch(
                r"\[[A-Z_]+\]|REDACTED_[A-Z_]+|user@example\.com|192\.0\.2\.1|2001:db8::1|555-0100"
                r"|4111 1111 1111 1111|-----BEGIN [A-Z ]+-----\nREDACTED\n-----END [A-Z ]+-----",
                middle,
            ), (text, out)
            replaced += 1
    assert replaced >= len(SAMPLES[group]) * (len(CONTEXTS) - 4), (
        replaced
    )  # the samples are recognised in most contexts


def test_presidio_corpus_has_no_partial_and_no_false_positive():
    """benchmarks/pii: Presidio's recognizer cases and public variants; the table is printed by run.py."""
    from benchmarks.pii.corpus import CASES
    from benchmarks.pii.run import classify, redactor

    outcomes = [(c[0], c[1], c[2], r[2]) for c, r in zip(CASES, classify(redactor()))]
    assert [o for o in outcomes if o[3] in ("partial", "false positive")] == []
    found = sum(o[3] == "found" for o in outcomes)
    assert found >= 0.95 * sum(o[1] == "redact" for o in outcomes)
