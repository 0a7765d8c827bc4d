#!/usr/bin/env python3
"""Differential corpus generator: shards written by qdrant-edge-py 0.9.0 and the answers it
gives, as REST request/response pairs, for tests/differential.rs.

    .venv/bin/python tests/corpus/generate.py [--out DIR] [--shared DIR]

Output (DIR defaults to $QEW_CORPUS, else <crate root>/target/corpus):
  shards/<name>/      shard directories built by qdrant-edge-py (recipes in shards.py)
  fixtures/<c>/       EdgeShard.unpack_snapshot(<shared>/fixtures/<c>/full2.snapshot)
  fixtures-full/<c>/  EdgeShard.unpack_snapshot(<shared>/fixtures/<c>/full.snapshot)
                      (<shared> = $QEW_SHARED, else <crate root>/../shared)
  manifests.json      {"<shard>": snapshot_manifest() of qdrant-edge-py after load + flush}
  cases.json          [{"name", "shard", "command", "body", "expected", ...}]

Case fields:
  shard      "shards/<name>", "fixtures/<c>" or "fixtures-full/<c>", relative to DIR
  command    query | search | scroll | count | facet | retrieve | info
  body       the REST request body (POST /collections/c/points/query, /points/search,
             /points/scroll, /points/count, /facet, /points; {} for info)
  expected   the REST `result` (see rest.py for the exact shapes; info: rest.info_json)
  ties_at_start / ties_at_end (optional, query/search) the offset / limit cut through a run
             of equal scores, so the first / last run may hold other ids of the same score
  approximate (optional) a server HNSW answer (params.exact not true): not exact-comparable
  edge_expected (optional, "server:" cases) what qdrant-edge-py answers when it disagrees with
             the server beyond tolerance

Answers are recorded from a fresh EdgeShard.load of a throw-away copy of each finished shard,
so loading (which may replay the WAL and flush) never alters the shard we ship.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import qdrant_edge as qe  # noqa: E402

import compare  # noqa: E402
import rest  # noqa: E402
import shards  # noqa: E402
from requests_gen import Ctx, battery  # noqa: E402
from shards import Vec  # noqa: E402

CRATE = HERE.parent.parent

FIXTURE_VECTORS = {
    "basic": [Vec("v", "dense", 32, "Cosine")],
    "multi": [Vec("dense", "dense", 16, "Euclid"), Vec("bytes", "dense", 8, "Dot", "Uint8"),
              Vec("half", "dense", 12, "Manhattan", "Float16"), Vec("mv", "multi", 4, "Cosine"),
              Vec("sp", "sparse", idf=True)],
}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sparse_copy(src: Path, dst: Path) -> None:
    # cp keeps the holes of Qdrant's preallocated files (hundreds of MB apparent, KB on disk)
    subprocess.run(["cp", "-a", "--sparse=always", str(src), str(dst)], check=True)


# ---------------------------------------------------------------------------------------------
# building


def build_shard(spec: shards.Spec, path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    plan = shards.make_plan(spec)
    if spec.wal_crash:
        # the writer dies at "crash" (os._exit) before any flush/close
        r = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--wal-writer", spec.name,
                            str(path)], capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"WAL writer for {spec.name} failed ({r.returncode}):\n{r.stderr}")
        return
    shard = shards.execute(str(path), plan)
    shard.close()


def wal_writer(name: str, path: str) -> None:
    spec = shards.SPEC_BY_NAME[name]
    shards.execute(path, shards.make_plan(spec))
    raise SystemExit("the plan of a WAL shard must end in a crash")


def verify_wal_shard(spec: shards.Spec, path: Path, tmp: Path) -> dict:
    """Reloading replays the WAL; without the WAL the segments show the flushed state only."""
    plan = shards.make_plan(spec)
    want = plan.expected_live
    a = tmp / "wal_check_a"
    sparse_copy(path, a)
    s = qe.EdgeShard.load(str(a))
    n = s.count(qe.CountRequest(exact=True))
    probe = [shards.py_id(i) for i in plan.after_crash_ids[:10]]
    found = len(s.retrieve(probe, False, False))
    s.close()
    if n != len(want) or found != len(probe):
        raise SystemExit(f"{spec.name}: replay gave count {n} (want {len(want)}), "
                         f"{found}/{len(probe)} post-flush points")
    b = tmp / "wal_check_b"
    sparse_copy(path, b)
    for entry in (b / "wal").iterdir():
        if entry.is_file():
            entry.unlink()
    try:
        s = qe.EdgeShard.load(str(b))
        n_no_wal = s.count(qe.CountRequest(exact=True))
        found_no_wal = len(s.retrieve(probe, False, False))
        s.close()
    except Exception as e:  # noqa: BLE001
        n_no_wal, found_no_wal = f"load failed: {e}", None
    if n_no_wal == n and found_no_wal == found:
        raise SystemExit(f"{spec.name}: the segments already hold every operation; no WAL replay tested")
    shutil.rmtree(a)
    shutil.rmtree(b)
    return {"count_replayed": n, "count_without_wal": n_no_wal,
            "post_flush_points_without_wal": found_no_wal}


# ---------------------------------------------------------------------------------------------
# answering


def scroll_all(shard) -> list:
    out = rest.run(shard, "scroll", {"limit": 1_000_000, "with_payload": True})
    if out["next_page_offset"] is not None:
        raise SystemExit("scroll_all did not finish in one page")
    return out["points"]


def ties(shard, command: str, body: dict, result) -> dict:
    """Does the offset or the limit cut through a run of equal scores?"""
    pts = result["points"] if command == "query" else result
    if not pts or "order_by" in json.dumps(body.get("query")):
        return {}
    off = int(body.get("offset", 0))
    ext = copy.deepcopy(body)
    ext["offset"] = 0
    ext["limit"] = off + len(pts) + 1
    full = rest.run(shard, command, ext)
    full = full["points"] if command == "query" else full
    sc = [p["score"] for p in full]
    out = {}
    if off > 0 and len(sc) > off and compare.num_close(sc[off - 1], sc[off], 1e-6, 1e-9):
        out["ties_at_start"] = True
    end = off + len(pts)
    if len(sc) > end and compare.num_close(sc[end - 1], sc[end], 1e-6, 1e-9):
        out["ties_at_end"] = True
    return out


def resolve_threshold(shard, body: dict) -> dict | None:
    """score_threshold "@k": halfway between the k-th and (k+1)-th score of the same query."""
    k = int(body["score_threshold"][1:])
    probe = copy.deepcopy(body)
    probe.pop("score_threshold")
    probe["offset"] = 0
    probe["limit"] = k + 1
    pts = rest.run(shard, "query", probe)["points"]
    if len(pts) < k + 1:
        return None
    body = copy.deepcopy(body)
    a, b = pts[k - 1]["score"], pts[k]["score"]
    if compare.num_close(a, b, 1e-4, 1e-6):
        return None
    body["score_threshold"] = round((a + b) / 2, 6)
    return body


def answer_all(shard, shard_rel: str, ctx: Ctx, stats: dict) -> list:
    cases = []

    def add(name, command, body):
        try:
            expected = rest.run(shard, command, body)
        except rest.Unsupported as e:
            stats["unsupported"].append(f"{shard_rel} {name}: {e}")
            return None
        except Exception as e:  # noqa: BLE001 - qdrant_edge rejects some requests
            stats["rejected"].append(f"{shard_rel} {name}: {str(e).splitlines()[0][:160]}")
            return None
        case = {"name": f"{shard_rel}:{name}", "shard": shard_rel, "command": command,
                "body": body, "expected": expected}
        if command in ("query", "search"):
            case.update(ties(shard, command, body, expected))
        cases.append(case)
        return expected

    for name, command, body in battery(ctx):
        if isinstance(body.get("score_threshold"), str):
            body = resolve_threshold(shard, body)
            if body is None:
                stats["rejected"].append(f"{shard_rel} {name}: too few results for a threshold")
                continue
        if body.get("offset") == "@start":
            body = dict(body)
            body.pop("offset")
            page = 0
            while True:
                res = add(f"{name}{page}", command, body)
                if res is None or res["next_page_offset"] is None:
                    break
                body = dict(body, offset=res["next_page_offset"])
                page += 1
            continue
        add(name, command, body)
    return cases


def shard_ctx(shard, vectors: list, seed: int, ever_ids: list) -> Ctx:
    points = scroll_all(shard)
    live = [p["id"] for p in points]
    live_set = set(map(compare._key, live))
    deleted = [i for i in ever_ids if compare._key(i) not in live_set]
    info = rest.run(shard, "info", {})
    indexed = {k: v["data_type"] for k, v in info["payload_schema"].items()}
    return Ctx(vectors=vectors, live=live, deleted=deleted,
               payloads={p["id"]: p.get("payload") for p in points},
               indexed=indexed, seed=seed,
               default_only=len(vectors) == 1 and vectors[0].name == "")


def flushed_manifest(shard) -> dict:
    """snapshot_manifest() after a flush: ours flushes first (it describes the files), edge's
    describes in-memory segments, which only differ while WAL entries are unflushed."""
    shard.flush()
    return shard.snapshot_manifest()


def server_cases(shard, c: str, shared: Path, stats: dict, stage: str = "partial1",
                 shard_name: str = "") -> list:
    """The server's recorded answers of `<stage>.expected.json` as cases on `shard_name`
    (default `fixtures/<c>`); `stage` is `full` (the state of full.snapshot) or `partial1`
    (the state partial1.snapshot and full2.snapshot bring)."""
    d = json.loads((shared / "fixtures" / c / f"{stage}.expected.json").read_text())
    shard_name = shard_name or f"fixtures/{c}"
    tag = "server:" if stage == "partial1" else f"server-{stage}:"
    out = []
    for name, a in d["answers"].items():
        req = a["request"]
        command = rest.PATHS.get((req["method"], req["path"]))
        if command is None or a.get("status") != 200:
            stats["unsupported"].append(f"fixtures/{c} server:{name}: {req['method']} {req['path']}")
            continue
        body = req.get("body") or {}
        case = {"name": f"{tag}{c}:{name}", "shard": shard_name, "command": command,
                "body": body, "expected": a["response"]}
        approximate = (command in ("query", "search") and
                       not (body.get("params") or {}).get("exact", False) and
                       ("query" in body or "vector" in body))
        if approximate:
            case["approximate"] = True
        try:
            edge = rest.run(shard, command, body)
            if command in ("query", "search") and not approximate:
                case.update(ties(shard, command, body, edge))
            diff = compare.result_diff(command, a["response"], edge, case)
            if diff:
                # HNSW answers too: where qdrant-edge disagrees with the server for a known
                # reason (docs/format-notes.md), matching qdrant-edge is accepted.
                case["edge_expected"] = edge
                stats["server_vs_edge"].append(f"{c}:{name}{' (hnsw)' if approximate else ''}: {diff[:200]}")
        except Exception as e:  # noqa: BLE001
            stats["server_vs_edge"].append(f"{c}:{name}: qdrant-edge-py failed: {e}")
        out.append(case)
    return out


# ---------------------------------------------------------------------------------------------


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path,
                    default=Path(os.environ.get("QEW_CORPUS", CRATE / "target" / "corpus")))
    ap.add_argument("--shared", type=Path,
                    default=Path(os.environ.get("QEW_SHARED", CRATE.parent / "shared")))
    ap.add_argument("--wal-writer", nargs=2, metavar=("NAME", "DIR"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.wal_writer:
        wal_writer(*args.wal_writer)
        return

    t0 = time.time()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("shards", "fixtures", "fixtures-full"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        (out / sub).mkdir()
    if (out / "cases.json").exists():
        (out / "cases.json").unlink()

    stats: dict = {"unsupported": [], "rejected": [], "server_vs_edge": [], "wal": {}}
    timings = {}
    cases: list = []
    manifests: dict = {}
    with tempfile.TemporaryDirectory(prefix="qew-corpus-") as tmpd:
        tmp = Path(tmpd)
        for spec in shards.SPECS:
            t = time.time()
            path = out / "shards" / spec.name
            build_shard(spec, path)
            if spec.wal_crash:
                stats["wal"][spec.name] = verify_wal_shard(spec, path, tmp)
            work = tmp / spec.name
            sparse_copy(path, work)
            shard = qe.EdgeShard.load(str(work))
            plan = shards.make_plan(spec)
            ctx = shard_ctx(shard, spec.vectors, spec.seed, plan.ever_ids)
            if plan.expected_live is not None:
                got = set(map(compare._key, ctx.live))
                want = set(map(compare._key, plan.expected_live))
                if got != want:
                    raise SystemExit(f"{spec.name}: live ids differ from the plan "
                                     f"({len(got)} vs {len(want)})")
            cases += answer_all(shard, f"shards/{spec.name}", ctx, stats)
            manifests[f"shards/{spec.name}"] = flushed_manifest(shard)
            shard.close()
            shutil.rmtree(work)
            timings[spec.name] = round(time.time() - t, 2)
            log(f"{spec.name}: {timings[spec.name]}s")

        for c in ("basic", "multi"):
            t = time.time()
            snap = args.shared / "fixtures" / c / "full2.snapshot"
            if not snap.exists():
                raise SystemExit(f"missing {snap} (set QEW_SHARED or --shared)")
            path = out / "fixtures" / c
            qe.EdgeShard.unpack_snapshot(str(snap), str(path))
            work = tmp / f"fx_{c}"
            sparse_copy(path, work)
            shard = qe.EdgeShard.load(str(work))
            full = json.loads((args.shared / "fixtures" / c / "full.expected.json").read_text())
            ever = [p["id"] for p in full["answers"]["scroll_all"]["response"]["points"]]
            ctx = shard_ctx(shard, FIXTURE_VECTORS[c], 100 + len(c), ever)
            cases += answer_all(shard, f"fixtures/{c}", ctx, stats)
            cases += server_cases(shard, c, args.shared, stats)
            manifests[f"fixtures/{c}"] = flushed_manifest(shard)
            shard.close()
            shutil.rmtree(work)
            # The state of full.snapshot, with the server's answers at that moment.
            path = out / "fixtures-full" / c
            qe.EdgeShard.unpack_snapshot(str(args.shared / "fixtures" / c / "full.snapshot"), str(path))
            sparse_copy(path, work)
            shard = qe.EdgeShard.load(str(work))
            cases += server_cases(shard, c, args.shared, stats, "full", f"fixtures-full/{c}")
            manifests[f"fixtures-full/{c}"] = flushed_manifest(shard)
            shard.close()
            shutil.rmtree(work)
            timings[f"fixture:{c}"] = round(time.time() - t, 2)
            log(f"fixture {c}: {timings[f'fixture:{c}']}s")

    (out / "manifests.json").write_text(json.dumps(manifests, indent=1, sort_keys=True))
    with open(out / "cases.json", "w") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in cases))
        f.write("\n]\n")

    # ---- summary
    per = defaultdict(Counter)
    for c in cases:
        per[c["shard"]][c["command"]] += 1
    cmds = list(rest.COMMANDS)
    print(f"{'shard':28}" + "".join(f"{x:>9}" for x in cmds) + f"{'total':>8}")
    for sh in per:
        print(f"{sh:28}" + "".join(f"{per[sh][x]:>9}" for x in cmds) + f"{sum(per[sh].values()):>8}")
    tot = Counter(c["command"] for c in cases)
    print(f"{'all':28}" + "".join(f"{tot[x]:>9}" for x in cmds) + f"{len(cases):>8}")
    print(f"approximate (server HNSW) cases: {sum(1 for c in cases if c.get('approximate'))}; "
          f"tie-flagged: {sum(1 for c in cases if c.get('ties_at_end') or c.get('ties_at_start'))}")
    for k in ("unsupported", "rejected", "server_vs_edge"):
        print(f"{k}: {len(stats[k])}")
        for line in stats[k]:
            print(f"  {line}")
    print(f"WAL checks: {json.dumps(stats['wal'])}")
    du = subprocess.run(["du", "-sh", str(out)], capture_output=True, text=True).stdout.split()[0]
    print(f"timings: {json.dumps(timings)}")
    print(f"corpus: {out} ({du} on disk, cases.json {(out / 'cases.json').stat().st_size // 1024} KiB); "
          f"generated in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
