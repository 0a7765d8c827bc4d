#!/usr/bin/env python3
"""Snapshot restore throughput and memory: ours (memory and filesystem backends) against writing
the same bytes to the same backend, and qdrant-edge-py's unpack_snapshot + load, on the same
archives in the same run. Writes the section "Snapshot restore" of BENCHMARKS.md.

    .venv/bin/python benches/run_snapshot.py [--points 20000,100000] [--dim 384]

Archives: the server fixtures `basic/full2.snapshot` and `multi/full2.snapshot`, and full
Streamable snapshots built (tests/corpus/make_snapshots.py's archive writer, the server's
encoding) from qdrant-edge-py shards of N random 384-d Cosine points with a small payload.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import qdrant_edge as q

from bench_md import write_section

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "corpus"))
import make_snapshots  # noqa: E402

SHARED = Path(os.environ.get("QEW_SHARED", ROOT.parent / "shared"))

EDGE_RESTORE = r"""
import json, resource, sys, time
import qdrant_edge as q
archive, target = sys.argv[1], sys.argv[2]
t0 = time.perf_counter()
q.EdgeShard.unpack_snapshot(archive, target)
t1 = time.perf_counter()
s = q.EdgeShard.load(target)
t2 = time.perf_counter()
n = s.count(q.CountRequest(exact=True))
s.close()
print(json.dumps({"unpack_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0, "points": n,
                  "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_archive(work: Path, n: int, dim: int) -> Path:
    out = work / f"gen-{n}x{dim}.snapshot"
    if out.exists():
        return out
    src = work / f"gen-{n}x{dim}-shard"
    shutil.rmtree(src, ignore_errors=True)
    data = np.random.default_rng(11).standard_normal((n, dim), dtype=np.float32)
    s = q.EdgeShard.create(str(src), q.EdgeConfig(vectors=q.EdgeVectorParams(size=dim, distance=q.Distance.Cosine)))
    ops = 0
    for start in range(0, n, 1000):
        pts = [q.Point(id=i, vector=data[i].tolist(), payload={"n": i % 100, "tag": f"t{i % 7}"})
               for i in range(start, min(n, start + 1000))]
        s.update(q.UpdateOperation.upsert_points(pts))
        ops += 1
    s.flush()
    manifest = s.snapshot_manifest()
    s.close()
    make_snapshots.build_archive(src, manifest, ops, out)
    shutil.rmtree(src, ignore_errors=True)
    return out


def stream_heap(backend: str, r: dict) -> float:
    if backend == "memory":
        return r["push_peak_heap_mib"] - r["heap_held_after_push_mib"]
    return r["push_peak_heap_mib"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", default="20000,100000")
    ap.add_argument("--dim", type=int, default=384)
    a = ap.parse_args()
    work = ROOT / "target" / "bench" / "snapshot"
    work.mkdir(parents=True, exist_ok=True)
    archives = [("server basic/full2", SHARED / "fixtures" / "basic" / "full2.snapshot"),
                ("server multi/full2", SHARED / "fixtures" / "multi" / "full2.snapshot")]
    for n in [int(x) for x in a.points.split(",")]:
        archives.append((f"generated {n}x{a.dim}", make_archive(work, n, a.dim)))

    subprocess.run(["cargo", "bench", "--bench", "snapshot_apply", "--no-run"], cwd=ROOT, check=True)
    rows = []
    for label, path in archives:
        target = work / "edge-target"
        shutil.rmtree(target, ignore_errors=True)
        edge = json.loads(subprocess.run([sys.executable, "-c", EDGE_RESTORE, str(path), str(target)],
                                         check=True, capture_output=True, text=True).stdout)
        shutil.rmtree(target, ignore_errors=True)
        out = work / "ours.json"
        subprocess.run(["cargo", "bench", "--bench", "snapshot_apply", "--", str(path), str(work), str(out)],
                       cwd=ROOT, check=True, stderr=subprocess.DEVNULL)
        ours = json.loads(out.read_text())
        assert ours["fs"]["points"] == edge["points"] == ours["memory"]["points"], (label, ours, edge)
        rows.append((label, path.stat().st_size, ours, edge))
        print(label, json.dumps(ours), json.dumps(edge), flush=True)

    mb = lambda b: b / 1e6  # noqa: E731
    lines = [
        "## Snapshot restore",
        "",
        "Full shard snapshots restored into an empty shard, same archives, same run. Ours: the "
        "archive is read from disk in 256 KiB chunks and pushed into `SnapshotApply` (streaming "
        "unpack into a staging directory), then `finish_unpack` checks it, loads a preview, commits "
        "and loads the shard; MB/s = archive bytes / total time. *Raw write* = the same number of "
        "bytes written to one file of the same backend in the same chunks, plus a sync (mean of a run before and one after the restore). Ours syncs every restored file, as the server's unpacker does not; with ~100 files per fixture that dominates the small archives on the filesystem. Heap = a "
        "counting allocator in the bench binary: the peak while streaming (bounded, independent of "
        "the archive) and the peak of the finishing step (it loads the shard, so it grows with what "
        "the shard keeps in memory). qdrant-edge-py: `EdgeShard.unpack_snapshot` + `load` in a fresh "
        "process, whose peak RSS (Python and the loaded library included) is shown. "
        "Command: `.venv/bin/python benches/run_snapshot.py`.",
        "",
        "| archive | MB | backend | restore MB/s | stream MB/s | raw write MB/s | restore / raw | heap peak streaming MiB | heap peak finishing MiB | qdrant-edge-py s (MB/s, RSS MiB) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for label, size, ours, edge in rows:
        for backend in ["memory", "fs"]:
            r = ours[backend]
            e = f"{edge['total_s']:.3f} ({mb(size) / edge['total_s']:.0f}, {edge['max_rss_mib']:.0f})" if backend == "fs" else ""
            lines.append(
                f"| {label} | {mb(size):.1f} | {backend} | {r['restore_mb_s']:.0f} | {r['stream_mb_s']:.0f} | "
                f"{r['raw_write_mb_s']:.0f} | {r['restore_mb_s'] / r['raw_write_mb_s']:.2f} | "
                f"{stream_heap(backend, r):.2f} | {r['finish_peak_heap_mib']:.1f} | {e} |")
    lines += [
        "",
        "The unpacker's own buffers (`buffered_bytes`: header, long name, sparse map) peaked at "
        f"{max(r[2][b]['max_buffered_bytes'] for r in rows for b in ['memory', 'fs'])} bytes. "
        "On the memory backend the stored file data is itself heap, so its streaming column is the "
        "peak minus what the backend holds after the stream (the transient working memory); "
        "sparse regions (preallocated 32 MiB chunk and WAL files) cost nothing on either backend.",
        "",
        "Where we are short: qdrant-edge-py restores the large archives faster (its unpack writes "
        "without syncing and its load maps files lazily). Ours syncs each file, loads the result "
        "once as a preview before committing (so a bad snapshot never replaces a good shard) and "
        "once for real, and pins vectors in RAM by default, which is also why the finishing heap "
        "equals the vector data. Streaming alone (the `stream` column) runs at 0.8-1 GB/s with a "
        "heap independent of the archive size.",
        "",
    ]
    section = "\n".join(lines)
    write_section(ROOT, "Snapshot restore", section.rstrip("\n") + "\n")
    print(section)


if __name__ == "__main__":
    main()
