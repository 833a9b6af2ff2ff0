"""Input files -> shards -> canonical Arrow rows plus quarantined records.

The driver only *plans*: it lists the files and cuts each into shards of about `shard_rows`
records (JSONL by line, JSON arrays by element, Parquet by row). A worker reads one shard.
A shard is the unit of work, of resume and of output files, which is what makes the output
byte-identical whichever runner (and however many workers) ran it.
"""

from __future__ import annotations

import glob
import gzip
import io
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson
import pyarrow.parquet as pq

from curate import jsontext
from curate.errors import UserError
from curate.records import CALL_ROLES, FORMATS, ROLE_MAP, FieldNames, RecordError, detect_format, to_row
from curate.schema import KEY, MESSAGE_TYPE, MESSAGES, QUARANTINE_RAW_LIMIT, QUARANTINE_SCHEMA, ROW_SCHEMA

INPUT_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet", ".ndjson", ".ndjson.gz")
# Keys give each row a total order: shard in the high bits, record in shard, then a sub-index for
# rows a step splits off (split_conversations).
SHARD_SHIFT = 40
INDEX_SHIFT = 8
# input.max_record_mb's default: a JSONL line (or JSON array element) longer than this is quarantined
# without being held in memory, so a decompression bomb or a runaway line costs at most this much.
MAX_RECORD_BYTES = 64 << 20
BOM = b"\xef\xbb\xbf"


def row_key(shard: int, index_in_shard: int) -> int:
    return (shard << SHARD_SHIFT) | (index_in_shard << INDEX_SHIFT)


@dataclass(frozen=True)
class Shard:
    index: int
    path: str  # as the user gave it (resolved by glob), recorded in source_file
    container: str  # jsonl | array | stream | parquet | broken
    format: str  # auto | sharegpt | openai | alpaca
    first_record: int  # index of the shard's first record in its file
    count: int  # records in the shard (for "broken": 1)
    byte_offset: int = 0  # where the shard starts (decompressed bytes)
    first_line: int = 1
    error: str | None = None  # for "broken": why the rest of the file cannot be read
    # Absolute path workers open: on a cluster their working directory is not the user's.
    abs_path: str = ""
    max_record_bytes: int = MAX_RECORD_BYTES

    @property
    def open_path(self) -> str:
        return self.abs_path or self.path


# --------------------------------------------------------------------------- listing files


def _open_binary(path: str):
    try:
        if path.endswith(".gz"):
            return gzip.open(path, "rb")
        return open(path, "rb")
    except IsADirectoryError:
        raise UserError(f"input is a directory where a file was expected: {path}") from None
    except PermissionError:
        raise UserError(f"cannot read input file (permission denied): {path}") from None
    except FileNotFoundError:
        raise UserError(f"input file not found: {path}") from None


def list_input_files(paths: list[str]) -> list[str]:
    """Expand files, directories (recursively, known suffixes) and globs; sorted and de-duplicated."""
    files: list[str] = []
    for p in paths:
        if any(ch in p for ch in "*?["):
            matches = sorted(m for m in glob.glob(p, recursive=True) if os.path.isfile(m))
            if not matches:
                raise UserError(f"input.path: no files match {p!r}")
            files += matches
        elif os.path.isdir(p):
            found = sorted(
                os.path.join(root, f)
                for root, _, names in os.walk(p)
                for f in names
                if f.endswith(INPUT_SUFFIXES) and not f.startswith(".")
            )
            if not found:
                raise UserError(f"input.path: directory {p} has no {'/'.join(INPUT_SUFFIXES)} files")
            files += found
        elif os.path.exists(p):
            if not os.access(p, os.R_OK):
                raise UserError(f"cannot read input file (permission denied): {p}")
            files.append(p)
        else:
            raise UserError(f"input file not found: {p}")
    seen: set[str] = set()
    return [f for f in files if not (f in seen or seen.add(f))]


# --------------------------------------------------------------------------- JSONL lines, bounded


@dataclass
class _Line:
    raw: bytes  # the line (for an over-long one: only its first bytes)
    size: int  # its length in bytes, newline included
    blank: bool  # only whitespace: not a record
    too_long: bool


def _lines(fh, limit: int, skip_long: bool = True) -> Iterator[_Line]:
    """The lines of a binary file, never holding more than `limit` bytes of one: the planner and the
    reader both cut records here, so they always agree on what a record is. With skip_long False,
    an over-long line ends the iteration at once (its size unknown): for a caller that gives up."""
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield _Line(raw, len(raw), not raw.strip(), False)
            continue
        head, size, blank = raw[: QUARANTINE_RAW_LIMIT * 4], len(raw), not raw.strip()
        del raw
        if not skip_long:
            yield _Line(head, size, blank, True)
            return
        while True:  # skip to the end of the line, a bounded chunk at a time
            more = fh.readline(1 << 20)
            size += len(more)
            blank = blank and not more.strip()
            if not more or more.endswith(b"\n"):
                break
        yield _Line(head, size, blank, True)


# --------------------------------------------------------------------------- JSON arrays, streamed

_WS = " \t\r\n"
# Finds where a well-formed value ends without building it (no int-size limit, no repeated-key check).
_SKIP = json.JSONDecoder(parse_int=len, parse_float=len, object_pairs_hook=len)


@dataclass(frozen=True)
class _Invalid:
    """An array element that is well-formed JSON but not a record we accept (the reason)."""

    error: str


class _ArrayScanner:
    """Walk the elements of a JSON array (or a stream of concatenated JSON values) without
    loading the file: yields (value, byte offset, line) per element. A syntax error ends the scan
    with `error` set, at `error_offset`/`error_line`, since nothing after it can be trusted."""

    CHUNK = 1 << 22

    def __init__(self, fh, byte_offset: int, line: int, inside: bool, stream: bool, limit: int = MAX_RECORD_BYTES):
        self.fh = fh
        self.limit = limit
        self.buf = ""
        self.pos = 0
        # Byte offset of buf[mark]: advanced as pos moves, so each char is encoded once (O(n)).
        self.mark = 0
        self.mark_byte = byte_offset
        self.line = line  # line number at buf[pos]
        self.eof = False
        self.inside = inside or stream  # past the opening '['
        self.stream = stream
        self.error: str | None = None
        self.error_offset = 0
        self.error_line = 0
        fh.seek(byte_offset)
        self._dec = io.TextIOWrapper(fh, encoding="utf-8", errors="surrogateescape", newline="")

    def _fill(self) -> bool:
        if self.eof:
            return False
        data = self._dec.read(self.CHUNK)
        if not data:
            self.eof = True
            return False
        # Drop what was consumed, keeping the byte offset right.
        self.mark_byte = self.byte_offset()
        self.buf = self.buf[self.pos :] + data
        self.pos = self.mark = 0
        return True

    def _skip(self, chars: str) -> str | None:
        """Skip characters in `chars`, counting lines; return the next char (None at EOF)."""
        while True:
            while self.pos < len(self.buf) and self.buf[self.pos] in chars:
                if self.buf[self.pos] == "\n":
                    self.line += 1
                self.pos += 1
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._fill():
                return None

    def byte_offset(self) -> int:
        self.mark_byte += len(self.buf[self.mark : self.pos].encode("utf-8", "surrogateescape"))
        self.mark = self.pos
        return self.mark_byte

    def _fail(self, message: str) -> None:
        self.error = message
        self.error_offset = self.byte_offset()
        self.error_line = self.line

    def __iter__(self) -> Iterator[tuple[object, int, int]]:
        if not self.inside:
            if self._skip(_WS + "\ufeff") != "[":
                self._fail("a JSON array must start with '['")
                return
            self.pos += 1
            self.inside = True
        expect_value = True
        while True:
            ch = self._skip(_WS)
            if ch is None:
                if not self.stream:
                    self._fail("unexpected end of file: the JSON array is not closed with ']'")
                return
            if not self.stream and ch == "]":
                return
            if not expect_value:
                if ch != ",":
                    self._fail(f"expected ',' or ']' between array elements, found {ch!r}")
                    return
                self.pos += 1
                expect_value = True
                continue
            start_byte, start_line = self.byte_offset(), self.line
            while True:
                try:
                    value, end = jsontext.raw_decode(self.buf, self.pos)
                    break
                except json.JSONDecodeError as e:
                    # Maybe the element is only cut by the buffer end: read more and retry, up to the
                    # record limit (past it nothing after can be trusted to resynchronise on).
                    if len(self.buf) - self.pos <= self.limit and self._fill():
                        continue
                    if len(self.buf) - self.pos > self.limit:
                        self._fail(
                            f"record longer than the limit (input.max_record_mb = {self.limit >> 20})"
                            " inside a JSON array; the rest of the file is not read"
                        )
                        return
                    line = start_line + self.buf.count("\n", self.pos, e.pos)
                    self._fail(f"invalid JSON: {e.msg.removesuffix(' at')} at line {line}")
                    return
                except ValueError as e:
                    # A key repeated in one object: the element is well-formed, so skip just it.
                    value, end = _Invalid(f"invalid JSON: {e}"), _SKIP.raw_decode(self.buf, self.pos)[1]
                    break
                except RecursionError:
                    self._fail("JSON nested too deeply")
                    return
            if end - self.pos > self.limit:  # delimited, but held only because it fit in a read chunk
                value = _Invalid(f"record longer than the limit (input.max_record_mb = {self.limit >> 20})")
            self.line += self.buf.count("\n", self.pos, end)
            self.pos = end
            yield value, start_byte, start_line
            expect_value = self.stream


def _sniff_json(path: str) -> str:
    """'array', 'jsonl' or 'stream' for a .json(.gz) file, by its first bytes."""
    with _open_binary(path) as fh:
        head = fh.read(1 << 16)
    text = head.decode("utf-8", "replace").lstrip("\ufeff" + _WS)
    if text.startswith("["):
        return "array"
    first_line = text.split("\n", 1)[0]
    try:
        jsontext.loads(first_line)
        return "jsonl"
    except (ValueError, RecursionError):
        return "stream" if text.startswith("{") else "jsonl"


# --------------------------------------------------------------------------- planning


def _scan_file(path: str, fmt: str, shard_rows: int, limit: int) -> list[Shard]:
    """Cut a file that cannot be split by byte ranges (gzip, JSON arrays and streams, Parquet) into
    shards of `shard_rows` records; reads the whole file (Parquet: its footer only)."""
    if path.endswith(".parquet"):
        try:
            total = pq.ParquetFile(path).metadata.num_rows
        except Exception as e:  # noqa: BLE001 - any unreadable Parquet is the user's file problem
            raise UserError(f"cannot read Parquet file {path}: {e}") from None
        starts = range(0, max(total, 1), shard_rows)
        return [Shard(i, path, "parquet", fmt, s, min(shard_rows, total - s)) for i, s in enumerate(starts)]
    container = _container(path)
    if container == "jsonl":
        return _scan_lines(path, fmt, shard_rows, limit)
    shards: list[Shard] = []
    with _open_binary(path) as fh:
        scanner = _ArrayScanner(fh, 0, 1, inside=False, stream=container == "stream", limit=limit)
        n = 0
        for i, (_, offset, line) in enumerate(scanner):
            if n == 0:
                start, first, first_line = offset, i, line
            n += 1
            if n == shard_rows:
                shards.append(Shard(len(shards), path, container, fmt, first, n, start, first_line))
                n = 0
        if n:
            shards.append(Shard(len(shards), path, container, fmt, first, n, start, first_line))
        if scanner.error:
            records_before = sum(s.count for s in shards)
            shards.append(
                Shard(
                    len(shards),
                    path,
                    "broken",
                    fmt,
                    records_before,
                    1,
                    scanner.error_offset,
                    scanner.error_line,
                    scanner.error,
                )
            )
    return shards


def _scan_lines(path: str, fmt: str, shard_rows: int, limit: int) -> list[Shard]:
    """Shards of `shard_rows` records of a JSONL file read from its start (a .gz cannot seek)."""
    shards: list[Shard] = []
    offset = start = n = first = 0
    line = first_line = 1
    with _open_binary(path) as fh:
        for ln in _lines(fh, limit):
            if not ln.blank:
                if n == shard_rows:
                    shards.append(Shard(len(shards), path, "jsonl", fmt, first, n, start, first_line))
                    start, first, first_line, n = offset, first + n, line, 0
                n += 1
            offset += ln.size
            line += 1
    if n:
        shards.append(Shard(len(shards), path, "jsonl", fmt, first, n, start, first_line))
    return shards


def _container(path: str) -> str:
    if path.endswith(".parquet"):
        return "parquet"
    return "jsonl" if path.endswith((".jsonl", ".jsonl.gz", ".ndjson", ".ndjson.gz")) else _sniff_json(path)


@dataclass(frozen=True)
class InputRange:
    """A unit of planning, made by the driver from file sizes alone: a byte range [start, end) of a
    plain JSONL file, or a whole file that only a full read can cut (end == -1)."""

    path: str
    abs_path: str
    format: str
    start: int
    end: int
    shard_rows: int
    max_record_bytes: int = MAX_RECORD_BYTES


# The driver reads this much of each plain JSONL file to size its byte ranges.
HEAD_SAMPLE_BYTES = 1 << 20


def _range_bytes(path: str, shard_rows: int) -> int:
    """Bytes per range for about `shard_rows` records: the mean record size of the file's first MB
    (whole lines only; a first line longer than that counts as one record of the sample's size)."""
    with _open_binary(path) as fh:
        head = fh.read(HEAD_SAMPLE_BYTES)
    complete = head[: head.rfind(b"\n") + 1] or head
    records = sum(1 for line in complete.split(b"\n") if line.strip()) or 1
    return max(1, len(complete) * shard_rows // records)


def plan_ranges(
    files: list[str], fmt: str, shard_rows: int, max_record_bytes: int = MAX_RECORD_BYTES
) -> list[InputRange]:
    """The driver's part of planning: reads each file's size and first MB, never the whole input.
    A plain JSONL file is cut into byte ranges of about `shard_rows` records (the same ranges for
    the same file and shard_rows: that is what keeps --resume and the output deterministic)."""
    out: list[InputRange] = []
    for path in files:
        absolute = os.path.abspath(path)
        try:
            if path.endswith(".gz") or _container(path) != "jsonl":
                out.append(InputRange(path, absolute, fmt, 0, -1, shard_rows, max_record_bytes))
                continue
            size = os.path.getsize(path)
            step = _range_bytes(path, shard_rows)
        except OSError as e:
            raise UserError(f"cannot read {path}: {e}") from None
        out += [
            InputRange(path, absolute, fmt, s, min(s + step, size), shard_rows, max_record_bytes)
            for s in range(0, max(size, 1), step)
        ]
    return out


@dataclass(frozen=True)
class RangeIndex:
    """What a worker found in one InputRange: for a byte range, where its first record starts and
    how many records and lines start in it; for a whole file, its shards."""

    byte_offset: int = 0
    records: int = 0
    lines: int = 0
    shards: tuple[Shard, ...] = ()


def index_range(_, r: InputRange) -> RangeIndex:
    """A worker's part of planning (runs wherever the runner puts it, next to the data). A range
    owns the lines that start in it: it begins at the first line start at or after `start` and its
    last line may run past `end`, as Hadoop's and Spark's text inputs do."""
    try:
        if r.end < 0:
            return RangeIndex(shards=tuple(_scan_file(r.abs_path, r.format, r.shard_rows, r.max_record_bytes)))
        with _open_binary(r.abs_path) as fh:
            pos = r.start
            if pos:
                fh.seek(pos - 1)
                while True:  # to just past the newline that ends the line before, a bounded chunk at a time
                    chunk = fh.readline(1 << 20)
                    pos += len(chunk)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                pos -= 1
            begin, records, lines = pos, 0, 0
            # The reader's own line cutter (bounded by max_record_bytes), so both agree on records.
            cut = _lines(fh, r.max_record_bytes)
            while pos < r.end and (ln := next(cut, None)) is not None:
                lines += 1
                records += not ln.blank
                pos += ln.size
        return RangeIndex(begin, records, lines)
    except (OSError, EOFError, zlib.error) as e:
        # A damaged container (bad gzip stream, I/O error) is not a record we can quarantine.
        raise UserError(f"cannot read {r.path}: {e}") from None


def assemble(ranges: list[InputRange], found: list[RangeIndex]) -> list[Shard]:
    """Number the shards: record and line numbers are running sums over each file's ranges."""
    shards: list[Shard] = []
    records = lines = 0
    for i, (r, f) in enumerate(zip(ranges, found)):
        if i == 0 or ranges[i - 1].path != r.path:
            records, lines, first_of_file = 0, 0, len(shards)
        if r.end < 0:
            shards += [
                replace(s, index=len(shards) + k, abs_path=r.abs_path, max_record_bytes=r.max_record_bytes)
                for k, s in enumerate(f.shards)
            ]
        elif f.records:
            shards.append(
                Shard(
                    len(shards),
                    r.path,
                    "jsonl",
                    r.format,
                    records,
                    f.records,
                    f.byte_offset,
                    lines + 1,
                    abs_path=r.abs_path,
                    max_record_bytes=r.max_record_bytes,
                )
            )
        records += f.records
        lines += f.lines
        last_of_file = i + 1 == len(ranges) or ranges[i + 1].path != r.path
        if last_of_file and len(shards) == first_of_file:  # an empty file still has its (empty) shard
            container = "jsonl" if r.end >= 0 else _container(r.abs_path)
            shards.append(
                Shard(
                    len(shards),
                    r.path,
                    container,
                    r.format,
                    0,
                    0,
                    abs_path=r.abs_path,
                    max_record_bytes=r.max_record_bytes,
                )
            )
    return shards


def plan(paths: list[str], fmt: str, shard_rows: int, max_record_bytes: int = MAX_RECORD_BYTES) -> list[Shard]:
    """Plan in this process (tests, benchmarks): the driver's ranges, each indexed here."""
    ranges = plan_ranges(list_input_files(paths), fmt, shard_rows, max_record_bytes)
    return assemble(ranges, [index_range(None, r) for r in ranges])


# --------------------------------------------------------------------------- reading a shard


def _records(shard: Shard) -> Iterator[tuple[int, int, object | None, str, str | None]]:
    """(record index, line, parsed value or None, raw text, parse error) for each record."""
    if shard.container == "parquet":
        pf = pq.ParquetFile(shard.open_path)
        table = pf.read().slice(shard.first_record, shard.count) if pf.metadata.num_rows else None
        for i, rec in enumerate(table.to_pylist() if table is not None else []):
            yield shard.first_record + i, 0, rec, "", None
        return
    with _open_binary(shard.open_path) as fh:
        if shard.container == "broken":
            fh.seek(shard.byte_offset)
            raw = fh.read(QUARANTINE_RAW_LIMIT * 4).decode("utf-8", "replace")
            yield shard.first_record, shard.first_line, None, raw, shard.error
            return
        if shard.container == "jsonl":
            fh.seek(shard.byte_offset)
            index, line, offset = shard.first_record, shard.first_line, shard.byte_offset
            lines = _lines(fh, shard.max_record_bytes)
            while index < shard.first_record + shard.count:
                ln = next(lines, None)
                if ln is None:
                    break
                if ln.too_long and not ln.blank:
                    yield (
                        index,
                        line,
                        None,
                        ln.raw.decode("utf-8", "replace"),
                        f"record too long: {ln.size:,} bytes at byte offset {offset} "
                        f"(the limit is input.max_record_mb = {shard.max_record_bytes >> 20})",
                    )
                    index += 1
                elif not ln.blank:
                    yield (index, line, *_parse_line(ln.raw, offset))
                    index += 1
                line += 1
                offset += ln.size
            return
        scanner = _ArrayScanner(
            fh,
            shard.byte_offset,
            shard.first_line,
            inside=True,
            stream=shard.container == "stream",
            limit=shard.max_record_bytes,
        )
        for i, (value, _, line) in enumerate(scanner):
            if i == shard.count:
                break
            if isinstance(value, _Invalid):
                yield shard.first_record + i, line, None, "", value.error
            else:
                yield shard.first_record + i, line, value, "", None


def _parse_line(raw: bytes, offset: int) -> tuple[object | None, str, str | None]:
    """(value, text, None) or (None, text, why) for one JSONL line starting at byte `offset`.

    A byte-order mark is dropped at the start of any line, not only the file's first: files joined
    with `cat` carry one in the middle."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        bad = raw[e.start : e.end].hex(" ")
        hint = "; the file looks like UTF-16: convert it to UTF-8" if raw.startswith((b"\xff\xfe", b"\xfe\xff")) else ""
        return (
            None,
            raw.decode("utf-8", "replace"),
            f"invalid UTF-8 at byte offset {offset + e.start} (byte {e.start} of the line: {bad}; {e.reason}){hint}",
        )
    text = text.rstrip("\r\n").lstrip("\ufeff")
    try:
        return jsontext.loads(text), text, None
    except json.JSONDecodeError as e:
        return None, text, f"invalid JSON: {e.msg.removesuffix(' at')} at column {e.colno}"
    except ValueError as e:  # a key repeated in one object
        return None, text, f"invalid JSON: {e}"
    except RecursionError:
        return None, text, "invalid JSON: nested too deeply"


def _has_lone_surrogate(row: dict) -> bool:
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
        return False
    except UnicodeEncodeError:
        return True


def _drop_unencodable(rows: list[dict], sources: list[tuple], bad: list[dict]) -> list[dict]:
    """Arrow refused the batch: find the rows with lone surrogates (from "\\ud800" escapes or
    undecodable bytes) and quarantine them with the input's own text (sources: line, raw text,
    parsed value per row). Only runs when the fast path failed."""
    good = []
    for row, (line, raw, value) in zip(rows, sources):
        if _has_lone_surrogate(row):
            bad.append(
                {
                    "source_file": row["source_file"],
                    "source_index": row["source_index"],
                    "line": line or None,
                    "error": "invalid UTF-8 (a lone surrogate or undecodable bytes in a string)",
                    "raw": _raw_for_quarantine(value, raw),
                }
            )
        else:
            good.append(row)
    return good


def _raw_for_quarantine(value: object | None, raw: str) -> str:
    if not raw and value is not None:
        try:
            raw = jsontext.dumps(value)[: QUARANTINE_RAW_LIMIT * 2]
        except (TypeError, ValueError):
            raw = repr(value)[: QUARANTINE_RAW_LIMIT * 2]
    raw = raw.encode("utf-8", "replace").decode("utf-8")
    return raw if len(raw) <= QUARANTINE_RAW_LIMIT else raw[:QUARANTINE_RAW_LIMIT] + "…[truncated]"


_SHAREGPT_JSONL = pa.schema(
    [("id", pa.string()), ("conversations", pa.list_(pa.struct([("from", pa.string()), ("value", pa.string())])))]
)
# Speaker names the fast path maps by name alone (a function_call turn's text must be parsed).
_PLAIN_ROLES = pa.array([r for r in ROLE_MAP if r not in CALL_ROLES])
# A "\\uD800"-style escape: a lone surrogate is quarantined by the record-by-record path, so let it decide.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_tool_tag(block: bytes) -> bool:
    """Maybe a Hermes <tool_call> tag in the shard (also JSON-escaped, as Go writes '<'): the record path
    parses it. One memory search over the raw bytes (44 ms for 127 MB); text that only mentions
    tool_call costs the slower path, never a wrong row."""
    return b"tool_call" in block


def _not_an_object(line: bytes) -> bool:
    """A line that is not a JSON object: its first byte after spaces, tabs and CRs is neither '{' nor
    whitespace. Arrow's JSON reader with an explicit schema crashes the process (SIGSEGV, pyarrow
    26.0.1) on a shard whose first line is `null`; such a shard goes record by record. (Asked of
    each line as it is read: a multi-line regex over the shard cost 0.28 s per 53 MB.)"""
    c = line.lstrip(b" \t\r")[:1]
    return c != b"" and c not in b"{ \t\n\r\x0b\x0c"


def _read_sharegpt_jsonl_fast(shard: Shard, names: FieldNames) -> pa.Table | None:
    """The canonical rows of a clean ShareGPT JSONL shard, parsed by Arrow in C++; None when the
    shard holds anything the record-by-record path must judge (extra keys such as `tools`,
    non-string ids, unknown roles, function_call turns, Hermes <tool_call> tags, nulls, empty
    conversations, bad lines), which then reads it instead. Both
    paths give identical tables (tests/test_readers.py checks it); this one is ~5x faster."""
    if shard.container != "jsonl" or shard.format not in ("auto", "sharegpt") or names != FieldNames():
        return None
    lines = []
    with _open_binary(shard.open_path) as fh:
        fh.seek(shard.byte_offset)
        for ln in _lines(fh, shard.max_record_bytes, skip_long=False):
            if len(lines) == shard.count:
                break
            if ln.too_long or _not_an_object(ln.raw):
                return None
            if not ln.blank:
                lines.append(ln.raw if ln.raw.endswith(b"\n") else ln.raw + b"\n")
    block = b"".join(lines)
    if len(lines) != shard.count or BOM in block or _SURROGATE_ESCAPE.search(block) or _has_tool_tag(block):
        return None
    try:
        t = pajson.read_json(
            io.BytesIO(block),
            read_options=pajson.ReadOptions(block_size=max(len(block), 1 << 20), use_threads=False),
            parse_options=pajson.ParseOptions(explicit_schema=_SHAREGPT_JSONL, unexpected_field_behavior="error"),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None
    if t.num_rows != shard.count:
        return None
    conv = t.column("conversations").combine_chunks()
    if conv.null_count or (shard.count and pc.min(pc.list_value_length(conv)).as_py() == 0):
        return None
    offsets = conv.offsets.to_numpy()
    turns = conv.values.slice(offsets[0], offsets[-1] - offsets[0])
    raw_role, text = turns.field("from"), turns.field("value")
    if raw_role.null_count or text.null_count:
        return None
    role_index = pc.index_in(pc.utf8_lower(pc.utf8_trim_whitespace(raw_role)), value_set=_PLAIN_ROLES)
    if role_index.null_count:
        return None
    role = pa.array([ROLE_MAP[r] for r in _PLAIN_ROLES.to_pylist()]).take(role_index)
    plain = {"role": role, "content": text, "original_role": raw_role}
    structs = pa.StructArray.from_arrays(
        [plain.get(f.name, pa.nulls(len(text), f.type)) for f in MESSAGE_TYPE], fields=list(MESSAGE_TYPE)
    )
    messages = pa.ListArray.from_arrays(pa.array(offsets - offsets[0], pa.int32()), structs)
    stem = Path(shard.path).name.split(".")[0]
    index = np.arange(shard.first_record, shard.first_record + shard.count)
    ids = t.column("id").combine_chunks()
    missing = pc.fill_null(pc.equal(ids, ""), True)
    if pc.any(missing).as_py():
        ids = pc.if_else(missing, pa.array([f"{stem}:{i}" for i in index]), ids)
    columns = {
        "id": ids,
        MESSAGES: messages,
        "source_file": pa.array([shard.path] * shard.count, pa.string()),
        "source_index": pa.array(index, pa.int64()),
        "extra": pa.nulls(shard.count, pa.string()),
        KEY: pa.array((shard.index << SHARD_SHIFT) | (np.arange(shard.count, dtype=np.int64) << INDEX_SHIFT)),
    }
    for f in ROW_SCHEMA:
        if f.name not in columns:
            columns[f.name] = pa.nulls(shard.count, f.type)
    return pa.table(columns, schema=ROW_SCHEMA)


def read_shard(shard: Shard, names: FieldNames, counters: Counter | None = None) -> tuple[pa.Table, pa.Table]:
    """(canonical rows, quarantined records) of one shard; what the reader had to adapt (ids it
    could not keep as written) is added to `counters`."""
    fast = _read_sharegpt_jsonl_fast(shard, names)
    if fast is not None:
        return fast, QUARANTINE_SCHEMA.empty_table()
    return read_shard_by_record(shard, names, counters)


def read_shard_by_record(shard: Shard, names: FieldNames, counters: Counter | None = None) -> tuple[pa.Table, pa.Table]:
    """(canonical rows, quarantined records) of one shard, record by record in Python."""
    counters = Counter() if counters is None else counters
    rows: list[dict] = []
    sources: list[tuple] = []  # per row: its line, raw text and parsed value, for a late quarantine
    bad: list[dict] = []
    stem = Path(shard.path).name.split(".")[0]
    file_format = shard.format if shard.format != "auto" else None
    pos = 0
    for index, line, value, raw, error in _records(shard):
        if error is None:
            fmt = file_format or detect_format(value, names)
            if fmt is None:
                error = (
                    f"cannot tell the format: no 'conversations', 'messages' or "
                    f"'{names.instruction}'+'{names.output}' key (set input.format; one of {', '.join(FORMATS)})"
                    if isinstance(value, dict)
                    else f"record must be a JSON object (got {type(value).__name__ if value is not None else 'null'})"
                )
            else:
                try:
                    row = to_row(value, fmt, names, f"{stem}:{index}")
                except RecordError as e:
                    error = str(e)
                else:
                    id_rule = row.pop("id_rule")
                    if id_rule is not None:
                        counters[f"id_from_{id_rule}" if id_rule == "float" else f"id_replaced:{id_rule}"] += 1
                    row["source_file"] = shard.path
                    row["source_index"] = index
                    row[KEY] = row_key(shard.index, pos)
                    pos += 1
                    rows.append(row)
                    sources.append((line, raw, value))
                    continue
        bad.append(
            {
                "source_file": shard.path,
                "source_index": index,
                "line": line or None,
                "error": error,
                "raw": _raw_for_quarantine(value, raw),
            }
        )
    try:
        table = rows_to_table(rows)
    except (UnicodeEncodeError, pa.ArrowInvalid):
        table = rows_to_table(_drop_unencodable(rows, sources, bad))
    bad.sort(key=lambda r: r["source_index"])
    return table, pa.Table.from_pylist(bad, schema=QUARANTINE_SCHEMA)


def rows_to_table(rows: list[dict]) -> pa.Table:
    """Canonical rows (dicts with ROW_SCHEMA's public fields; missing ones are null) -> a table."""
    columns = {f.name: pa.array([r.get(f.name) for r in rows], f.type) for f in ROW_SCHEMA}
    return pa.table(columns, schema=ROW_SCHEMA)
