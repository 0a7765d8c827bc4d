"""Bundle a subset of the differential corpus for the browser test (tests/web_corpus.rs).

The browser test cannot read files, so it embeds one file: for each chosen shard a plain tar of
its directory (GNU tar, sparse; restored in the browser like a snapshot; qdrant-edge's empty
`temp_segments/` is left out), then that shard's cases from cases.json.

Layout: u32 count, then per shard: u32 name length, name (the corpus-relative shard path),
u64 tar length, tar; then u64 length and the JSON array of the chosen shards' cases.
All integers little-endian.

Usage: python tests/corpus/web_bundle.py --corpus target/corpus
(writes <corpus>/web/bundle.bin).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import subprocess

# Dense (f32 cosine; f16/u8/multivector), sparse with IDF, payload operations, WAL replay, and
# the Qdrant 1.19 server's `multi` shard with its HNSW graphs and quantized vectors.
SHARDS = [
    "shards/default_cosine",
    "shards/named_dot_f16",
    "shards/multivector",
    "shards/sparse",
    "shards/payload_ops",
    "shards/wal_replay",
    "fixtures/multi",
]


def shard_tar(root: str) -> bytes:
    # GNU tar with --sparse: the shards' preallocated files (GiBs of holes) become old-GNU
    # sparse entries, which the unpacker turns back into holes (Python's tarfile cannot write
    # them)
    names = sorted(n for n in os.listdir(root) if n != "temp_segments")
    return subprocess.run(
        ["tar", "--sparse", "--format=gnu", "-cf", "-", "-C", root, *names], check=True, capture_output=True
    ).stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus", required=True)
    a = ap.parse_args()
    cases = json.load(open(os.path.join(a.corpus, "cases.json")))
    chosen = [c for c in cases if c["shard"] in SHARDS]
    out = io.BytesIO()
    out.write(struct.pack("<I", len(SHARDS)))
    for s in SHARDS:
        tar = shard_tar(os.path.join(a.corpus, s))
        name = s.encode()
        out.write(struct.pack("<I", len(name)) + name + struct.pack("<Q", len(tar)) + tar)
    text = json.dumps(chosen).encode()
    out.write(struct.pack("<Q", len(text)) + text)
    os.makedirs(os.path.join(a.corpus, "web"), exist_ok=True)
    path = os.path.join(a.corpus, "web", "bundle.bin")
    data = out.getvalue()
    # rewrite only when it changed (the browser test embeds it: no needless rebuild)
    if not os.path.exists(path) or open(path, "rb").read() != data:
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    print(f"web bundle: {len(SHARDS)} shards, {len(chosen)} cases, {len(data)} bytes -> {path}")


if __name__ == "__main__":
    main()
