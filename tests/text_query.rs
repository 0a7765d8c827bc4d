//! BM25 text queries (`{"query": {"text": …}, "using": "<field>"}`) against qdrant-edge-py 0.9.0
//! (`tests/corpus/bm25_oracle.py`), through a sequence of updates that moves the documents
//! between Qdrant's text indexes: appendable (live statistics), optimized (statistics frozen at
//! build: a deleted or updated point still counts), reloaded, and both at once.
//!
//! At every stage, both the shard qdrant-edge-py wrote (loaded here) and the same updates
//! replayed by this engine must give qdrant-edge-py's answers: the same ids, the same errors,
//! and on qdrant-edge-py's shards scores equal to the bit and equal scores in its order (we walk
//! the lists as Qdrant does: term at a time, or document at a time with its MaxScore pruning,
//! which decides the order of a score's additions); on ours, scores within 1e-6 and equal
//! scores in any order (qdrant-edge-py numbers a batch in a hash map's random order).

mod common;

use std::sync::Arc;

use common::ranked::{agreement, Agreement, Run, Ties};
use qdrant_edge_wasm::api::{dispatch, dispatch_update};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::FsStorage;
use serde_json::{json, Value};

const WORDS: [&str; 8] = ["alpha", "beta", "gamma", "delta", "Epsilon", "zeta", "eta", "theta"];

/// Deterministic texts: repeated words, arrays, empty and non-string values, missing fields.
fn payloads() -> Vec<(u64, Value)> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    fn next(x: &mut u64, n: u64) -> u64 {
        *x ^= *x << 13;
        *x ^= *x >> 7;
        *x ^= *x << 17;
        *x % n
    }
    fn text(x: &mut u64, len: u64) -> String {
        (0..len).map(|_| WORDS[next(x, WORDS.len() as u64) as usize]).collect::<Vec<_>>().join(" ")
    }
    let mut out = Vec::new();
    for i in 0..40u64 {
        let body = match i % 10 {
            0 => json!([text(&mut x, 2), text(&mut x, 3)]),
            1 => json!(text(&mut x, 1)),
            2 if i == 2 => json!(""),
            2 => json!(format!("{} beta beta beta beta", text(&mut x, 2))),
            3 if i == 3 => Value::Null,
            4 if i == 14 => json!([1, "alpha alpha", null]),
            4 if i == 24 => json!([]),
            5 => json!(format!("{}, {}! {}", text(&mut x, 3), text(&mut x, 2), text(&mut x, 5))),
            _ => {
                let len = 2 + next(&mut x, 6);
                json!(text(&mut x, len))
            }
        };
        let mut p = json!({"kw": if i % 3 == 0 { "x" } else { "y" }, "n": i});
        if !body.is_null() {
            p["body"] = body;
        }
        out.push((i, p));
    }
    out
}

fn text(q: Value) -> Value {
    json!({"query": {"text": q}, "using": "body", "limit": 100})
}

fn queries() -> Vec<Value> {
    let kw = |v: &str| json!({"must": [{"key": "kw", "match": {"value": v}}]});
    vec![
        text(json!("alpha gamma gamma zzz")),
        json!({"query": {"text": "alpha gamma"}, "using": "body", "limit": 3}),
        text(json!({"query": "beta delta", "scoring": {"bm25": {"k": 2.0, "b": 0.0}}})),
        text(json!({"query": "epsilon theta", "scoring": {"bm25": {"k": 0.0, "b": 0.5}}})),
        text(json!({"query": "zeta eta alpha", "scoring": {"bm25": {"b": 1.0}}})),
        json!({"query": {"text": "alpha beta"}, "using": "body", "limit": 100, "filter": kw("x")}),
        json!({"query": {"text": "alpha beta"}, "using": "body", "limit": 100,
            "params": {"idf": {"corpus": kw("x")}}}),
        json!({"query": {"text": "delta theta beta"}, "using": "body", "limit": 100, "filter": kw("x"),
            "params": {"idf": {"corpus": kw("y")}}}),
        json!({"query": {"text": "gamma delta"}, "using": "body", "limit": 5, "offset": 2, "score_threshold": 1.0}),
        json!({"prefetch": [
                {"query": {"text": "alpha"}, "using": "body", "limit": 5},
                {"query": [1.0, 0.0, 0.0, 1.0], "using": "v", "limit": 5}],
            "query": {"fusion": "rrf"}, "limit": 10}),
        json!({"prefetch": [{"query": {"text": "beta"}, "using": "body", "limit": 100}],
            "query": [0.0, 0.0, 0.0, 1.0], "using": "v", "limit": 5}),
        json!({"query": {"text": {"query": "alpha", "scoring": {"bm25": {"k": -1.0}}}}, "using": "body"}),
        json!({"query": {"text": {"query": "alpha", "scoring": {"bm25": {"b": 1.5}}}}, "using": "body"}),
        json!({"query": {"text": "alpha"}, "using": "kw"}),
        json!({"query": {"text": "alpha"}, "using": "nope"}),
        text(json!("")),
        text(json!("zzz qqq")),
        json!({"prefetch": [{"query": [1.0, 0.0, 0.0, 0.0], "using": "v", "limit": 5}],
            "query": {"text": "alpha"}, "using": "body", "limit": 5}),
        text(json!("THETA theta Theta eta")),
        json!({"query": {"text": "alpha beta gamma delta epsilon"}, "using": "body", "limit": 4, "params": {"idf": "global"}}),
        // Query 0 with live statistics: a corpus of every point.
        json!({"query": {"text": "alpha gamma gamma zzz"}, "using": "body", "limit": 100,
            "params": {"idf": {"corpus": {"must": []}}}}),
    ]
}

fn steps() -> Vec<Value> {
    let fillers: Vec<Value> = (100..400u64).map(|i| json!([i, {"kw": "z", "n": i}])).collect();
    vec![
        json!({"upsert": payloads()}),
        json!({"ask": "appendable"}),
        json!({"delete": [3, 11]}),
        json!({"overwrite_payload": {"ids": [5], "payload": {"body": "gamma gamma gamma alpha", "kw": "y"}}}),
        json!({"ask": "appendable-changed"}),
        json!({"upsert": fillers}),
        json!({"optimize": true}),
        json!({"ask": "optimized"}),
        json!({"delete": [7, 13]}),
        json!({"overwrite_payload": {"ids": [8, 16], "payload": {"body": "theta alpha alpha", "kw": "x"}}}),
        json!({"ask": "optimized-changed"}),
        json!({"reload": true}),
        json!({"ask": "reloaded"}),
        json!({"upsert": [[41, {"body": "alpha zeta", "kw": "x"}], [42, {"body": ["beta", "beta gamma"], "kw": "y"}]]}),
        json!({"ask": "mixed"}),
    ]
}

fn scenario() -> Value {
    json!({
        "schema": {"type": "text", "scoring": true},
        "indexes": {"kw": "keyword"},
        "optimizers": {"indexing_threshold": 1, "default_segment_number": 1},
        "queries": queries(),
        "steps": steps(),
    })
}

type Answer = Vec<(u64, f64)>;

/// Our answer to a query: `(id, score)` pairs, or the error's text.
fn ask(shard: &EdgeShard, body: &Value) -> Result<Answer, String> {
    let r = dispatch(shard, "query", body).map_err(|e| e.to_string())?;
    Ok(r["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_u64().unwrap(), p["score"].as_f64().unwrap()))
        .collect())
}

/// Compare our answers at stage `label` with qdrant-edge-py's; returns the failures. With
/// `replayed` (our own shard, made by the same updates), fusion answers only need the same ids
/// and the same score at each position: qdrant-edge-py numbers the points of a batch in the
/// order of a randomly seeded hash map, so where a prefetch list holds equal scores their order,
/// and with it each one's rank-based fusion score, differs from ours.
fn compare(
    shard: &EdgeShard,
    queries: &[Value],
    label: &str,
    want: &Value,
    replayed: bool,
    exact_seen: &mut usize,
) -> Vec<String> {
    let mut failed = Vec::new();
    for (i, (body, want)) in queries.iter().zip(want.as_array().unwrap()).enumerate() {
        let ours = ask(shard, body);
        if let Some(e) = want.get("error") {
            let e = e.as_str().unwrap();
            let msg = e.split_once(": ").map_or(e, |(_, m)| m);
            match &ours {
                Err(o) if o.contains(msg) => {}
                _ => failed.push(format!("{label} q{i}: qdrant-edge-py failed with `{e}`, ours gave {ours:?}")),
            }
            continue;
        }
        let want: Answer =
            want.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect();
        let Ok(ours) = ours else {
            failed.push(format!("{label} q{i}: ours failed with {ours:?}, qdrant-edge-py answered {want:?}"));
            continue;
        };
        // A text query on a shard qdrant-edge-py wrote: the same f32 sums (we walk the lists as
        // Qdrant does, MaxScore pruning included) and equal scores in the same order. On ours,
        // qdrant-edge-py numbered a batch's points (and so an appendable segment's tokens) in a
        // hash map's random order: terms of equal IDF may add up in another order (the last
        // bit), and the limit may cut a run of equal scores elsewhere. (Its appendable sparse
        // index adds a point's dimensions in a hash map's order too: 1e-6 there.)
        let text = body["query"].get("text").is_some() && body.get("prefetch").is_none();
        let fusion = body["query"].get("fusion").is_some();
        let ties = if text && !replayed {
            Ties::strict(0.0)
        } else if replayed && fusion {
            Ties::strict(1e-6).runs(Run::Whole)
        } else {
            Ties::strict(1e-6).runs(Run::Close).cut_last_run()
        };
        match agreement(&want, &ours, ties) {
            Agreement::No => failed.push(format!("{label} q{i}: qdrant-edge-py {want:?}\n   ours {ours:?}")),
            Agreement::Exactly => *exact_seen += 1,
            _ => {}
        }
    }
    failed
}

/// A point of an oracle scenario's `upsert` step: `[id, payload, sparse?]`, as REST.
fn point(p: &Value) -> Value {
    let mut vector = json!({"v": [1.0, 0.0, 0.0, p[0].as_f64().unwrap() / 1000.0]});
    if let Some(s) = p.get(2) {
        vector["s"] = s.clone();
    }
    json!({"id": p[0], "vector": vector, "payload": p[1]})
}

/// Run `scenario` (see `tests/corpus/bm25_oracle.py`) through qdrant-edge-py, then compare its
/// answers with ours on its shards and on ours made by the same steps. Returns the oracle's
/// answers per stage, the differences and how many answers agreed to the order.
fn run_scenario(scenario: &Value) -> (Value, Vec<String>, usize) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario_file = tmp.path().join("scenario.json");
    std::fs::write(&scenario_file, serde_json::to_vec(scenario).unwrap()).unwrap();
    let out = tmp.path().join("oracle");
    std::fs::create_dir_all(&out).unwrap();
    let oracle = common::run_oracle_script("bm25_oracle.py", &[scenario_file.to_str().unwrap(), out.to_str().unwrap()]);
    let queries = scenario["queries"].as_array().unwrap();
    let steps = scenario["steps"].as_array().unwrap();

    let mut failed = Vec::new();
    let mut exact = 0;
    // qdrant-edge-py's shards, loaded here.
    for step in steps {
        if let Some(label) = step["ask"].as_str() {
            let dir = out.join(label);
            let shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
            let name = format!("qdrant-edge-py's {label}");
            failed.extend(compare(&shard, queries, &name, &oracle[label], false, &mut exact));
        }
    }
    // The same updates, made by this engine.
    let dir = tmp.path().join("ours");
    let mut config = json!({
        "vectors": {"v": {"size": 4, "distance": "Dot"}},
        "optimizers": scenario["optimizers"],
    });
    if scenario["sparse"] == json!(true) {
        config["sparse_vectors"] = json!({"s": {"modifier": "idf"}});
    }
    let mut shard =
        EdgeShard::create(Arc::new(FsStorage::new(&dir).unwrap()), "", serde_json::from_value(config).unwrap())
            .unwrap();
    let mut indexes = vec![("body".to_string(), scenario["schema"].clone())];
    indexes.extend(scenario["indexes"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())));
    for (field, schema) in indexes {
        dispatch_update(&mut shard, "create_index", &json!({"field_name": field, "field_schema": schema})).unwrap();
    }
    for step in steps {
        if let Some(points) = step.get("upsert") {
            let points: Vec<Value> = points.as_array().unwrap().iter().map(point).collect();
            dispatch_update(&mut shard, "upsert", &json!({"points": points})).unwrap();
        } else if let Some(ids) = step.get("delete") {
            dispatch_update(&mut shard, "delete", &json!({"points": ids})).unwrap();
        } else if let Some(o) = step.get("overwrite_payload") {
            dispatch_update(&mut shard, "overwrite_payload", &json!({"points": o["ids"], "payload": o["payload"]}))
                .unwrap();
        } else if step.get("optimize").is_some() {
            assert!(shard.optimize().unwrap(), "optimize rewrote nothing");
        } else if step.get("reload").is_some() {
            shard.close().unwrap();
            shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
        } else if let Some(label) = step["ask"].as_str() {
            shard.flush().unwrap();
            failed.extend(compare(&shard, queries, &format!("ours {label}"), &oracle[label], true, &mut exact));
        }
    }
    (oracle, failed, exact)
}

#[test]
fn text_queries_match_qdrant_edge() {
    let (oracle, failed, exact) = run_scenario(&scenario());

    // The fixture means something: the stages' statistics differ, so their scores do.
    let first = |label: &str| oracle[label][0].clone();
    for (a, b) in [("appendable", "appendable-changed"), ("optimized", "optimized-changed"), ("reloaded", "mixed")] {
        assert_ne!(first(a), first(b), "{a} and {b} gave the same answer: {}", first(a));
    }
    // The appendable segment's statistics are live; a point deleted from or updated out of the
    // optimized segment still counts there (its statistics are those of the build), until the
    // build, and after a reload.
    let live = queries().len() - 1;
    assert_eq!(oracle["appendable-changed"][0], oracle["appendable-changed"][live]);
    assert_eq!(oracle["optimized"][0], oracle["optimized"][live]);
    assert_ne!(oracle["optimized-changed"][0], oracle["optimized-changed"][live]);
    assert_eq!(oracle["optimized-changed"][0], oracle["reloaded"][0]);

    assert!(failed.is_empty(), "{} differences:\n{}", failed.len(), failed.join("\n"));
    // Most answers agree to the order of equal scores too.
    assert!(exact >= 100, "only {exact} answers in qdrant-edge-py's exact order");
}

/// `params.idf` on a sparse vector with the `idf` modifier: statistics over every point
/// (`"global"`, as without it) or over a corpus filter, in appendable and optimized segments;
/// refused on a vector without the modifier.
#[test]
fn sparse_idf_corpus_matches_qdrant_edge() {
    let kw = |v: &str| json!({"must": [{"key": "kw", "match": {"value": v}}]});
    let points: Vec<Value> = (0..60u32)
        .map(|i| {
            let dims: Vec<u32> = (0..8).filter(|d| (i * 7 + d * 3) % (d + 2) == 0).collect();
            let values: Vec<f32> = dims.iter().map(|&d| 0.5 + ((i + d) % 4) as f32 / 4.0).collect();
            json!([i, {"kw": if i % 4 == 0 { "x" } else { "y" }}, {"indices": dims, "values": values}])
        })
        .collect();
    let sparse = |params: Value, filter: Value| {
        json!({"query": {"indices": [0, 2, 5, 7], "values": [1.0, 0.5, 2.0, 1.0]}, "using": "s", "limit": 100,
            "params": params, "filter": filter})
    };
    let queries = vec![
        sparse(Value::Null, Value::Null),
        sparse(json!({"idf": "global"}), Value::Null),
        sparse(json!({"idf": {"corpus": kw("x")}}), Value::Null),
        sparse(json!({"idf": {"corpus": kw("y")}}), kw("x")),
        json!({"query": [1.0, 0.0, 0.0, 1.0], "using": "v", "params": {"idf": "global"}}),
    ];
    let fillers: Vec<Value> = (100..400u32).map(|i| json!([i, {"kw": "z"}])).collect();
    let scenario = json!({
        "schema": {"type": "text", "scoring": true},
        "indexes": {"kw": "keyword"},
        "sparse": true,
        "optimizers": {"indexing_threshold": 1, "default_segment_number": 1},
        "queries": queries,
        "steps": [
            {"upsert": points}, {"ask": "appendable"},
            {"delete": [4, 9]}, {"upsert": fillers}, {"optimize": true}, {"ask": "optimized"},
            {"delete": [8, 13]}, {"ask": "optimized-changed"},
        ],
    });
    let (oracle, failed, _) = run_scenario(&scenario);
    // The corpus changes the weights, and a dense vector refuses the parameter.
    assert_ne!(oracle["appendable"][0], oracle["appendable"][2]);
    assert_eq!(oracle["appendable"][0], oracle["appendable"][1]);
    assert!(oracle["appendable"][4].get("error").is_some(), "{}", oracle["appendable"][4]);
    assert!(failed.is_empty(), "{} differences:\n{}", failed.len(), failed.join("\n"));
}

/// Request shapes: the string and object forms, strict fields, and `params.idf`.
#[test]
fn text_query_requests_parse_strictly() {
    use qdrant_edge_wasm::api::requests::{parse, IdfParams, QueryInput, QueryRequest};
    let q: QueryRequest = parse(&json!({"query": {"text": "a b"}, "using": "t"})).unwrap();
    assert!(matches!(q.query, Some(QueryInput::Text(ref t)) if t.query == "a b" && t.k.is_none() && t.b.is_none()));
    let q: QueryRequest =
        parse(&json!({"query": {"text": {"query": "a", "scoring": {"bm25": {"k": 2.0, "b": 0.5}}}}, "using": "t"}))
            .unwrap();
    assert!(matches!(q.query, Some(QueryInput::Text(ref t)) if t.k == Some(2.0) && t.b == Some(0.5)));
    for bad in [
        json!({"query": {"text": {"query": "a", "scoring": {"bm25": {"k1": 2.0}}}}}),
        json!({"query": {"text": {"query": "a", "scoring": {"tfidf": {}}}}}),
        json!({"query": {"text": {"text": "a"}}}),
        json!({"query": {"text": 5}}),
        json!({"query": {"text": "a"}, "params": {"idf": "local"}}),
        json!({"query": {"text": "a"}, "params": {"idf": {"corpus": {}, "x": 1}}}),
    ] {
        assert!(parse::<QueryRequest>(&bad).is_err(), "accepted {bad}");
    }
    let q: QueryRequest = parse(&json!({"query": {"text": "a"}, "params": {"idf": "global"}})).unwrap();
    assert_eq!(q.params.unwrap().idf, Some(IdfParams::Global));
    let q: QueryRequest = parse(&json!({"params": {"idf": {"corpus": {"must": []}}}})).unwrap();
    assert_eq!(q.params.unwrap().idf, Some(IdfParams::Corpus(json!({"must": []}))));
}
