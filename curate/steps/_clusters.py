"""Duplicate edges -> clusters -> which row each cluster keeps: shared by minhash_dedup and
semantic_dedup, whose resolve phases both emit verified edges (edges_schema)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.errors import UserError


def edges_schema() -> pa.Schema:
    return pa.schema(
        [
            ("src", pa.int64()),
            ("dst", pa.int64()),
            ("src_id", pa.string()),
            ("dst_id", pa.string()),
            ("src_rank", pa.float64()),
            ("dst_rank", pa.float64()),
            ("sim", pa.float32()),
        ]
    )


def edges_table(summaries: pa.Table, keys: np.ndarray, src: np.ndarray, dst: np.ndarray, sim: np.ndarray) -> pa.Table:
    """Verified edges between rows src[i] and dst[i] of a partition's summaries (their `id` and
    `_rank` columns), with the rows' keys and the pair's similarity."""
    ids, rank = summaries.column("id"), summaries.column("_rank").to_numpy()
    return pa.table(
        {
            "src": pa.array(keys[src], pa.int64()),
            "dst": pa.array(keys[dst], pa.int64()),
            "src_id": ids.take(pa.array(src)),
            "dst_id": ids.take(pa.array(dst)),
            "src_rank": pa.array(rank[src], pa.float64()),
            "dst_rank": pa.array(rank[dst], pa.float64()),
            "sim": pa.array(sim, pa.float32()),
        },
        schema=edges_schema(),
    )


@dataclass
class Clusters:
    """Per node (a row in at least one edge): its key, id, the node its cluster keeps, its best
    edge's similarity; `removed` are the nodes that are not kept, in key order."""

    key: np.ndarray
    id: np.ndarray
    kept: np.ndarray
    best: np.ndarray
    removed: np.ndarray


def keep_rank(live: pa.Table, text: pa.Array, keep: str, score_column: str | None, step: str) -> pa.Array:
    """Per row, what the keep policy maximises (ties go to the first row in input order)."""
    if keep == "first":
        return pa.array(np.zeros(live.num_rows), pa.float64())
    if keep == "longest":
        return pc.cast(pc.utf8_length(text), pa.float64())
    if score_column not in live.column_names:
        raise UserError(
            f"{step}: keep: score needs column '{score_column}', which no earlier step adds "
            f"(columns: {', '.join(c for c in live.column_names if not c.startswith('_'))})"
        )
    return pc.fill_null(pc.cast(live.column(score_column), pa.float64()), -np.inf)


def clusters(partials: list[pa.Table]) -> Clusters | None:
    """Connected components of the edges; per component, the highest rank, then the lowest key
    (first in input order), is kept."""
    edges = [t for t in partials if t.num_rows and "src" in t.column_names]
    if not edges:
        return None
    e = pa.concat_tables(edges)
    src, dst = e.column("src").to_numpy(), e.column("dst").to_numpy()
    nodes, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    ids = np.concatenate(
        [e.column("src_id").to_numpy(zero_copy_only=False), e.column("dst_id").to_numpy(zero_copy_only=False)]
    )
    rank = np.concatenate([e.column("src_rank").to_numpy(), e.column("dst_rank").to_numpy()])
    node_id = np.empty(len(nodes), object)
    node_id[inverse] = ids
    node_rank = np.empty(len(nodes))
    node_rank[inverse] = rank
    m = len(src)
    comp = _components(len(nodes), inverse[:m], inverse[m:])
    order = np.lexsort((nodes, -node_rank, comp))
    first = np.concatenate([[True], comp[order][1:] != comp[order][:-1]])
    kept_of_comp = np.empty(comp.max() + 1, np.int64)
    kept_of_comp[comp[order][first]] = order[first]
    kept = kept_of_comp[comp]
    removed = np.nonzero(kept != np.arange(len(nodes)))[0]
    # the similarity shown for a row: its best verified edge
    sims = e.column("sim").to_numpy()
    best = np.zeros(len(nodes), np.float32)
    np.maximum.at(best, inverse[:m], sims)
    np.maximum.at(best, inverse[m:], sims)
    return Clusters(nodes, node_id, kept, best, removed[np.argsort(nodes[removed])])


def _components(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Connected-component label (0..k-1) of each of n nodes, given edges a-b."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(a), np.int8), (a, b)), shape=(n, n))
    return connected_components(graph, directed=False)[1]
