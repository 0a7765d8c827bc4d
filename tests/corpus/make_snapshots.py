#!/usr/bin/env python3
"""Snapshot-apply scenarios checked against qdrant-edge-py 0.9.0 `EdgeShard.update_from_snapshot`.

    .venv/bin/python tests/corpus/make_snapshots.py [--out DIR]

DIR defaults to $QEW_CORPUS/snapshots, else <crate root>/target/corpus/snapshots, and is
replaced. It receives:

  <scenario>/base/                  the shard directory to start from (written by qdrant-edge-py,
                                    flushed and closed)
  <scenario>/archive.snapshot       a shard snapshot archive built here the way a Qdrant 1.19
                                    server builds it (gzip-compressed for `full_regular_gzip`,
                                    name unchanged)
  <scenario>/request.manifest.json  partial scenarios only: the manifest the archive was computed
                                    against (what base's own snapshot_manifest() reports)
  <scenario>/after.manifest.json    snapshot_manifest() of qdrant-edge-py after it applied the
                                    archive to a copy of base (flushed first)
  cases.json                        cases in generate.py's format ({"name", "shard", "command",
                                    "body", "expected", ties flags}) with "shard": "<scenario>";
                                    `expected` is what qdrant-edge-py answers after
                                    update_from_snapshot(archive) on a copy of base
  summary.json                      per scenario: kind, format, archive entry/file counts, segments
                                    of base / source / after, per-segment inclusion counts

Scenarios (one named dense vector "v", payloads from shards.make_payload, a keyword index on
"color"):

  full_replace                base = shard A; archive = full Streamable snapshot of a different
                              shard B (same vector config); the result must answer like B.
  partial_updates             base = copy of S at t0; S then gets upserts, deletes, payload
                              operations and vector updates (no optimization); archive = partial
                              snapshot of S against base's manifest (request.manifest.json).
  partial_optimized           as above, but S is also optimized and gets a new payload index
                              ("n", integer): the t0 optimized segment survives and is sent in
                              part, the t0 appendable one disappears, two new segments are sent
                              whole.
  full_regular_gzip           full snapshot in the Regular format (one nested `segments/<id>.tar`
                              per segment), gzip-compressed; base has 1 segment, the source 2.
  partial_unchanged_plus_one  base = S; S gets a single upsert; partial against base's manifest
                              (the appendable segment whole, nothing of the optimized one).

The base of a partial scenario is copied from S while S stays open (after a flush), so S keeps
its in-memory per-file versions, while the request is base's own manifest after a reload (what a
requester would send).

For every scenario the script asserts that qdrant-edge-py applies the archive, that its answers
equal those of the source shard the archive was taken from, reloaded from disk (full *and*
partial scenarios), that reloading the applied shard gives the same answers, and that the segment
set after applying is the source's. Any difference aborts the script.

qdrant-edge-py 0.9.0 observations this script relies on:
  * update_from_snapshot needs an open (loaded) shard ("Shard is not initialized" after close);
    its tmp_dir must exist; the shard object answers from the new state right away.
  * it reads plain tar only: the gzip file fails with "Failed to read tar archive", so the
    decoded tar is applied (a server never gzips the tar itself, only the HTTP stream; the
    summary records `edge_py_reads_gzip`).
  * a still-open source shard may answer differently from its reloaded self (facet on a mutable
    integer index keeps values no point has any more, with count 0); such differences are listed
    under `source_open_vs_reloaded` in the summary.

Archive layout (reference: shared/reference/qdrant-formats.md §12). Streamable, in this order:

  segments/<id>/files/segment_manifest.json   partial only: the segment's CURRENT SegmentManifest
                                              (compact JSON, in-memory entry), first in the segment
  segments/<id>/files/<relative file>         full: every file the segment's manifest lists;
                                              partial: those selected by the inclusion rule (§12.6)
  segments/<id>/files/segment.json            always
  segments/<id>/files/version.info            always, last in the segment
  ... next segment (appendable segments first, then by id) ...
  newest_clocks.json, oldest_clocks.json      server-shaped clock maps (in-memory entries)
  wal/                                        the only directory entry
  wal/closed-<L+1>                            an empty WAL segment (see below)
  replica_state.json, shard_config.json       {"type":"ReplicaSet"}

Regular (stored) format: identical, except that each segment is one in-memory entry
`segments/<id>.tar` holding `snapshot/files/<file>` entries (segment.json and version.info
included), written without end-of-archive blocks (§12.2).

The files of a segment are the keys of its `file_versions` in snapshot_manifest() (exactly the
component files() a server archives), plus segment.json and version.info; never
tracker_journal.dat, never edge_config.json (server snapshots carry none: edge derives its config
from the segments).

WAL: shard snapshots are taken with save_wal = false (§12.1, §12.7): everything is flushed into
the segments and the archive carries an *empty* WAL positioned after the source's last operation:
one segment file `closed-<L+1>` (L = index of the last WAL entry = number of update() calls on the
source - 1) of the default 32 MiB capacity holding only the 8-byte header ("wal", format 0,
random CRC seed), archived as a GNU sparse entry whose single data region is the first 4096
bytes. Copying the source's own wal/ would be wrong: its entries (and first-index) would be
replayed on top of the restored segments, and a partial recovery *replaces* the requester's wal/
with the archive's, so the archive's WAL must be the empty, correctly numbered one the server
writes (new operations continue at L+1).

Tar encoding (§12.2): GNU headers via Python's tarfile (GNU long-name 'L' entries for paths over
100 bytes), patched so that files from disk carry their full st_mode (e.g. 0o100644) and files
with holes become old-GNU sparse entries (type 'S', map of SEEK_DATA/SEEK_HOLE regions closed by a
(realsize, 0) terminator, extension blocks when more than 4 pairs); in-memory entries are type
'\\0', mode 0o644, mtime 0, uid/gid fields all NUL; the archive ends with two zero blocks and no
record padding. Checksums are written as 7 octal digits + NUL.

Not byte-deterministic across runs (segment UUIDs, mtimes, WAL seed), but the points, answers,
archive entry counts and segment counts are.
"""

from __future__ import annotations

import argparse
import errno
import gzip
import io
import json
import os
import random
import shutil
import struct
import sys
import tarfile
import tempfile
import time
import uuid
from pathlib import Path
from typing import BinaryIO, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import qdrant_edge as qe  # noqa: E402

import compare  # noqa: E402
import rest  # noqa: E402
import shards  # noqa: E402
from generate import sparse_copy, ties  # noqa: E402
from shards import Vec  # noqa: E402

CRATE = HERE.parent.parent
BLOCK = 512
WAL_CAPACITY = 32 * 1024 * 1024  # edge's default wal_options.segment_capacity
U = qe.UpdateOperation


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# tar writing


def _octal(n: int, width: int) -> bytes:
    """`width`-byte numeric tar field: zero-padded octal digits and a NUL."""
    s = b"%0*o" % (width - 1, n)
    if len(s) != width - 1:
        raise ValueError(f"{n} does not fit a {width}-byte tar field")
    return s + b"\0"


def data_regions(path: Path, size: int) -> list:
    """[(offset, length)] of the regions of `path` that hold data (SEEK_DATA / SEEK_HOLE, as the
    tar crate's sparse detection does)."""
    out = []
    fd = os.open(path, os.O_RDONLY)
    try:
        off = 0
        while off < size:
            try:
                d = os.lseek(fd, off, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            h = min(os.lseek(fd, d, os.SEEK_HOLE), size)
            out.append((d, h - d))
            off = h
    finally:
        os.close(fd)
    return out


class TarWriter:
    """A GNU tar stream with the peculiarities of the Rust `tar` crate as Qdrant uses it."""

    def __init__(self, f: BinaryIO):
        self.f = f
        self.entries: list = []  # (name, type) in archive order

    # -- headers

    @staticmethod
    def _seal(hdr) -> None:
        """Checksum of a header block: 7 octal digits and a NUL (the crate's form)."""
        hdr[148:156] = b" " * 8
        hdr[148:156] = _octal(sum(hdr), 8)

    def _header(self, name: str, typ: bytes, size: int, mode: int, mtime: int,
                in_memory: bool, sparse: tuple | None = None) -> bytes:
        """Header block(s) of one entry: tarfile's GNU header, patched (see module docstring);
        for a sparse entry followed by its extension blocks."""
        ti = tarfile.TarInfo(name)
        ti.type = typ if typ != b"S" else tarfile.REGTYPE
        ti.size = size
        ti.mtime = mtime
        ti.mode = mode
        buf = bytearray(ti.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
        if len(buf) > BLOCK:  # a GNU long-name entry ('L') precedes the real header
            long_hdr = memoryview(buf)[:BLOCK]
            long_hdr[100:108] = _octal(0o644, 8)
            self._seal(long_hdr)
            del long_hdr
        hdr = memoryview(buf)[len(buf) - BLOCK:]
        hdr[100:108] = _octal(mode, 8)  # tarfile masks the file-type bits away
        if in_memory:
            hdr[108:124] = b"\0" * 16  # uid, gid all NUL: the crate's zero-initialised header
        else:
            hdr[329:345] = _octal(0, 8) * 2  # devmajor, devminor as octal zeros
        extension = bytearray()
        if typ == b"S":
            pairs, realsize = sparse
            hdr[156:157] = b"S"
            head, rest_pairs = pairs[:4], pairs[4:]
            for i, (o, n) in enumerate(head):
                hdr[386 + 24 * i:398 + 24 * i] = _octal(o, 12)
                hdr[398 + 24 * i:410 + 24 * i] = _octal(n, 12)
            hdr[482] = 1 if rest_pairs else 0
            hdr[483:495] = _octal(realsize, 12)
            while rest_pairs:  # extension blocks: 21 pairs each, isextended at 504
                blk = bytearray(BLOCK)
                chunk, rest_pairs = rest_pairs[:21], rest_pairs[21:]
                for i, (o, n) in enumerate(chunk):
                    blk[24 * i:24 * i + 12] = _octal(o, 12)
                    blk[24 * i + 12:24 * i + 24] = _octal(n, 12)
                blk[504] = 1 if rest_pairs else 0
                extension += blk
        self._seal(hdr)
        del hdr
        self.entries.append((name, typ))
        return bytes(buf) + bytes(extension)

    def _data(self, data: bytes) -> None:
        self.f.write(data)
        pad = -len(data) % BLOCK
        if pad:
            self.f.write(b"\0" * pad)

    # -- entries

    def add_bytes(self, name: str, data: bytes) -> None:
        """An entry made from memory (the crate's append_data): type '\\0', mode 644, mtime 0."""
        self.f.write(self._header(name, tarfile.AREGTYPE, len(data), 0o644, 0, True))
        self._data(data)

    def add_dir(self, name: str, path: Path) -> None:
        st = path.stat()
        self.f.write(self._header(name, tarfile.DIRTYPE, 0, st.st_mode, int(st.st_mtime), False))

    def add_sparse(self, name: str, realsize: int, regions: list, mode: int, mtime: int) -> None:
        """regions: [(offset, bytes)]; the map ends with the (realsize, 0) terminator."""
        pairs = [(o, len(b)) for o, b in regions] + [(realsize, 0)]
        size = sum(len(b) for _, b in regions)
        self.f.write(self._header(name, b"S", size, mode, mtime, False, (pairs, realsize)))
        self._data(b"".join(b for _, b in regions))

    def add_file(self, name: str, path: Path) -> None:
        st = path.stat()
        regions = data_regions(path, st.st_size)
        if sum(n for _, n in regions) < st.st_size:
            with open(path, "rb") as fh:
                chunks = []
                for o, n in regions:
                    fh.seek(o)
                    chunks.append((o, fh.read(n)))
            self.add_sparse(name, st.st_size, chunks, st.st_mode, int(st.st_mtime))
            return
        data = path.read_bytes()
        self.f.write(self._header(name, tarfile.REGTYPE, len(data), st.st_mode, int(st.st_mtime), False))
        self._data(data)

    def finish(self) -> None:
        """Two zero blocks, no record padding (the nested Regular tars never get these)."""
        self.f.write(b"\0" * (2 * BLOCK))


# ---------------------------------------------------------------------------------------------
# archives


def eff(seg: dict, f: str) -> int:
    """Effective version of file `f` in a SegmentManifest: its number, else segment_version."""
    v = seg["file_versions"][f]
    return seg["segment_version"] if v is None else v


def included_files(cur: dict, old: dict | None) -> list:
    """The inclusion rule of a partial snapshot (§12.6) for one segment."""
    old = old or {"segment_version": 0, "file_versions": {}}
    out = []
    for f in cur["file_versions"]:
        if f not in old["file_versions"]:
            out.append(f)
            continue
        a, b = eff(old, f), eff(cur, f)
        if a < b or (a == 0 and b == 0):
            out.append(f)
    return out


def _file_rank(f: str) -> tuple:
    """Server-like order inside a segment: vector index, vector storage, quantization, field
    indexes, payload_index/config.json, payload storage, id tracker (order is not significant)."""
    if f.startswith("vector_index-"):
        r = 0
    elif "quantized" in f:
        r = 2
    elif f.startswith("vector_storage-"):
        r = 1
    elif f == "payload_index/config.json":
        r = 4
    elif f.startswith("payload_index/"):
        r = 3
    elif f.startswith("payload_storage/"):
        r = 5
    elif "id_tracker" in f:
        r = 6
    else:
        r = 7
    return (r, f)


def ordered_segments(manifest: dict) -> list:
    """Segment ids, appendable ones (mutable id tracker) first, as observed on the server."""
    def key(sid):
        appendable = any(f.startswith("mutable_id_tracker") for f in manifest[sid]["file_versions"])
        return (not appendable, sid)
    return sorted(manifest, key=key)


def empty_wal_segment(seed: int) -> bytes:
    """The data region of an empty WAL segment: header "wal", format 0, u32 LE CRC seed."""
    return (b"wal\0" + struct.pack("<I", seed)).ljust(4096, b"\0")


def build_archive(src: Path, manifest: dict, ops: int, out: Path, *, request: dict | None = None,
                  regular: bool = False, gzipped: bool = False, seed: int = 0) -> dict:
    """Write the snapshot of the flushed shard at `src` whose snapshot_manifest() is `manifest`.
    `request` = None: full snapshot; else a partial snapshot against that manifest. `ops` = number
    of operations the source's WAL ever received (the empty WAL is closed-<ops>). Returns
    statistics for summary.json."""
    if regular and request is not None:
        raise ValueError("partial snapshots are always Streamable")
    rng = random.Random(seed)
    seg_root = src / "segments"
    stats: dict = {"segments": {}}
    raw = open(out, "wb")
    # gzip "max speed", as the server's HTTP content encoding (§12.9)
    f: BinaryIO = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                compresslevel=1) if gzipped else raw
    tw = TarWriter(f)
    for sid in ordered_segments(manifest):
        seg = manifest[sid]
        sdir = seg_root / sid
        files = list(seg["file_versions"]) if request is None else included_files(seg, request.get(sid))
        files.sort(key=_file_rank)
        for name in files:
            if name.endswith("tracker_journal.dat"):
                raise SystemExit(f"{sid}: the manifest lists {name}")
            if not (sdir / name).is_file():
                raise SystemExit(f"{sid}: manifest file {name} missing on disk")
        if regular:
            inner = io.BytesIO()
            nested = TarWriter(inner)
            for name in files + ["segment.json", "version.info"]:
                nested.add_file(f"snapshot/files/{name}", sdir / name)
            # no nested.finish(): the server drops the nested builder without finishing it
            tw.add_bytes(f"segments/{sid}.tar", inner.getvalue())
        else:
            prefix = f"segments/{sid}/files/"
            if request is not None:
                tw.add_bytes(prefix + "segment_manifest.json",
                             json.dumps(seg, separators=(",", ":")).encode())
            for name in files + ["segment.json", "version.info"]:
                tw.add_file(prefix + name, sdir / name)
        on_disk = {str(p.relative_to(sdir)) for p in sdir.rglob("*") if p.is_file()}
        unlisted = sorted(on_disk - set(seg["file_versions"]) - {"segment.json", "version.info"})
        stats["segments"][sid] = {"listed": len(seg["file_versions"]), "archived": len(files),
                                  "segment_version": seg["segment_version"],
                                  **({"unlisted_on_disk": unlisted} if unlisted else {})}
    peer = rng.getrandbits(52)
    clocks = {"clocks": [{"peer_id": peer, "clock_id": 0, "current_tick": ops,
                          "token": rng.getrandbits(63)}]}
    tw.add_bytes("newest_clocks.json", json.dumps(clocks, separators=(",", ":")).encode())
    tw.add_bytes("oldest_clocks.json", b'{"clocks":[]}')
    tw.add_dir("wal", src / "wal")
    tw.add_sparse(f"wal/closed-{ops}", WAL_CAPACITY, [(0, empty_wal_segment(rng.getrandbits(32)))],
                  0o100644, int(time.time()))
    tw.add_bytes("replica_state.json", json.dumps(
        {"is_local": True, "this_peer_id": peer, "peers": {str(peer): "Active"}},
        separators=(",", ":")).encode())
    tw.add_bytes("shard_config.json", b'{"type":"ReplicaSet"}')
    tw.finish()
    if gzipped:
        f.close()
    raw.close()
    stats.update(entries=len(tw.entries),
                 file_entries=sum(1 for _, t in tw.entries if t != tarfile.DIRTYPE),
                 bytes=out.stat().st_size)
    return stats


def check_archive(path: Path) -> None:
    """Read the archive back with Python's tarfile (an independent GNU/sparse reader)."""
    with tarfile.open(path) as t:
        for m in t.getmembers():
            if m.type == tarfile.GNUTYPE_SPARSE or m.isfile():
                data = t.extractfile(m).read()
                if len(data) != m.size:
                    raise SystemExit(f"{path}: {m.name} reads back {len(data)} of {m.size} bytes")
                if m.name.endswith(".tar"):
                    # nested Regular tar: footer-less, tarfile stops at EOF on a header boundary
                    with tarfile.open(fileobj=io.BytesIO(data)) as inner:
                        for im in inner.getmembers():
                            if len(inner.extractfile(im).read()) != im.size:
                                raise SystemExit(f"{path}: {m.name}:{im.name} truncated")


def selftest_sparse(tmp: Path) -> None:
    """The sparse writer round-trips through Python's tarfile, including extension blocks (more
    than 4 data regions; no real segment file needs them, so test a synthetic one)."""
    path = tmp / "sparse_selftest.bin"
    with open(path, "wb") as fh:
        fh.truncate(1 << 20)
        for k in range(25):
            fh.seek(k * 32768)
            fh.write(bytes([k + 1]) * 4096)
    regions = data_regions(path, 1 << 20)
    buf = io.BytesIO()
    tw = TarWriter(buf)
    tw.add_file("x/" + "long" * 30 + "/sparse.bin", path)
    tw.add_bytes("in_memory.json", b"{}")
    tw.finish()
    buf.seek(0)
    with tarfile.open(fileobj=buf) as t:
        got = {m.name: t.extractfile(m).read() for m in t.getmembers()}
    if got != {"x/" + "long" * 30 + "/sparse.bin": path.read_bytes(), "in_memory.json": b"{}"}:
        raise SystemExit("sparse tar self-test failed")
    if len(regions) <= 4:
        log(f"note: the filesystem reported {len(regions)} data regions; extension blocks untested")
    path.unlink()


# ---------------------------------------------------------------------------------------------
# source shards


def config(dim: int, distance: str, segments: int = 2, deleted_threshold: float = 0.2) -> qe.EdgeConfig:
    """Small optimizer thresholds: optimize() indexes every appendable segment that holds data
    (HNSW), vacuums segments with `deleted_threshold` of their points deleted and merges down to
    `segments` segments."""
    return qe.EdgeConfig(
        vectors={"v": qe.EdgeVectorParams(dim, getattr(qe.Distance, distance))},
        hnsw_config=qe.HnswIndexConfig(m=16, ef_construct=64, full_scan_threshold=10),
        optimizers=qe.EdgeOptimizersConfig(default_segment_number=segments, indexing_threshold=10,
                                           deleted_threshold=deleted_threshold,
                                           vacuum_min_vector_number=100),
        max_search_threads=1,
    )


class Source:
    """A qdrant-edge-py shard we write to, with deterministic data and a WAL operation count."""

    def __init__(self, path: Path, vec: Vec, seed: int, ids: str = "u64", **cfg):
        self.path = path
        self.vec = vec
        self.rng = random.Random(seed)
        self.ids = ids
        self.shard = qe.EdgeShard.create(str(path), config(vec.dim, vec.distance, **cfg))
        self.ops = 0  # one WAL entry per update() call
        self.live: dict = {}  # id -> None, in insertion order
        self.ever: dict = {}
        self.next_n = 0
        self.counter = 0

    def update(self, op) -> None:
        self.shard.update(op)
        self.ops += 1

    def fresh_ids(self, n: int) -> list:
        """New ids: increasing integers with random gaps (the first batch also 0 and 2^64-1),
        and for ids="mixed" about a third UUIDs."""
        out = [0, 2**64 - 1] if not self.ever and self.ids == "u64" else []
        while len(out) < n:
            if self.ids == "mixed" and self.rng.random() < 0.35:
                out.append(str(uuid.UUID(int=self.rng.getrandbits(128))))
            else:
                self.counter += self.rng.randint(1, 9)
                out.append(self.counter)
        return out[:n]

    def upsert(self, ids: list, batch: int = 250) -> None:
        pts = []
        for i in ids:
            pts.append(qe.Point(shards.py_id(i), {"v": self.vec.random(self.rng)},
                                shards.make_payload(self.rng, self.next_n)))
            self.next_n += 1
            self.live[i] = None
            self.ever[i] = None
        for k in range(0, len(pts), batch):
            self.update(U.upsert_points(pts[k:k + batch]))

    def delete(self, ids: list) -> None:
        self.update(U.delete_points([shards.py_id(i) for i in ids]))
        for i in ids:
            self.live.pop(i, None)

    def sample(self, k: int) -> list:
        return self.rng.sample(list(self.live), min(k, len(self.live)))

    def pids(self, ids: list) -> list:
        return [shards.py_id(i) for i in ids]

    def index(self, key: str, typ: str) -> None:
        self.update(U.create_field_index(key, getattr(qe.PayloadSchemaType, typ)))

    def mutate(self) -> None:
        """Overwrites, fresh points, deletes and every payload operation kind."""
        self.upsert(self.sample(len(self.live) // 10))
        self.upsert(self.fresh_ids(max(5, len(self.live) // 8)))
        self.delete(self.sample(len(self.live) // 12))
        self.update(U.set_payload(self.pids(self.sample(30)), {"touched": True, "color": "touched"}))
        self.update(U.overwrite_payload(self.pids(self.sample(15)),
                                        {"only": "this", "n": -1, "color": "blue"}))
        self.update(U.delete_payload(self.pids(self.sample(20)), ["color", "tags", "nested.a.b"]))
        self.update(U.set_payload(self.pids(self.sample(10)), {"b": 9}, key="nested.a"))
        self.update(U.clear_payload(self.pids(self.sample(5))))
        self.update(U.update_vectors([qe.PointVectors(shards.py_id(i), {"v": self.vec.random(self.rng)})
                                      for i in self.sample(20)]))

    def flush(self) -> dict:
        """Flush; returns snapshot_manifest() and checks the WAL ack against our op count."""
        self.shard.flush()
        ack = json.loads((self.path / "wal" / "first-index").read_text())["ack_index"]
        manifest = self.shard.snapshot_manifest()
        top = max((s["segment_version"] for s in manifest.values()), default=0)
        if not (top <= self.ops - 1 and ack <= self.ops - 1):
            raise SystemExit(f"{self.path}: op count {self.ops} below segment version {top} / ack {ack}")
        return manifest


def close_copy(src: Path, dst: Path) -> dict:
    """Copy a (flushed) shard directory to `dst`, load it with qdrant-edge-py, flush and close
    it; returns its own snapshot_manifest() (what a requester sends for a partial snapshot)."""
    sparse_copy(src, dst)
    s = qe.EdgeShard.load(str(dst))
    s.flush()
    m = s.snapshot_manifest()
    s.close()
    return m


# ---------------------------------------------------------------------------------------------
# answers


EXACT = {"exact": True}


def requests(vec: Vec, seed: int, live: list, ever: list, indexed: dict) -> list:
    """(name, command, body): full scroll with payload and vectors, counts, exact queries,
    filtered queries, facets on indexed keyword/integer fields, retrieve, info."""
    rng = random.Random(seed)
    gone = [i for i in ever if i not in set(live)]
    red = {"must": [{"key": "color", "match": {"value": "red"}}]}
    mixed = {"must": [{"key": "n", "range": {"gte": 50, "lt": 600}}],
             "must_not": [{"key": "color", "match": {"any": ["green", "white"]}}]}
    touched = {"should": [{"key": "touched", "match": {"value": True}},
                          {"key": "only", "match": {"value": "this"}},
                          {"is_empty": {"key": "color"}}]}
    q = lambda **kw: {"query": vec.random(rng), "using": "v", "params": EXACT, **kw}
    out = [
        ("scroll/all", "scroll", {"limit": 100_000, "with_payload": True, "with_vector": True}),
        ("scroll/red", "scroll", {"limit": 40, "filter": red, "with_payload": ["color", "n"]}),
        ("count/all", "count", {"exact": True}),
        ("count/red", "count", {"filter": red, "exact": True}),
        ("count/mixed", "count", {"filter": mixed, "exact": True}),
        ("count/touched", "count", {"filter": touched, "exact": True}),
    ]
    for k in range(3):
        out.append((f"query/plain{k}", "query", q(limit=10, with_payload=True)))
    out += [
        ("query/vectors", "query", q(limit=5, with_vector=True)),
        ("query/offset", "query", q(limit=6, offset=7)),
        ("query/limit100", "query", q(limit=100)),
        ("query/red", "query", q(limit=10, filter=red, with_payload=["color"])),
        ("query/mixed", "query", q(limit=10, filter=mixed, with_payload=["n", "color"])),
        ("query/touched", "query", q(limit=10, filter=touched, with_payload=True)),
        ("search/plain", "search", {"vector": {"name": "v", "vector": vec.random(rng)}, "limit": 8,
                                    "params": EXACT, "with_payload": ["color"]}),
    ]
    for key, typ in sorted(indexed.items()):
        if typ in ("keyword", "integer"):
            out.append((f"facet/{key}", "facet", {"key": key, "exact": True, "limit": 1000}))
            out.append((f"facet/{key}/mixed", "facet", {"key": key, "exact": True, "limit": 3,
                                                       "filter": mixed}))
    pick = rng.sample(live, min(6, len(live)))
    out += [
        ("retrieve/mixed", "retrieve", {"ids": pick[:3] + gone[:3] + pick[3:], "with_payload": True,
                                        "with_vector": True}),
        ("info", "info", {}),
    ]
    return out


def answer(shard, scenario: str, reqs: list) -> list:
    cases = []
    for name, command, body in reqs:
        expected = rest.run(shard, command, body)
        case = {"name": f"{scenario}:{name}", "shard": scenario, "command": command,
                "body": body, "expected": expected}
        if command in ("query", "search"):
            case.update(ties(shard, command, body, expected))
        cases.append(case)
    if cases[0]["expected"]["next_page_offset"] is not None:
        raise SystemExit(f"{scenario}: scroll/all did not finish in one page")
    return cases


def same_answers(label: str, cases: list, shard) -> None:
    """Every case answered by `shard` as in `cases`, else abort."""
    for c in cases:
        got = rest.run(shard, c["command"], c["body"])
        d = compare.result_diff(c["command"], c["expected"], got, c)
        if d:
            raise SystemExit(f"{c['name']}: {label} differs: {d}")


def indexed_fields(shard) -> dict:
    return {k: v["data_type"] for k, v in rest.run(shard, "info", {})["payload_schema"].items()}


# ---------------------------------------------------------------------------------------------
# scenarios


class Scenario:
    def __init__(self, name: str, out: Path, tmp: Path):
        self.name = name
        self.dir = out / name
        self.tmp = tmp / name
        self.dir.mkdir(parents=True)
        self.tmp.mkdir(parents=True)
        self.base = self.dir / "base"
        self.archive = self.dir / "archive.snapshot"


def finish(sc: Scenario, src: Source, src_manifest: dict, kind: str, arch_stats: dict,
           base_manifest: dict, request: dict | None) -> tuple:
    """Source answers -> apply the archive to a copy of base -> compare -> cases and summary.

    The reference is the source shard *reloaded* from disk (the state the archive carries). The
    still-open source may answer differently where qdrant-edge-py's in-memory state is stale
    (seen: facet on a mutable integer index lists values no point has any more, with count 0);
    such differences are recorded in the summary, not fatal."""
    live = [p["id"] for p in rest.run(src.shard, "scroll", {"limit": 100_000})["points"]]
    reqs = requests(src.vec, sum(map(ord, sc.name)), live, list(src.ever), indexed_fields(src.shard))
    open_cases = answer(src.shard, sc.name, reqs)
    src.shard.close()
    reloaded = sc.tmp / "source_reloaded"
    sparse_copy(src.path, reloaded)
    shard = qe.EdgeShard.load(str(reloaded))
    src_cases = answer(shard, sc.name, reqs)
    shard.close()
    open_vs_reloaded = []
    for a, b in zip(open_cases, src_cases):
        d = compare.result_diff(a["command"], b["expected"], a["expected"], b)
        if d:
            open_vs_reloaded.append(f"{a['name']}: {d}")

    archive = sc.archive
    if arch_stats["gzip"]:
        # qdrant-edge-py reads plain tar only (the server never gzips the tar itself, only the
        # HTTP stream): feed it the decoded archive, and record that it rejects the gzip file.
        try:
            qe.EdgeShard.unpack_snapshot(str(archive), str(sc.tmp / "gz_probe"))
            arch_stats["edge_py_reads_gzip"] = True
        except Exception:  # noqa: BLE001
            arch_stats["edge_py_reads_gzip"] = False
        archive = sc.tmp / "archive.tar"
        with gzip.open(sc.archive, "rb") as fin, open(archive, "wb") as fout:
            shutil.copyfileobj(fin, fout)
    work = sc.tmp / "applied"
    sparse_copy(sc.base, work)
    shard = qe.EdgeShard.load(str(work))
    (sc.tmp / "unpack").mkdir()  # update_from_snapshot wants an existing tmp_dir
    shard.update_from_snapshot(str(archive), str(sc.tmp / "unpack"))
    cases = answer(shard, sc.name, reqs)
    same_answers(f"after applying, vs the source shard", src_cases, shard)
    shard.flush()
    after = shard.snapshot_manifest()
    shard.close()
    (sc.dir / "after.manifest.json").write_text(json.dumps(after, indent=1, sort_keys=True))
    if set(after) != set(src_manifest):
        raise SystemExit(f"{sc.name}: segments after applying {sorted(after)} != source "
                         f"{sorted(src_manifest)}")
    # the applied state survives a reload
    shard = qe.EdgeShard.load(str(work))
    same_answers("after reloading the applied shard", cases, shard)
    shard.close()
    leftovers = sorted(str(p.relative_to(work)) for p in work.iterdir())

    summary = {
        "kind": kind,
        "format": arch_stats["format"],
        "gzip": arch_stats["gzip"],
        **({"edge_py_reads_gzip": arch_stats["edge_py_reads_gzip"]} if arch_stats["gzip"] else {}),
        "archive_entries": arch_stats["entries"],
        "archive_files": arch_stats["file_entries"],
        "archive_bytes": arch_stats["bytes"],
        "segment_files": arch_stats["segments"],
        "segments_base": len(base_manifest),
        "segments_source": len(src_manifest),
        "segments_after": len(after),
        "segments_removed": len(set(base_manifest) - set(after)),
        "segments_added": len(set(after) - set(base_manifest)),
        "wal_ops": src.ops,
        "points_after": next(c["expected"]["count"] for c in cases
                             if c["name"].endswith(":count/all")),
        "applied_shard_dir": leftovers,
        "cases": len(cases),
    }
    if open_vs_reloaded:
        summary["source_open_vs_reloaded"] = open_vs_reloaded
    if request is not None:
        summary["request_segments"] = len(request)
    shutil.rmtree(sc.tmp)
    return cases, summary


def snapshot(sc: Scenario, src: Source, manifest: dict, request: dict | None = None,
             regular: bool = False, gzipped: bool = False) -> dict:
    stats = build_archive(src.path, manifest, src.ops, sc.archive, request=request, regular=regular,
                          gzipped=gzipped, seed=len(sc.name))
    check_archive(sc.archive)
    stats.update(format="regular" if regular else "streamable", gzip=gzipped)
    return stats


def full_replace(sc: Scenario) -> tuple:
    vec = Vec("v", "dense", 16, "Cosine")
    a = Source(sc.base, vec, seed=101)
    a.upsert(a.fresh_ids(400))
    a.index("color", "Keyword")
    a.shard.optimize()
    a.mutate()
    base_manifest = a.flush()
    a.shard.close()

    b = Source(sc.tmp / "B", vec, seed=102, ids="mixed")
    b.index("color", "Keyword")  # index before the data this time
    b.upsert(b.fresh_ids(700))
    b.shard.optimize()
    b.mutate()
    man = b.flush()
    stats = snapshot(sc, b, man)
    return finish(sc, b, man, "full", stats, base_manifest, None)


def _partial(sc: Scenario, src: Source, before_t0: Callable, after_t0: Callable) -> tuple:
    """base = a copy of S at t0 (copied while S stays open, so S keeps its in-memory per-file
    versions); the request is base's own manifest, as a requester would send it."""
    before_t0(src)
    at_t0 = src.flush()
    request = close_copy(src.path, sc.base)
    (sc.dir / "request.manifest.json").write_text(json.dumps(request, indent=1, sort_keys=True))
    # after a reload, per-file versions fall back to the segment version (§12.6): count them
    reload_diffs = sum(1 for sid, seg in at_t0.items() for f, v in seg["file_versions"].items()
                       if request.get(sid, {}).get("file_versions", {}).get(f, "absent") != v)
    after_t0(src)
    man = src.flush()
    if man == request:
        raise SystemExit(f"{sc.name}: nothing changed (the server would answer 304)")
    stats = snapshot(sc, src, man, request=request)
    cases, summary = finish(sc, src, man, "partial", stats, request, request)
    summary["request_file_versions_differing_from_source_at_t0"] = reload_diffs
    return cases, summary


def partial_updates(sc: Scenario) -> tuple:
    def t0(s: Source):
        s.upsert(s.fresh_ids(600))
        s.index("color", "Keyword")
        s.shard.optimize()

    def later(s: Source):
        s.mutate()
        s.upsert(s.fresh_ids(40))
        s.delete(s.sample(25))
        s.update(U.set_payload_by_filter(
            qe.Filter(must=[qe.FieldCondition("color", match=qe.MatchValue("red"))]), {"red_marked": 1}))

    src = Source(sc.tmp / "S", Vec("v", "dense", 24, "Euclid"), seed=201)
    return _partial(sc, src, t0, later)


def partial_optimized(sc: Scenario) -> tuple:
    def t0(s: Source):
        s.index("color", "Keyword")
        s.upsert(s.fresh_ids(700))
        s.shard.optimize()
        s.upsert(s.fresh_ids(150))  # unoptimized points in the appendable segment at t0

    def later(s: Source):
        s.mutate()
        s.upsert(s.fresh_ids(300))
        s.delete(s.sample(120))  # enough deletions for the vacuum optimizer
        s.index("n", "Integer")
        s.shard.optimize()

    # 3 segments and a lax vacuum threshold: the t0 optimized segment survives (and is sent in
    # part), the t0 appendable one is indexed into a new segment, a new appendable one appears
    src = Source(sc.tmp / "S", Vec("v", "dense", 12, "Dot"), seed=301, ids="mixed", segments=3,
                 deleted_threshold=0.5)
    cases, summary = _partial(sc, src, t0, later)
    kept = summary["segments_after"] - summary["segments_added"]
    if not (summary["segments_removed"] and summary["segments_added"] and kept):
        raise SystemExit(f"{sc.name}: expected kept, removed and added segments: {summary}")
    return cases, summary


def full_regular_gzip(sc: Scenario) -> tuple:
    vec = Vec("v", "dense", 8, "Manhattan")
    a = Source(sc.base, vec, seed=401)
    a.upsert(a.fresh_ids(200))
    a.index("color", "Keyword")
    base_manifest = a.flush()
    a.shard.close()

    c = Source(sc.tmp / "C", vec, seed=402)
    c.upsert(c.fresh_ids(900))
    c.index("color", "Keyword")
    c.index("n", "Integer")
    c.shard.optimize()
    c.mutate()
    c.delete(c.sample(50))
    man = c.flush()
    stats = snapshot(sc, c, man, regular=True, gzipped=True)
    return finish(sc, c, man, "full", stats, base_manifest, None)


def partial_unchanged_plus_one(sc: Scenario) -> tuple:
    def t0(s: Source):
        s.upsert(s.fresh_ids(500))
        s.index("color", "Keyword")
        s.shard.optimize()

    def later(s: Source):
        s.upsert(s.fresh_ids(1)[:1])

    src = Source(sc.tmp / "S", Vec("v", "dense", 32, "Cosine"), seed=501)
    return _partial(sc, src, t0, later)


SCENARIOS = [full_replace, partial_updates, partial_optimized, full_regular_gzip,
             partial_unchanged_plus_one]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(os.environ["QEW_CORPUS"]) / "snapshots" if os.environ.get("QEW_CORPUS") else \
        CRATE / "target" / "corpus" / "snapshots"
    ap.add_argument("--out", type=Path, default=default)
    args = ap.parse_args()
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)

    t_all = time.time()
    cases: list = []
    summary: dict = {}
    with tempfile.TemporaryDirectory(prefix="qew-snapshots-") as tmpd:
        selftest_sparse(Path(tmpd))
        for fn in SCENARIOS:
            t = time.time()
            sc = Scenario(fn.__name__, out, Path(tmpd))
            c, s = fn(sc)
            s["seconds"] = round(time.time() - t, 2)
            cases += c
            summary[sc.name] = s
            log(f"{sc.name}: {s['kind']} {s['format']}{' gzip' if s['gzip'] else ''}, "
                f"{s['archive_files']} files ({s['archive_bytes'] // 1024} KiB), segments "
                f"base {s['segments_base']} -> after {s['segments_after']}, {s['cases']} cases, "
                f"{s['seconds']}s")
    with open(out / "cases.json", "w") as f:
        f.write("[\n")
        f.write(",\n".join(json.dumps(c, separators=(",", ":"), allow_nan=False) for c in cases))
        f.write("\n]\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    log(f"{len(cases)} cases, {out} in {time.time() - t_all:.1f}s")


if __name__ == "__main__":
    main()
