"""pii: each type, what must be left alone, code blocks, real rows, bad inputs, config errors."""

from __future__ import annotations

import gzip
import json

import pytest

from curate.errors import UserError
from curate.steps.base import StepContext, apply_map_step
from curate.steps.pii import Pii, PiiParams, luhn_valid
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


@pytest.mark.parametrize(("text", "expected"), [
    ("Mail kathy.bates@gmail.com today", "Mail [EMAIL] today"),
    ("call (215) 204-3120 or +1 413-268-1956.", "call [PHONE] or [PHONE]."),
    ("London: +44 20 7946 0958", "London: [PHONE]"),
    ("dns 8.8.8.8, cloudflare 2606:4700:4700::1111", "dns [IP_ADDRESS], cloudflare [IP_ADDRESS]"),
    ("card 4539 1488 0343 6467 exp 12/27", "card [CREDIT_CARD] exp 12/27"),
    ("amex 3714-496353-98431? no: 3782-822463-10005", "amex 3714-496353-98431? no: 3782-822463-10005"),  # test numbers
    ("key AKIA2OGYBAH6STMMNXNN here", "key [SECRET] here"),
    ("token ghp_0123456789abcdefghijABCDEFGHIJ012345", "token [SECRET]"),
    ("OPENAI_API_KEY=sk-proj-abc123DEF456ghi789JKL012mno", "OPENAI_API_KEY=[SECRET]"),
    ("aws_secret_access_key = 'abcdEFGH1234ijklMNOP5678qrstUVWX9012yzab'", "aws_secret_access_key = '[SECRET]'"),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{KEY_BODY}\n-----END RSA PRIVATE KEY-----\nthanks", "[SECRET]\nthanks"),
])
def test_each_type_is_redacted(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "write to your@email.com or yourname@yourdomain.com or bob@example.org",  # templates, RFC 2606
    "C = A@np.linalg.inv(B); see icon@2x.png",  # NumPy matmul, retina asset names
    "LAN 192.168.1.100, loopback 127.0.0.1, docs 203.0.113.7, v1.2.3.4.5, ::1, std::vector, a::b",
    "Dates 2023-10-12, 12:30:45, ISBN 978-3-16-148410-0, order 1234 5678 9012 3456",  # Luhn fails
    "Call 555-555-5555 or (555) 123-4567 (fictional NANP numbers)",
    '"-----BEGIN PRIVATE KEY-----\\nYOUR_PRIVATE_KEY\\n-----END PRIVATE KEY-----"',  # a template, not a key
    "pip: civis (3.10.0.2), numpy==1.2.3.4, firmware v8.8.8.8",  # versions, not hosts
    "Put sk-YOUR_OPENAI_API_KEY_HERE in .env; AKIAIOSFODNN7EXAMPLE is AWS's doc key; sk-xxxxxxxxxxxxxxxxxxxxxxxx",
    "Use [EMAIL] and [PHONE] placeholders",  # already redacted: idempotent
])
def test_not_personal_is_left_alone(text):
    assert redact(text) == text


def test_code_keeps_its_syntax():
    text = ("Run:\n```bash\nping 8.8.8.8\ncurl -u kathy.bates@gmail.com -H 'Bearer sk-proj-abc123DEF456ghi789JKL012mno' x\n```\n"
            "or `export GH=ghp_0123456789abcdefghijABCDEFGHIJ012345`, then mail kathy.bates@gmail.com.")
    assert redact(text) == (
        "Run:\n```bash\nping 192.0.2.1\ncurl -u user@example.com -H 'Bearer REDACTED_OPENAI_KEY' x\n```\n"
        "or `export GH=REDACTED_GITHUB_TOKEN`, then mail [EMAIL].")
    key = f"```\n-----BEGIN OPENSSH PRIVATE KEY-----\n{KEY_BODY}\n-----END OPENSSH PRIVATE KEY-----\n```"
    assert redact(key) == "```\n-----BEGIN OPENSSH PRIVATE KEY-----\nREDACTED\n-----END OPENSSH PRIVATE KEY-----\n```"
    assert redact("```\nping 8.8.8.8\n```", in_code="placeholder") == "```\nping [IP_ADDRESS]\n```"
    assert redact(redact(text)) == redact(text)  # idempotent, code included


def test_options_counts_and_columns():
    s = step(types=["email"], placeholder="<{type}>", roles=["user"])
    out = s.process(rows_table([
        [("user", "a kathy.bates@gmail.com b dspande@davidspade.com, 8.8.8.8"), ("assistant", "x kathy.bates@gmail.com")],
        [("user", "nothing here")],
    ]))
    assert texts(out.table) == [["a <EMAIL> b <EMAIL>, 8.8.8.8", "x kathy.bates@gmail.com"], ["nothing here"]]
    assert out.reason is None
    assert out.table.column("pii_redactions").to_pylist() == [2, 0]
    assert out.table.column("pii_types").to_pylist() == ["email", None]
    assert out.counters["redacted:email"] == 2 and out.counters["rows_redacted"] == 1


def test_luhn():
    assert luhn_valid("4539148803436467") and not luhn_valid("4539148803436468")


def test_real_rows_hh_rlhf():
    """HH-RLHF's harmless test set has people's addresses and phone numbers in its dialogues."""
    rows = [json.loads(x) for x in gzip.open(SHARED_DATA / "instructions" / "hh_rlhf_harmless_base_test.jsonl.gz", "rt")]
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
    assert all(any("192.168.1.100" in t for t in conv) for conv in texts(out.table)[len(with_key):])
    contacts = [c for c in convs if any("(613) 703-0277" in t or "8.8.4.4" in t for _, t in c)]
    redacted = "\n".join(t for conv in texts(step().process(rows_table(contacts)).table) for t in conv)
    assert contacts and "(613) 703-0277" not in redacted and "8.8.4.4" not in redacted


def test_bad_inputs(tmp_path):
    table = rows_table([[("user", "")], [("assistant", "8.8.8.8 " * 125_000)], [("user", "Почта: иван@пример.рф, 电话 +86 10 6552 9988")],
                        [("user", "<div><p>kathy.bates@gmail.com</p></div>")], [("user", "1" * 100_000)]])
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
    (tmp_path / "pii.yaml").write_text("secrets: [unclosed\n")
    with pytest.raises(UserError, match="pii.yaml:2: cannot read the PII rules"):
        Pii(PiiParams(), StepContext(rules_dir=tmp_path)).setup()


def test_end_to_end(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "a", "conversations": [{"from": "human", "value": "I'm at kathy.bates@gmail.com"}, {"from": "gpt", "value": "Noted."}]},
        {"id": "b", "conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": "hello"}]}])
    stats = run(pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", steps="\n  - pii: {}"))
    kept = read_dir(tmp_path / "out" / "kept")
    assert stats["rows_kept"] == 2 and kept.column("pii_redactions").to_pylist() == [1, 0]
    assert texts(kept)[0][0] == "I'm at [EMAIL]"
    assert stats["steps"][0]["step"] == "pii" and stats["steps"][0]["counters"]["redacted:email"] == 1


@pytest.mark.parametrize(("step_yaml", "message"), [
    ("{types: [emails]}", "steps[0].types[0]: must be one of 'email', 'phone', 'ip_address', 'credit_card' or 'secret' (got 'emails')"),
    ("{placeholder: 'XXX'}", "steps[0].placeholder: must contain {type}, e.g. '[{type}]'"),
    ("{types: []}", "steps[0].types: must list at least 1 item (got [])"),
    ("{placeholder: '<{type}:{n}>'}", "steps[0].placeholder: may hold no other {field} than {type}; write {{ and }} for literal braces"),
    ("{roles: [human]}", "steps[0].roles[0]: must be one of 'system', 'user', 'assistant', 'tool' or 'reasoning' (got 'human')"),
])
def test_config_errors(tmp_path, step_yaml, message):
    assert_step_config_error(tmp_path, "pii", step_yaml, message)
