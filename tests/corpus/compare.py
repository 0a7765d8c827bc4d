"""Tolerant comparison of REST results; the same rules as tests/differential.rs.

* scored lists (query, search): same ids in the same order, except that runs of equal scores
  (within 1e-6 relative) may be permuted; with `ties_at_start` / `ties_at_end` the first / last
  run may also hold different ids (the limit or offset cut through a tie). Scores within 1e-5
  relative or 1e-6 absolute.
* everything else: structural equality, numbers within 1e-5 relative (1e-6 absolute), object
  key order ignored.
Returns None when equal, else a short description of the first difference.
"""

from __future__ import annotations

from typing import Any


def num_close(a: float, b: float, rel: float = 1e-5, abs_: float = 1e-6) -> bool:
    if a == b:
        return True
    return abs(a - b) <= max(abs_, rel * max(abs(a), abs(b)))


def value_diff(e: Any, g: Any, path: str = "$") -> str | None:
    if isinstance(e, bool) or isinstance(g, bool):
        return None if (type(e) is type(g) and e == g) else f"{path}: {e!r} != {g!r}"
    if isinstance(e, (int, float)) and isinstance(g, (int, float)):
        if isinstance(e, int) and isinstance(g, int):
            return None if e == g else f"{path}: {e} != {g}"
        return None if num_close(float(e), float(g)) else f"{path}: {e} != {g}"
    if isinstance(e, dict) and isinstance(g, dict):
        if set(e) != set(g):
            return f"{path}: keys {sorted(e)} != {sorted(g)}"
        for k in e:
            d = value_diff(e[k], g[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(e, list) and isinstance(g, list):
        if len(e) != len(g):
            return f"{path}: length {len(e)} != {len(g)}"
        for i, (a, b) in enumerate(zip(e, g)):
            d = value_diff(a, b, f"{path}[{i}]")
            if d:
                return d
        return None
    return None if e == g else f"{path}: {e!r} != {g!r}"


def _runs(scores: list) -> list:
    """[start, end) index ranges of equal scores (1e-6 relative)."""
    runs, i = [], 0
    while i < len(scores):
        j = i + 1
        while j < len(scores) and num_close(scores[i], scores[j], rel=1e-6, abs_=1e-9):
            j += 1
        runs.append((i, j))
        i = j
    return runs


def scored_diff(e: list, g: list, ties_start: bool = False, ties_end: bool = False,
                path: str = "$") -> str | None:
    if len(e) != len(g):
        return f"{path}: {len(e)} points expected, got {len(g)}"
    runs = _runs([p["score"] for p in e])
    for ri, (a, b) in enumerate(runs):
        lenient = (ri == 0 and ties_start) or (ri == len(runs) - 1 and ties_end)
        by_id = {_key(p["id"]): p for p in g[a:b]}
        for k in range(a, b):
            if not num_close(e[k]["score"], g[k]["score"]):
                return f"{path}[{k}].score: {e[k]['score']} != {g[k]['score']}"
        for k in range(a, b):
            ep = e[k]
            gp = by_id.get(_key(ep["id"]))
            if gp is None:
                if lenient:
                    continue
                return f"{path}[{k}]: id {ep['id']} missing from the tie run {a}..{b}"
            d = value_diff({x: y for x, y in ep.items() if x != "score"},
                           {x: y for x, y in gp.items() if x != "score"}, f"{path}[{k}]")
            if d:
                return d
    return None


def _key(i: Any) -> str:
    return f"{type(i).__name__}:{i}"


def result_diff(command: str, expected: Any, got: Any, case: dict | None = None) -> str | None:
    case = case or {}
    ts, te = bool(case.get("ties_at_start")), bool(case.get("ties_at_end"))
    if command == "query":
        if not isinstance(got, dict) or set(got) != {"points"}:
            return f"query result shape {type(got).__name__}"
        return scored_diff(expected["points"], got["points"], ts, te, "$.points")
    if command == "search":
        if not isinstance(got, list):
            return f"search result shape {type(got).__name__}"
        return scored_diff(expected, got, ts, te)
    return value_diff(expected, got)
