#!/usr/bin/env python3
"""wasi-demo contract test: the same commands natively and under wasmtime (WASI preview 1)
must print identical JSON, and that JSON must equal the server answers recorded in the
fixtures; bad input must exit non-zero with a JSON error on stderr."""
import argparse
import hashlib
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.environ.get("QEW_CORPUS", os.path.join(ROOT, "target", "corpus"))
SHARED = os.environ.get("QEW_SHARED", os.path.join(ROOT, "..", "shared"))
RUNNER = os.path.join(ROOT, "scripts", "wasi-runner.py")


def run_native(exe, shard, args):
    p = subprocess.run([exe, shard] + args, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def run_wasm(wasm, shard, args):
    p = subprocess.run(
        [sys.executable, RUNNER, "--dir", f"{shard}::/shard", wasm, "/shard"] + args,
        capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--wasm", required=True)
    ap.add_argument("--native", required=True)
    a = ap.parse_args()
    passed = failed = 0

    def check(cond, what):
        nonlocal passed, failed
        if cond:
            passed += 1
        else:
            failed += 1
            print("FAIL:", what)

    for coll in ["basic", "multi"]:
        shard = os.path.join(CORPUS, "fixtures", coll)
        if not os.path.isdir(shard):
            print(f"FAIL: missing {shard}; run tests/corpus/generate.py")
            failed += 1
            continue
        answers = json.load(open(os.path.join(SHARED, "fixtures", coll, "partial1.expected.json")))["answers"]
        picks = ["count_f0", "count_f1", "count_f5", "facet_color", "scroll_page", "query_f2_exact", "retrieve"]
        for name in picks:
            ans = answers[name]
            cmd = {"points/count": "count", "facet": "facet", "points/scroll": "scroll", "points/query": "query",
                   "points": "retrieve"}[ans["request"]["path"]]
            body = json.dumps(ans["request"]["body"])
            rn = run_native(a.native, shard, [cmd, body])
            rw = run_wasm(a.wasm, shard, [cmd, body])
            check(rn[0] == 0 and rw[0] == 0, f"{coll}/{name}: exit codes {rn[0]} {rw[0]}: {rn[2]} {rw[2]}")
            check(rn[1] == rw[1], f"{coll}/{name}: native and wasm output differ")
            if rn[0] == 0:
                got = json.loads(rn[1])
                exp = ans["response"]
                if cmd == "query":
                    check([p["id"] for p in got["points"]] == [p["id"] for p in exp["points"]], f"{coll}/{name}: ids differ from server")
                else:
                    check(got == exp, f"{coll}/{name}: differs from server answer")
        # bad input: exit 2 and a JSON error naming the field
        for args, field in [(["count", '{"filter": {"must": [{"key": "n", "range": {"gt": "x"}}]}}'], "filter"),
                            (["scroll", '{"limitt": 3}'], None),
                            (["count", "{not json"], "body")]:
            for runner in (run_native, run_wasm):
                code, out, err = runner(a.native if runner is run_native else a.wasm, shard, args)
                ok = code == 2 and out == ""
                try:
                    e = json.loads(err)["error"]
                    ok = ok and e["code"] == "invalid_argument" and (field is None or e.get("field", "").startswith(field))
                except Exception:
                    ok = False
                check(ok, f"{coll}: bad input {args} via {runner.__name__}: {code} {err!r}")
    # write commands: the same session natively and under WASI gives the same shard contents
    import shutil
    import tempfile
    words = ["alpha", "beta", "gamma", "delta", "eps"]
    points = "\n".join(json.dumps({"id": i, "vector": [i, 1.0, -1.0, 0.5], "payload": {
        "n": i, "c": ["x", "y"][i % 2], "t": " ".join(words[(i * 31 + k * 17 + (i * k) % 7) % 5] for k in range(1 + i % 6))}})
        for i in range(1, 301))
    text_answers = []
    dumps = []
    for name, runner, exe in [("native", run_native, a.native), ("wasm", run_wasm, a.wasm)]:
        work = tempfile.mkdtemp(prefix=f"cli-{name}-", dir=os.path.join(ROOT, "target"))
        shard = os.path.join(work, "shard")
        os.makedirs(shard)

        def cmd(*args, stdin=None):
            if runner is run_native:
                p = subprocess.run([exe, shard] + list(args), capture_output=True, text=True, input=stdin)
            else:
                p = subprocess.run([sys.executable, RUNNER, "--dir", f"{shard}::/shard", exe, "/shard"] + list(args),
                                   capture_output=True, text=True, input=stdin)
            return p.returncode, p.stdout, p.stderr

        r = cmd("create", json.dumps({"vectors": {"": {"size": 4, "distance": "Dot"}}}))
        check(r[0] == 0 and r[1].strip() == "true", f"{name}: create {r}")
        r = cmd("upsert", stdin=points)
        check(r[0] == 0 and json.loads(r[1]).get("status") == "completed", f"{name}: upsert {r}")
        r = cmd("update", json.dumps({"operations": [
            {"delete": {"points": [1, 2, 3]}},
            {"set_payload": {"payload": {"flag": True}, "filter": {"must": [{"key": "c", "match": {"value": "x"}}]}}},
            {"delete_payload": {"keys": ["n"], "points": [10]}}]}))
        check(r[0] == 0 and len(json.loads(r[1])) == 3, f"{name}: update {r}")
        r = cmd("set_payload", json.dumps({"payload": {"z": 1}, "points": [999]}))
        check(r[0] == 1 and json.loads(r[2])["error"]["code"] == "not_found", f"{name}: set_payload on a missing id {r}")
        r = cmd("flush")
        check(r[0] == 0, f"{name}: flush {r}")
        r = cmd("count", json.dumps({"filter": {"must": [{"key": "flag", "match": {"value": True}}]}}))
        check(r[0] == 0 and json.loads(r[1]) == {"count": 149}, f"{name}: count after updates {r}")
        # BM25 over a text index with scoring: appendable, then optimized (same scores to the bit
        # natively and under WASI)
        r = cmd("create_index", json.dumps({"field_name": "t", "field_schema": {"type": "text", "scoring": True}}))
        check(r[0] == 0, f"{name}: create_index text {r}")
        text_query = json.dumps({"query": {"text": "gamma eps eps"}, "using": "t", "limit": 20,
                                 "filter": {"must": [{"key": "c", "match": {"value": "x"}}]}})
        for stage in ["appendable", "optimized"]:
            if stage == "optimized":
                r = cmd("optimize")
                check(r[0] == 0, f"{name}: optimize {r}")
            r = cmd("query", text_query)
            pts = json.loads(r[1])["points"] if r[0] == 0 else []
            scores = [p["score"] for p in pts]
            check(r[0] == 0 and len(pts) == 20 and scores == sorted(scores, reverse=True) and scores[-1] > 0
                  and len(set(scores)) >= 3, f"{name}: text query {r}")
            text_answers.append(r[1])
        r = cmd("query", json.dumps({"query": {"text": "gamma"}, "using": "c"}))
        check(r[0] == 2 and "which is indexed as" not in r[2] and "has none" in r[2], f"{name}: text query without an index {r}")
        r = cmd("scroll", json.dumps({"limit": 1000, "with_vector": True}))
        check(r[0] == 0, f"{name}: scroll {r}")
        dumps.append(r[1])
        # Without a WAL every update command flushes before it reports (its process ends).
        shard = os.path.join(work, "nowal")
        os.makedirs(shard)
        r = cmd("create", json.dumps({"vectors": {"": {"size": 4, "distance": "Dot"}}, "wal_enabled": False}))
        check(r[0] == 0 and not os.path.exists(os.path.join(shard, "wal")), f"{name}: create without a WAL {r}")
        r = cmd("upsert", stdin="\n".join(points.split("\n")[:5]))
        check(r[0] == 0 and json.loads(r[1]).get("status") == "completed", f"{name}: upsert without a WAL {r}")
        r = cmd("delete", json.dumps({"points": [1]}))
        check(r[0] == 0, f"{name}: delete without a WAL {r}")
        r = cmd("count", "{}")
        check(r[0] == 0 and json.loads(r[1]) == {"count": 4}, f"{name}: updates without a WAL persist {r}")
        shutil.rmtree(work, ignore_errors=True)
    check(len(dumps) == 2 and dumps[0] == dumps[1], "native and wasm write sessions give different shards")
    check(len(text_answers) == 4 and text_answers[:2] == text_answers[2:], "native and wasm text queries differ")

    # Snapshots: unpack full.snapshot, manifest (= qdrant-edge-py's), apply partial1 (with its
    # SHA-256), a bad checksum and a non-empty target refused; native and wasm alike.
    fx = os.path.join(SHARED, "fixtures", "basic")
    final = json.load(open(os.path.join(fx, "partial1.expected.json")))["answers"]["count_f0"]
    want_manifest = json.load(open(os.path.join(fx, "full.manifest.json")))
    outs = []
    for name, exe in [("native", a.native), ("wasm", a.wasm)]:
        work = tempfile.mkdtemp(prefix=f"cli-snap-{name}-", dir=os.path.join(ROOT, "target"))
        shard = os.path.join(work, "shard")
        shutil.copy(os.path.join(fx, "full.snapshot"), os.path.join(work, "full.snapshot"))
        shutil.copy(os.path.join(fx, "partial1.snapshot"), os.path.join(work, "partial1.snapshot"))
        os.makedirs(shard)

        def snap(*args):
            if name == "native":
                argv = [exe, shard] + [os.path.join(work, x) if x.endswith(".snapshot") else x for x in args]
            else:
                argv = [sys.executable, RUNNER, "--dir", f"{work}::/w", exe, "/w/shard"] + \
                       ["/w/" + x if x.endswith(".snapshot") else x for x in args]
            p = subprocess.run(argv, capture_output=True, text=True)
            return p.returncode, p.stdout, p.stderr

        r = snap("unpack", "full.snapshot")
        check(r[0] == 0 and json.loads(r[1])["kind"] == "full", f"{name}: unpack {r}")
        r = snap("manifest")
        check(r[0] == 0 and json.loads(r[1]) == want_manifest, f"{name}: manifest differs from full.manifest.json")
        r = snap("apply", "partial1.snapshot", "0" * 64)
        check(r[0] == 2 and json.loads(r[2])["error"]["field"] == "checksum", f"{name}: bad checksum {r}")
        sha = hashlib.sha256(open(os.path.join(fx, "partial1.snapshot"), "rb").read()).hexdigest()
        r = snap("apply", "partial1.snapshot", sha)
        check(r[0] == 0 and json.loads(r[1])["kind"] == "partial", f"{name}: apply partial1 {r}")
        r = snap("count", json.dumps(final["request"]["body"]))
        check(r[0] == 0 and json.loads(r[1]) == final["response"], f"{name}: count after partial1 {r}")
        outs.append(r[1])
        r = snap("unpack", "full.snapshot")
        check(r[0] == 2 and json.loads(r[2])["error"]["code"] == "invalid_argument", f"{name}: unpack into a shard {r}")
        shutil.rmtree(work, ignore_errors=True)
    check(len(outs) == 2 and outs[0] == outs[1], "native and wasm snapshot sessions differ")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
