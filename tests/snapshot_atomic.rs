//! Snapshot apply is atomic, and hostile snapshots leave the shard untouched.
//!
//! 1. **Faults.** The shard restored from the server's `basic/full.snapshot` takes
//!    `partial1.snapshot` (a merge) and `full2.snapshot` (a replacement) while the N-th mutating
//!    storage operation fails (whole, or tearing the write), for every N of a clean apply. After
//!    a "restart" on the surviving bytes the shard loads, holds either exactly the old state or
//!    exactly the new one (points, payloads, vectors and the snapshot manifest), leaves no staging
//!    files behind, and there is one cut-over N below which every run gives the old state and
//!    from which every run gives the new one (the commit record). CI takes every 3rd N (both
//!    ways); `QEW_APPLY_FAULT_STEP=1` takes every N.
//! 2. **Kills.** A child process applying `partial1.snapshot` to a shard on the filesystem is
//!    SIGKILLed at random moments (`QEW_APPLY_KILL_ROUNDS`, default 40); each time the shard
//!    loads in the old or the new state.
//! 3. **Hostile snapshots** (built here, see `hostile_corpus`): each is refused with a typed
//!    error and the shard, on storage and in memory, is exactly as before.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::snapshot::ApplyOptions;
use qdrant_edge_wasm::storage::wrap::FaultStorage;
use qdrant_edge_wasm::storage::{FsStorage, MemoryStorage, Storage};
use qdrant_edge_wasm::ErrorKind;

fn fixture(file: &str) -> PathBuf {
    let shared = match std::env::var_os("QEW_SHARED") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("shared"),
    };
    shared.join("fixtures").join("basic").join(file)
}

fn bytes(file: &str) -> Vec<u8> {
    std::fs::read(fixture(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// Everything a user can observe, plus the files' versions.
fn state(shard: &mut EdgeShard) -> Value {
    let scroll = qdrant_edge_wasm::api::dispatch(
        shard,
        "scroll",
        &json!({"limit": 100000, "with_payload": true, "with_vector": true}),
    )
    .expect("scroll");
    let manifest = serde_json::to_value(shard.snapshot_manifest().expect("manifest")).unwrap();
    json!({"scroll": scroll, "manifest": manifest})
}

fn leftovers(st: &dyn Storage) -> Vec<String> {
    st.list_dir("").unwrap().into_iter().map(|e| e.name).filter(|n| n.starts_with('.')).collect()
}

/// The base shard: `full.snapshot` restored into memory.
fn base() -> MemoryStorage {
    let mem = MemoryStorage::new();
    EdgeShard::unpack_snapshot(Arc::new(mem.clone()), "", &bytes("full.snapshot")[..], ApplyOptions::default())
        .expect("unpack full.snapshot");
    mem
}

#[test]
fn a_fault_at_any_storage_operation_leaves_the_old_or_the_new_shard() {
    let base = base();
    let old = state(&mut EdgeShard::load(Arc::new(base.deep_clone()), "").unwrap());
    // Every 3rd operation by default (about a minute); QEW_APPLY_FAULT_STEP=1 covers every one.
    let step: u64 = std::env::var("QEW_APPLY_FAULT_STEP").ok().and_then(|v| v.parse().ok()).unwrap_or(3).max(1);
    for snap in ["partial1.snapshot", "full2.snapshot"] {
        let archive = bytes(snap);
        // Clean run, counting the mutating operations.
        let counter = FaultStorage::new(base.deep_clone());
        let mut shard = EdgeShard::load(Arc::new(counter.clone()), "").unwrap();
        let before = counter.ops();
        shard.update_from_snapshot(&archive[..], ApplyOptions::default()).unwrap();
        let total = counter.ops() - before;
        let new = state(&mut shard);
        assert_ne!(old, new, "{snap} changes nothing");
        assert!(total > 100, "{snap}: only {total} storage operations");

        let mut cut_over: Option<u64> = None;
        let mut runs = 0;
        let mut n = 0;
        while n < total {
            for tear in [false, true] {
                let mem = base.deep_clone();
                let faulty = FaultStorage::new(mem.clone());
                let mut shard = EdgeShard::load(Arc::new(faulty.clone()), "").unwrap();
                faulty.fail_at(faulty.ops() + n, tear);
                let r = shard.update_from_snapshot(&archive[..], ApplyOptions::default());
                assert!(faulty.has_failed(), "{snap}: fault {n} did not trigger");
                let err = r.expect_err("an apply whose storage failed reported success");
                assert!(
                    matches!(err.kind(), ErrorKind::Io | ErrorKind::ShardClosed),
                    "{snap}: fault {n}: error kind {:?}: {err}",
                    err.kind()
                );
                let mut reloaded = EdgeShard::load(Arc::new(mem.clone()), "")
                    .unwrap_or_else(|e| panic!("{snap}: fault {n} (tear {tear}): shard does not load: {e}"));
                assert!(leftovers(&mem).is_empty(), "{snap}: fault {n}: leftovers {:?}", leftovers(&mem));
                let got = state(&mut reloaded);
                let is_new = if got == old {
                    false
                } else if got == new {
                    true
                } else {
                    panic!("{snap}: fault {n} (tear {tear}): the shard is neither the old nor the new one");
                };
                match (is_new, cut_over) {
                    (true, None) => cut_over = Some(n),
                    (false, Some(c)) => panic!("{snap}: fault {n} gave the old shard after fault {c} gave the new"),
                    _ => {}
                }
                runs += 1;
            }
            n += step;
        }
        let c = cut_over.expect("no fault position gave the new shard");
        eprintln!("{snap}: {total} storage operations, {runs} faulty runs, commit at operation {c}");
        assert!(c > 0 && c < total);
    }
}

// ---- kills ------------------------------------------------------------------------------------

#[test]
fn sigkill_during_apply() {
    if let Ok(dir) = std::env::var("QEW_APPLY_KILL_CHILD") {
        let mut shard = EdgeShard::load(Arc::new(FsStorage::new(&dir).unwrap()), "").unwrap();
        println!("start");
        shard.update_from_snapshot(&bytes("partial1.snapshot")[..], ApplyOptions::default()).unwrap();
        println!("applied");
        return;
    }
    let rounds: usize = std::env::var("QEW_APPLY_KILL_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(40);
    let old = state(&mut EdgeShard::load(Arc::new(base()), "").unwrap());
    let new = {
        let mem = base();
        let mut s = EdgeShard::load(Arc::new(mem), "").unwrap();
        s.update_from_snapshot(&bytes("partial1.snapshot")[..], ApplyOptions::default()).unwrap();
        state(&mut s)
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("target/apply-kill-{}", std::process::id()));
    let template = root.join("template");
    let _ = std::fs::remove_dir_all(&root);
    EdgeShard::unpack_snapshot(
        Arc::new(FsStorage::new(&template).unwrap()),
        "",
        &bytes("full.snapshot")[..],
        ApplyOptions::default(),
    )
    .unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x2545F4914F6CDD1D;
    let mut rng = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    // How long a whole apply takes in a child, to spread the kills over it.
    let t = Instant::now();
    {
        let dir = root.join("timing");
        common::copy_dir_sparse(&template, &dir).unwrap();
        let st = Command::new(&exe)
            .args(["--exact", "sigkill_during_apply", "--nocapture", "--test-threads", "1"])
            .env("QEW_APPLY_KILL_CHILD", &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(st.success());
    }
    let full_us = t.elapsed().as_micros() as u64;
    let (mut olds, mut news) = (0, 0);
    for round in 0..rounds {
        let dir = root.join(format!("r{round}"));
        common::copy_dir_sparse(&template, &dir).unwrap();
        let mut c = Command::new(&exe)
            .args(["--exact", "sigkill_during_apply", "--nocapture", "--test-threads", "1"])
            .env("QEW_APPLY_KILL_CHILD", &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let delay = Duration::from_micros(rng() % (full_us + 1));
        let stdout = c.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout).lines().map_while(Result::ok).any(|l| l.contains("applied"))
        });
        let t0 = Instant::now();
        while t0.elapsed() < delay && c.try_wait().unwrap().is_none() {
            std::thread::sleep(Duration::from_micros(200));
        }
        if c.try_wait().unwrap().is_none() {
            c.kill().unwrap();
        }
        c.wait().unwrap();
        let applied = reader.join().unwrap();
        let storage = Arc::new(FsStorage::new(&dir).unwrap());
        let mut shard = EdgeShard::load(storage.clone(), "")
            .unwrap_or_else(|e| panic!("round {round}: shard does not load after a kill: {e}"));
        assert!(leftovers(&*storage).is_empty(), "round {round}: leftovers {:?}", leftovers(&*storage));
        let got = state(&mut shard);
        if got == new {
            news += 1;
        } else if got == old {
            assert!(!applied, "round {round}: the child reported the apply done but the shard is the old one");
            olds += 1;
        } else {
            panic!("round {round}: after a kill the shard is neither the old nor the new one");
        }
        drop(shard);
        std::fs::remove_dir_all(&dir).unwrap();
    }
    eprintln!("{rounds} kills during apply (a whole apply takes {full_us} µs in a child): {olds} old, {news} new");
    let _ = std::fs::remove_dir_all(&root);
}

// ---- hostile snapshots ------------------------------------------------------------------------

/// Rewrite the tar `src` through `edit(path, data) -> entries to write instead`.
fn rewrite(src: &[u8], mut edit: impl FnMut(&str, Vec<u8>) -> Vec<(String, Vec<u8>)>) -> Vec<u8> {
    let mut out = tar::Builder::new(Vec::new());
    let mut ar = tar::Archive::new(src);
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let is_dir = e.header().entry_type().is_dir();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut data).unwrap();
        if is_dir {
            if edit(&path, Vec::new()).is_empty() {
                continue;
            }
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_size(0);
            h.set_mode(0o755);
            out.append_data(&mut h, &path, &[][..]).unwrap();
            continue;
        }
        for (p, d) in edit(&path, data) {
            let mut h = tar::Header::new_gnu();
            h.set_size(d.len() as u64);
            h.set_mode(0o644);
            if p.contains("..") {
                // The tar crate refuses such names; write the raw bytes, as an attacker would.
                let name = &mut h.as_gnu_mut().unwrap().name;
                name[..p.len()].copy_from_slice(p.as_bytes());
                h.set_cksum();
                out.append(&h, &d[..]).unwrap();
            } else {
                out.append_data(&mut h, &p, &d[..]).unwrap();
            }
        }
    }
    out.into_inner().unwrap()
}

fn json_edit(data: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(data).unwrap();
    f(&mut v);
    serde_json::to_vec(&v).unwrap()
}

/// (name, archive, expected error kind, a word the message must contain)
fn hostile_corpus() -> Vec<(String, Vec<u8>, ErrorKind, &'static str)> {
    let partial = bytes("partial1.snapshot");
    let full = bytes("full2.snapshot");
    let keep = |p: &str, d: Vec<u8>| vec![(p.to_string(), d)];
    let mut out: Vec<(String, Vec<u8>, ErrorKind, &'static str)> = Vec::new();
    let mut add = |name: &str, a: Vec<u8>, k: ErrorKind, w: &'static str| out.push((name.to_string(), a, k, w));

    // Manifests.
    add(
        "manifest names another segment",
        rewrite(&partial, |p, d| {
            if p.ends_with("segment_manifest.json") {
                keep(p, json_edit(&d, |v| v["segment_id"] = json!("00000000-0000-0000-0000-000000000000")))
            } else {
                keep(p, d)
            }
        }),
        ErrorKind::Corrupted,
        "names segment",
    );
    add(
        "file version above the segment version",
        rewrite(&partial, |p, d| {
            if p.ends_with("segment_manifest.json") {
                keep(
                    p,
                    json_edit(&d, |v| {
                        let sv = v["segment_version"].as_u64().unwrap();
                        let (_, first) = v["file_versions"].as_object_mut().unwrap().iter_mut().next().unwrap();
                        *first = json!(sv + 1);
                    }),
                )
            } else {
                keep(p, d)
            }
        }),
        ErrorKind::Corrupted,
        "above the segment version",
    );
    add(
        "manifest is not JSON",
        rewrite(
            &partial,
            |p, d| if p.ends_with("segment_manifest.json") { keep(p, b"{nope".to_vec()) } else { keep(p, d) },
        ),
        ErrorKind::Corrupted,
        "segment manifest",
    );
    add(
        "manifest path escapes the segment",
        rewrite(&partial, |p, d| {
            if p.ends_with("segment_manifest.json") {
                keep(p, json_edit(&d, |v| v["file_versions"]["../../evil"] = json!(null)))
            } else {
                keep(p, d)
            }
        }),
        ErrorKind::Corrupted,
        "relative path",
    );
    add(
        "file not in the manifest",
        rewrite(&partial, |p, d| {
            let mut v = keep(p, d);
            if p.ends_with("/files/version.info") {
                let extra = p.replace("version.info", "payload_storage/extra.dat");
                v.push((extra, b"x".to_vec()));
            }
            v
        }),
        ErrorKind::Corrupted,
        "not listed",
    );
    {
        let mut first = true;
        add(
            "one segment without a manifest",
            rewrite(&partial, |p, d| {
                if p.ends_with("segment_manifest.json") && first {
                    first = false;
                    vec![]
                } else {
                    keep(p, d)
                }
            }),
            ErrorKind::Corrupted,
            "without segment_manifest.json",
        );
    }
    // Contents that do not make a shard.
    add(
        "corrupt segment.json",
        rewrite(&full, |p, d| if p.ends_with("/files/segment.json") { keep(p, b"{}".to_vec()) } else { keep(p, d) }),
        ErrorKind::InvalidArgument,
        "loadable",
    );
    add(
        "truncated id tracker",
        rewrite(&full, |p, d| {
            if p.ends_with("id_tracker.mappings") {
                keep(p, d[..d.len() / 2].to_vec())
            } else {
                keep(p, d)
            }
        }),
        ErrorKind::InvalidArgument,
        "loadable",
    );
    add(
        "no wal",
        rewrite(&full, |p, d| if p.starts_with("wal") { vec![] } else { keep(p, d) }),
        ErrorKind::Corrupted,
        "WAL",
    );
    // Archive structure (the unpacker's own corpus is in snapshot_unpack.rs).
    add(
        "path escapes",
        rewrite(&full, |p, d| if p == "shard_config.json" { keep("segments/../../evil", d) } else { keep(p, d) }),
        ErrorKind::InvalidArgument,
        "evil",
    );
    add(
        "entry outside the shard layout",
        rewrite(&full, |p, d| if p == "shard_config.json" { keep("etc/passwd", d) } else { keep(p, d) }),
        ErrorKind::InvalidArgument,
        "etc/passwd",
    );
    add(
        "duplicate entry",
        rewrite(
            &full,
            |p, d| if p == "shard_config.json" { vec![(p.into(), d.clone()), (p.into(), d)] } else { keep(p, d) },
        ),
        ErrorKind::InvalidArgument,
        "shard_config.json",
    );
    let mut symlink = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_size(0);
    symlink.append_link(&mut h, "segments/a/files/x", "/etc/passwd").unwrap();
    add("symlink", symlink.into_inner().unwrap(), ErrorKind::InvalidArgument, "segments/a/files/x");
    add("truncated", full[..full.len() / 2].to_vec(), ErrorKind::Corrupted, "truncated");
    let gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut e, &full).unwrap();
        e.finish().unwrap()
    };
    add("gzip cut short", gz[..gz.len() - 100].to_vec(), ErrorKind::Corrupted, "gzip");
    add("empty", Vec::new(), ErrorKind::Corrupted, "empty");
    out
}

fn tree(st: &dyn Storage) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![String::new()];
    while let Some(d) = stack.pop() {
        for e in st.list_dir(&d).unwrap() {
            let p = if d.is_empty() { e.name.clone() } else { format!("{d}/{}", e.name) };
            match e.kind {
                qdrant_edge_wasm::storage::EntryKind::Dir => stack.push(p),
                qdrant_edge_wasm::storage::EntryKind::File => {
                    let data = st.read_all(&p).unwrap().to_vec();
                    out.push((p, data));
                }
            }
        }
    }
    out.sort();
    out
}

#[test]
fn hostile_snapshots_are_refused_and_the_shard_is_untouched() {
    let corpus = hostile_corpus();
    assert!(corpus.len() >= 15);
    let tmp = tempfile::tempdir().unwrap();
    for backend in ["memory", "fs"] {
        let st: Arc<dyn Storage> = match backend {
            "memory" => Arc::new(base()),
            _ => {
                let dir = tmp.path().join("fs");
                let st = Arc::new(FsStorage::new(&dir).unwrap());
                EdgeShard::unpack_snapshot(st.clone(), "", &bytes("full.snapshot")[..], ApplyOptions::default())
                    .unwrap();
                st
            }
        };
        let mut shard = EdgeShard::load(st.clone(), "").unwrap();
        let before_state = state(&mut shard);
        let before_tree = tree(&*st);
        for (name, archive, kind, word) in &corpus {
            let err = shard
                .update_from_snapshot(&archive[..], ApplyOptions::default())
                .err()
                .unwrap_or_else(|| panic!("{backend}: `{name}` was accepted"));
            assert_eq!(err.kind(), *kind, "{backend}: `{name}`: {err}");
            assert!(err.to_string().contains(word), "{backend}: `{name}`: `{err}` does not mention `{word}`");
            assert_eq!(state(&mut shard), before_state, "{backend}: `{name}` changed the live shard");
            assert!(tree(&*st) == before_tree, "{backend}: `{name}` changed the stored shard");
        }
        // A wrong checksum too.
        let err = shard
            .update_from_snapshot(
                &bytes("partial1.snapshot")[..],
                ApplyOptions { sha256: Some("0".repeat(64)), ..ApplyOptions::default() },
            )
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{err}");
        assert!(tree(&*st) == before_tree);
        // And the shard still takes the real one afterwards.
        let sha = {
            use sha2::Digest;
            let d = sha2::Sha256::digest(bytes("partial1.snapshot"));
            d.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        shard
            .update_from_snapshot(
                &bytes("partial1.snapshot")[..],
                ApplyOptions { sha256: Some(sha), ..ApplyOptions::default() },
            )
            .unwrap();
        assert_ne!(state(&mut shard), before_state);
    }
}
