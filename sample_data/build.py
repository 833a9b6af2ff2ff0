"""Build sample_data/ from ../shared/data: deterministic (same inputs -> byte-identical files).

    python sample_data/build.py [--shared ../shared/data] [--out sample_data]

Every planted row (copies, HTML renders, eval prompts, toxic turns, malformed lines) is listed in
planted.yaml with what each step is expected to do with it; tests/test_sample_data.py checks it.
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import random
import re
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 20261124
BUDGET = 1_900_000
_BULLET = re.compile(r"^\s*(\d+\.|[-*])\s+")  # bytes for all files together (the issue allows 2 MB)


def sharegpt_rows(shared: Path) -> list[dict]:
    rows = json.loads((shared / "instructions" / "sharegpt92k_cleaned_sample.json").read_text())
    return [
        {"id": r["id"], "conversations": [{"from": t["from"], "value": t["value"]} for t in r["conversations"]]}
        for r in rows
    ]


def as_chatgpt_html(markdown: str) -> str:
    """A Markdown reply rendered the way 2023 ShareGPT scrapes stored ChatGPT's page: paragraphs,
    lists, and code in the code-block chrome with its "Copy code" button."""
    parts = ['<div class="markdown prose w-full break-words dark:prose-invert light">']
    for block in re.split(r"(```[\w+-]*\n.*?```)", markdown, flags=re.S):
        m = re.match(r"```([\w+-]*)\n(.*?)```", block, flags=re.S)
        if m:
            lang = m[1] or "plaintext"
            parts.append(
                '<pre><div class="bg-black rounded-md mb-4"><div class="flex items-center relative text-gray-200 '
                f'bg-gray-800 px-4 py-2 text-xs font-sans"><span>{lang}</span><button class="flex ml-auto gap-2">'
                'Copy code</button></div><div class="p-4 overflow-y-auto"><code class="!whitespace-pre hljs '
                f'language-{lang}">{html.escape(m[2])}</code></div></div></pre>'
            )
            continue
        for para in block.split("\n\n"):
            lines = [ln for ln in para.split("\n") if ln.strip()]
            if not lines:
                continue
            if all(re.match(r"\s*(\d+\.|[-*])\s", ln) for ln in lines):
                tag = "ol" if re.match(r"\s*\d+\.", lines[0]) else "ul"
                items = "".join("<li>" + html.escape(_BULLET.sub("", ln)) + "</li>" for ln in lines)
                parts.append(f"<{tag}>{items}</{tag}>")
            else:
                parts.append("<p>" + "<br>".join(html.escape(ln) for ln in lines) + "</p>")
    return "".join(parts + ["</div>"])


def stack_exchange_pairs(shared: Path, limit: int) -> list[dict]:
    """Question (user) + accepted answer (assistant), both in the dump's original HTML."""
    posts = {r.get("Id"): r.attrib for r in ET.parse(shared / "html" / "stackexchange_coffee_Posts.xml").getroot()}
    out = []
    for pid, q in sorted(posts.items(), key=lambda kv: int(kv[0])):
        a = posts.get(q.get("AcceptedAnswerId"))
        if q.get("PostTypeId") != "1" or a is None:
            continue
        if "<pre" not in q["Body"] + a["Body"] and "<a " not in q["Body"] + a["Body"] and len(out) % 2:
            continue  # prefer posts with code or links, which exercise the converter
        out.append(
            {
                "id": f"coffee.se-{pid}",
                "conversations": [
                    {"from": "human", "value": f"<h1>{html.escape(q.get('Title', ''))}</h1>{q['Body']}"},
                    {"from": "gpt", "value": a["Body"]},
                ],
            }
        )
        if len(out) == limit:
            break
    return out


def edited(text: str, rng: random.Random, frac: float) -> str:
    words = text.split(" ")
    for i in rng.sample(range(len(words)), max(1, int(len(words) * frac))):
        words[i] = rng.choice(["really", "quite", "simply", "also", "indeed"])
    return " ".join(words)


def build(shared: Path, out: Path) -> None:
    rng = random.Random(SEED)
    base = sharegpt_rows(shared)
    rng.shuffle(base)
    manifest: dict[str, list] = {
        k: []
        for k in (
            "exact_duplicate",
            "whitespace_case_duplicate",
            "near_duplicate",
            "html_render",
            "stack_exchange_html",
            "eval_prompt",
            "toxic",
            "long_conversation",
            "malformed",
        )
    }
    rows: list[dict] = []

    # Real ShareGPT conversations, the bulk; long ones left out so the sample stays small, and the
    # source's own exact duplicates too, so the planted copies are the only ones.
    seen = set()
    for r in base:
        size = len(json.dumps(r, ensure_ascii=False))
        key = "\x1e".join(" ".join(t["value"].lower().split()) for t in r["conversations"])
        if size > 6000 or key in seen:
            continue
        seen.add(key)
        rows.append(r)
        if len(rows) == 330:
            break
    originals = list(rows)

    # Copies with known ground truth.
    for r in originals[:12]:
        rows.append(dict(r, id=f"{r['id']}-copy"))
        manifest["exact_duplicate"].append({"id": f"{r['id']}-copy", "duplicate_of": r["id"]})
    for r in originals[12:18]:
        conv = [
            {"from": t["from"], "value": "  " + t["value"].upper().replace(" ", "  ") + "\n"}
            for t in r["conversations"]
        ]
        rows.append({"id": f"{r['id']}-case", "conversations": conv})
        manifest["whitespace_case_duplicate"].append({"id": f"{r['id']}-case", "duplicate_of": r["id"]})
    for r in originals[18:28]:
        if len(" ".join(t["value"] for t in r["conversations"]).split()) < 120:
            continue
        conv = [{"from": t["from"], "value": edited(t["value"], rng, 0.015)} for t in r["conversations"]]
        rows.append({"id": f"{r['id']}-edit", "conversations": conv})
        manifest["near_duplicate"].append({"id": f"{r['id']}-edit", "duplicate_of": r["id"], "kind": "edited words"})
    for r in originals[28:60]:
        if not any("```" in t["value"] or "\n1. " in t["value"] for t in r["conversations"] if t["from"] == "gpt"):
            continue
        conv = [
            {"from": t["from"], "value": as_chatgpt_html(t["value"]) if t["from"] == "gpt" else t["value"]}
            for t in r["conversations"]
        ]
        rows.append({"id": f"{r['id']}-html", "conversations": conv})
        manifest["html_render"].append({"id": f"{r['id']}-html", "duplicate_of": r["id"]})
        if len(manifest["html_render"]) == 8:
            break

    # Long multi-exchange conversations, which split_conversations (max_tokens 2048) cuts into samples.
    taken = {r["id"] for r in rows}
    long_ones = [
        r
        for r in base
        if r["id"] not in taken
        and len(r["conversations"]) >= 6
        and 12_000 < sum(len(t["value"]) for t in r["conversations"]) < 30_000
    ]
    openings: set[str] = set()
    for r in long_ones:
        opening = r["conversations"][0]["value"][:200]
        if opening in openings:  # the source holds near-copies of some long chats; plant distinct ones
            continue
        openings.add(opening)
        if len(openings) > 3:
            break
        rows.append(r)
        manifest["long_conversation"].append({"id": r["id"], "turns": len(r["conversations"])})

    # Forum HTML (Stack Exchange posts as question/answer pairs).
    for r in stack_exchange_pairs(shared, 20):
        rows.append(r)
        manifest["stack_exchange_html"].append({"id": r["id"]})

    # Eval-set items pasted into user turns (permissive sets) and AlpacaEval prompts with answers.
    gsm = [json.loads(x) for x in (shared / "eval_sets" / "gsm8k" / "test.jsonl").read_text().splitlines()[:200]]
    with open(shared / "eval_sets" / "truthfulqa" / "TruthfulQA.csv", newline="", encoding="utf-8") as f:
        tqa = list(csv.DictReader(f))[:200]
    vic = [json.loads(x) for x in (shared / "eval_sets" / "vicuna_bench" / "question.jsonl").read_text().splitlines()]
    for k, item in enumerate(rng.sample(gsm, 4)):
        rows.append(
            {
                "id": f"eval-gsm8k-{k}",
                "conversations": [
                    {"from": "human", "value": "Can you solve this for me step by step?\n\n" + item["question"]},
                    {"from": "gpt", "value": item["answer"].replace("####", "The answer is")},
                ],
            }
        )
        manifest["eval_prompt"].append({"id": f"eval-gsm8k-{k}", "eval_set": "gsm8k", "question": item["question"]})
    for k, item in enumerate(rng.sample(tqa, 4)):
        rows.append(
            {
                "id": f"eval-truthfulqa-{k}",
                "conversations": [
                    {
                        "from": "human",
                        "value": f"Quick question from a quiz I am writing. {item['Question']} Please keep it short.",
                    },
                    {"from": "gpt", "value": item["Best Answer"]},
                ],
            }
        )
        manifest["eval_prompt"].append(
            {"id": f"eval-truthfulqa-{k}", "eval_set": "truthfulqa", "question": item["Question"]}
        )
    for k, item in enumerate(rng.sample(vic, 3)):
        rows.append(
            {
                "id": f"eval-vicuna-{k}",
                "conversations": [
                    {"from": "human", "value": item["turns"][0]},
                    {"from": "gpt", "value": "Here is my answer: it depends on the details."},
                ],
            }
        )
        manifest["eval_prompt"].append(
            {"id": f"eval-vicuna-{k}", "eval_set": "vicuna_bench", "question": item["turns"][0]}
        )

    # Toxic user turns (Davidson et al., MIT; labelled hate/offensive by annotators), answered without a
    # refusal phrase, so that `toxicity` (not `ai_boilerplate`) is the step that must catch them.
    with open(shared / "toxicity" / "davidson_hate_offensive_labeled.csv", newline="", encoding="utf-8") as f:
        toxic = [r for r in csv.DictReader(f) if r["class"] == "0"][:300]
    for k, t in enumerate(rng.sample(toxic, 5)):
        text = re.sub(r"\s+", " ", html.unescape(t["tweet"])).strip()
        rows.append(
            {
                "id": f"toxic-{k}",
                "conversations": [
                    {"from": "human", "value": text},
                    {"from": "gpt", "value": "Let's keep this respectful."},
                ],
            }
        )
        manifest["toxic"].append(
            {"id": f"toxic-{k}", "source": "davidson_hate_offensive_labeled.csv", "class": "hate_speech"}
        )

    # A deterministic order that mixes the rows; a copy comes right after its original, so the
    # original is the first occurrence that dedup keeps.
    original_of = {e["id"]: e["duplicate_of"] for v in manifest.values() for e in v if "duplicate_of" in e}
    rows.sort(key=lambda r: (hash_key(original_of.get(r["id"], r["id"])), r["id"] in original_of, r["id"]))
    out.mkdir(parents=True, exist_ok=True)
    main = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    while len(main.encode()) > BUDGET - 20_000:  # trim unplanted originals from the end, never planted rows
        planted = {e["id"] for v in manifest.values() for e in v} | {
            e["duplicate_of"] for v in manifest.values() for e in v if "duplicate_of" in e
        }
        victim = next(i for i in range(len(rows) - 1, -1, -1) if rows[i]["id"] not in planted)
        rows.pop(victim)
        main = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    (out / "sharegpt_sample.jsonl").write_text(main, encoding="utf-8")

    # Malformed lines between valid ones: each one is quarantined with its line number.
    capitals = [
        ("France", "Paris"),
        ("Italy", "Rome"),
        ("Spain", "Madrid"),
        ("Japan", "Tokyo"),
        ("Kenya", "Nairobi"),
        ("Peru", "Lima"),
        ("Norway", "Oslo"),
        ("Egypt", "Cairo"),
        ("Canada", "Ottawa"),
        ("Chile", "Santiago"),
        ("Greece", "Athens"),
        ("Poland", "Warsaw"),
    ]
    bad_lines = [
        (b'{"id": "bad-json", "conversations": [', "invalid JSON"),
        (b'["not", "an", "object"]', "record must be a JSON object"),
        (b'{"id": "no-conv", "text": "hello"}', "cannot tell the format"),
        (b'{"id": "conv-string", "conversations": "hello"}', "must be a list"),
        (b'{"id": "empty-conv", "conversations": []}', "empty conversation"),
        (b'{"id": "bad-role", "conversations": [{"from": "narrator", "value": "hi"}]}', "unknown role"),
        (b'{"id": "value-number", "conversations": [{"from": "human", "value": 42}]}', "must be a string"),
        (b'{"id": "missing-value", "conversations": [{"from": "human"}]}', "missing key 'value'"),
        (b'{"id": "bad-utf8", "conversations": [{"from": "human", "value": "caf\xe9"}]}', "invalid UTF-8"),
        (
            b'{"id": "repeated-key", "id": "again", "conversations": [{"from": "human", "value": "hi"}]}',
            "repeated in one object",
        ),
        (b"null", "record must be a JSON object"),
        (b'{"id": "trailing", "conversations": [{"from": "human", "value": "hi"}]} extra', "invalid JSON"),
    ]
    lines: list[bytes] = []
    for k, (raw, expect) in enumerate(bad_lines):
        country, capital = capitals[k]
        lines.append(
            json.dumps(
                {
                    "id": f"ok-{k}",
                    "conversations": [
                        {"from": "human", "value": f"What is the capital of {country}?"},
                        {"from": "gpt", "value": f"The capital of {country} is {capital}."},
                    ],
                }
            ).encode()
        )
        lines.append(raw)
        manifest["malformed"].append({"file": "malformed.jsonl", "line": len(lines), "error_contains": expect})
    (out / "malformed.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    counts = {k: len(v) for k, v in manifest.items()}
    # YAML, not JSON: the reader takes every .json file in the folder as input.
    import yaml

    (out / "planted.yaml").write_text(
        yaml.safe_dump(
            {
                "rows": {"sharegpt_sample.jsonl": len(rows), "malformed.jsonl": len(lines)},
                "counts": counts,
                "planted": manifest,
            },
            sort_keys=False,
            allow_unicode=True,
            width=120,
        )
    )


def hash_key(s: str) -> str:
    import hashlib

    return hashlib.sha256(s.encode()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, default=HERE)
    args = ap.parse_args()
    build(args.shared, args.out)


if __name__ == "__main__":
    main()
