"""Ids unique in the kept set, decided after every shard is written.

A row's id comes from its own record (records._row_id), so two rows can share one: the input
repeats an id, an integer 1 and a string "1" both become "1", two files of the same name in
different folders give the same `<file>:<index>`. The rule for collisions: the first row with an
id (in the kept set's order: input files in order, records in file order) keeps it; each later
one becomes `<id>#<n>`, n = 2, 3, ... the first that is no id in the set yet. The input's id
stays in the row's `extra` as `original_id`.

Only one column crosses to the driver: 8 bytes of hash per kept row (8 MB per million), and the
ids themselves only for rows whose hash is shared. Files are rewritten only where an id changed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.kernels import FNV_OFFSET, FNV_PRIME, fmix64, utf8_buffers
from curate.writers import write_jsonl, write_parquet_atomic


@numba.njit(cache=True, nogil=True)
def _hash_strings(data, offsets, out):
    for r in range(offsets.shape[0] - 1):
        h = FNV_OFFSET  # FNV-1a, finalised
        for i in range(offsets[r], offsets[r + 1]):
            h = (h ^ np.uint64(data[i])) * FNV_PRIME
        out[r] = fmix64(h ^ np.uint64(offsets[r + 1] - offsets[r]))


def id_hashes(ids: pa.Array) -> np.ndarray:
    data, offsets = utf8_buffers(ids)
    out = np.empty(len(offsets) - 1, np.uint64)
    _hash_strings(data, offsets, out)
    return out


def _new_ids(ids: list[str], taken: set[str], hashes: np.ndarray) -> dict[int, str]:
    """{position in `ids`: new id} for every repeat after the first; `hashes` (sorted) are of every
    id in the set, so a new id never lands on an existing one."""
    seen: set[str] = set()
    out: dict[int, str] = {}
    for pos, value in enumerate(ids):
        if value not in seen:
            seen.add(value)
            continue
        n = 2
        while True:
            candidate = f"{value}#{n}"
            h = id_hashes(pa.array([candidate]))[0]
            i = np.searchsorted(hashes, h)
            exists = i < len(hashes) and hashes[i] == h
            if not exists and candidate not in taken:
                break
            n += 1
        taken.add(candidate)
        out[pos] = candidate
    return out


def make_unique(out_dir: Path, output_format: str) -> int:
    """Rename repeated ids in out_dir/kept (and kept_jsonl); return how many rows were renamed."""
    files = sorted((out_dir / "kept").glob("part-*.parquet"))
    per_file = [id_hashes(pq.read_table(f, columns=["id"]).column("id")) for f in files]
    if not per_file:
        return 0
    hashes = np.concatenate(per_file)
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeated):
        return 0
    # The rows whose hash is shared, in kept order, with their exact ids.
    candidates: list[tuple[int, int, str]] = []
    for k, (f, h) in enumerate(zip(files, per_file)):
        rows = np.nonzero(np.isin(h, repeated))[0]
        if len(rows):
            ids = pq.read_table(f, columns=["id"]).column("id").take(pa.array(rows)).to_pylist()
            candidates += [(k, int(r), v) for r, v in zip(rows, ids)]
    renamed = _new_ids([c[2] for c in candidates], set(), ordered)
    by_file: dict[int, dict[int, str]] = {}
    for pos, new in renamed.items():
        k, row, _ = candidates[pos]
        by_file.setdefault(k, {})[row] = new
    for k, changes in by_file.items():
        _rewrite(files[k], changes, out_dir, output_format)
    return len(renamed)


def _rewrite(path: Path, changes: dict[int, str], out_dir: Path, output_format: str) -> None:
    table = pq.read_table(path)
    ids = table.column("id").to_pylist()
    columns = {"id": ids}
    if "extra" in table.column_names:
        extra = table.column("extra").to_pylist()
        for row in changes:
            fields = json.loads(extra[row]) if extra[row] else {}
            fields.setdefault("original_id", ids[row])
            extra[row] = json.dumps(fields, ensure_ascii=False)
        columns["extra"] = extra
    for row, new in changes.items():
        ids[row] = new
    for name, values in columns.items():
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))
    write_parquet_atomic(table, path)
    if output_format != "parquet":
        write_jsonl(table, out_dir / "kept_jsonl" / f"{path.stem}.jsonl", output_format)
