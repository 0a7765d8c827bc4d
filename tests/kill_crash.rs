//! Crash safety with real process deaths: a child process runs a write workload on the
//! filesystem backend and is killed with SIGKILL at a random moment, at least 200 times. After
//! each kill the shard must load, hold every update the child acknowledged, and hold the update
//! in flight either whole or not at all.
//!
//! The child is this test binary re-run with `QEW_KILL_CHILD=<dir>`: it prints `ack <k>` after
//! each acknowledged step. `QEW_KILL_ROUNDS` overrides the number of kills (default 200) for a
//! longer soak.

#![cfg(unix)]

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use qdrant_edge_wasm::api::{dispatch, dispatch_update};
use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::FsStorage;
use serde_json::{json, Value};

fn config() -> EdgeConfig {
    serde_json::from_value(json!({
        "vectors": {"v": {"size": 4, "distance": "Dot"}},
        "sparse_vectors": {"s": {}},
        "optimizers": {"default_segment_number": 1, "indexing_threshold": 1}
    }))
    .unwrap()
}

/// Step `k` of the workload: upserts, payload changes, deletes, a flush every 7 steps and an
/// optimize every 13.
fn step(k: u64) -> (&'static str, Value) {
    let id = |i: u64| json!(i);
    if k % 13 == 12 {
        return ("optimize", Value::Null);
    }
    match k % 7 {
        6 => ("flush", Value::Null),
        0 | 3 => (
            "upsert",
            json!({"points": (0..8).map(|j| {
                let i = (k * 8 + j) % 97;
                json!({"id": id(i), "vector": {"v": [k as f32, j as f32, 1.0, -1.0], "s": {"indices": [i as u32 % 13], "values": [k as f32]}}, "payload": {"k": k, "j": j}})
            }).collect::<Vec<_>>()}),
        ),
        1 => {
            ("set_payload", json!({"payload": {"touched": k}, "filter": {"must": [{"key": "j", "range": {"lt": 3}}]}}))
        }
        2 => ("delete", json!({"points": [(k * 5) % 97, (k * 11) % 97]})),
        4 => ("delete_payload", json!({"keys": ["j"], "filter": {"must": [{"key": "k", "match": {"value": k - 1}}]}})),
        _ => (
            "overwrite_payload",
            json!({"payload": {"o": k}, "filter": {"must": [{"key": "k", "range": {"lt": k.saturating_sub(3)}}]}}),
        ),
    }
}

const STEPS: u64 = 60;

fn run_step(shard: &mut EdgeShard, k: u64) {
    let (cmd, body) = step(k);
    if cmd == "flush" {
        shard.flush().unwrap();
    } else if cmd == "optimize" {
        shard.optimize().unwrap();
    } else {
        dispatch_update(shard, cmd, &body).unwrap_or_else(|e| panic!("step {k} {cmd}: {e}"));
    }
}

fn state(shard: &EdgeShard) -> Value {
    dispatch(shard, "scroll", &json!({"limit": 100000, "with_payload": true, "with_vector": true})).unwrap()["points"]
        .clone()
}

fn child(dir: &Path) {
    let mut shard = EdgeShard::load(Arc::new(FsStorage::new(dir).unwrap()), "").unwrap();
    let start: u64 =
        std::fs::read_to_string(dir.join("next-step")).ok().and_then(|s| s.trim().parse().ok()).unwrap_or(0);
    let out = std::io::stdout();
    for k in start..STEPS {
        run_step(&mut shard, k);
        let mut o = out.lock();
        writeln!(o, "ack {k}").unwrap();
        o.flush().unwrap();
    }
    std::process::exit(0);
}

#[test]
fn sigkill_at_random_points() {
    if let Ok(dir) = std::env::var("QEW_KILL_CHILD") {
        child(Path::new(&dir));
        return;
    }
    // Reference states after each step, computed in memory.
    let mem = qdrant_edge_wasm::storage::MemoryStorage::new();
    let mut reference = EdgeShard::create(Arc::new(mem), "", config()).unwrap();
    let mut states = vec![state(&reference)];
    for k in 0..STEPS {
        run_step(&mut reference, k);
        states.push(state(&reference));
    }

    let rounds: usize = std::env::var("QEW_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/kill-tests-{}", std::process::id()));
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x9E3779B97F4A7C15;
    let mut rng = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut kills = 0;
    let mut mid_workload = 0;
    for round in 0..rounds {
        let dir = base.join(format!("r{round}"));
        let _ = std::fs::remove_dir_all(&dir);
        EdgeShard::create(Arc::new(FsStorage::new(&dir).unwrap()), "", config()).unwrap().close().unwrap();
        // Each round kills the child twice: once cold, once after it resumed the workload.
        let mut acked: i64 = -1;
        for life in 0..2 {
            std::fs::write(dir.join("next-step"), ((acked + 1) as u64).to_string()).unwrap();
            let mut c = Command::new(&exe)
                .args(["--exact", "sigkill_at_random_points", "--nocapture", "--test-threads", "1"])
                .env("QEW_KILL_CHILD", &dir)
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let delay = Duration::from_micros(2_000 + rng() % 60_000);
            let stdout = c.stdout.take().unwrap();
            let reader = std::thread::spawn(move || {
                let mut last: i64 = -1;
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    // The test harness prints `test name ... ` before the first line.
                    if let Some(pos) = line.find("ack ") {
                        last = line[pos + 4..].trim().parse().unwrap();
                    }
                }
                last
            });
            let t0 = Instant::now();
            while t0.elapsed() < delay {
                if c.try_wait().unwrap().is_some() {
                    break;
                }
                std::thread::sleep(Duration::from_micros(200));
            }
            let killed = c.try_wait().unwrap().is_none();
            if killed {
                c.kill().unwrap(); // SIGKILL
                kills += 1;
            }
            c.wait().unwrap();
            let last = reader.join().unwrap();
            acked = acked.max(last);
            if killed && last + 1 < STEPS as i64 {
                mid_workload += 1;
            }
            let shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "")
                .unwrap_or_else(|e| panic!("round {round} life {life}: shard does not load after a kill: {e}"));
            let got = state(&shard);
            let a = (acked + 1) as usize; // steps acknowledged
            let ok = got == states[a] || states.get(a + 1).is_some_and(|s| *s == got);
            if !ok {
                let only = |x: &Value, y: &Value| -> Vec<String> {
                    x.as_array()
                        .unwrap()
                        .iter()
                        .filter(|p| !y.as_array().unwrap().contains(p))
                        .map(|p| p.to_string())
                        .collect()
                };
                panic!(
                    "round {round} life {life} (dir kept: {}): state after the kill matches neither {a} nor {} acknowledged steps\nonly in got: {:?}\nonly in expected[{a}]: {:?}\nonly in expected[{}]: {:?}",
                    dir.display(),
                    a + 1,
                    only(&got, &states[a]),
                    only(&states[a], &got),
                    a + 1,
                    states.get(a + 1).map(|s| only(s, &got)),
                );
            }
            // The in-flight step may have landed: continue after it.
            if states.get(a + 1).is_some_and(|s| *s == got) && got != states[a] {
                acked += 1;
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&base);
    assert!(kills >= rounds, "only {kills} kills in {rounds} rounds");
    assert!(mid_workload * 2 >= kills, "most kills came after the workload ended ({mid_workload} of {kills})");
}
