//! Helpers shared by integration tests: where the differential corpus lives, and cheap copies
//! of shard directory trees (Qdrant preallocates files of tens of MiB that are almost all holes;
//! copies skip all-zero 4 KiB blocks so they stay sparse, on disk and in a `MemoryStorage`).

#![allow(dead_code)]

pub mod cases;
pub mod ranked;

use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use qdrant_edge_wasm::api::dispatch;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::{OpenMode, Storage};
use serde_json::{json, Value};

/// Block granularity of the sparse copies.
pub const BLOCK: usize = 4096;
/// Read size (a multiple of BLOCK).
const CHUNK: usize = 1 << 20;
static ZEROS: [u8; BLOCK] = [0u8; BLOCK];

/// The command that (re)generates the corpus.
pub const GENERATOR: &str = ".venv/bin/python tests/corpus/generate.py \
    (any python with qdrant-edge-py 0.9.0 and numpy; `--out DIR` or QEW_CORPUS picks the directory)";

/// `$QEW_CORPUS`, else `<crate root>/target/corpus`.
pub fn corpus_dir() -> PathBuf {
    match std::env::var_os("QEW_CORPUS") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("corpus"),
    }
}

/// Calls `f(offset, bytes)` for every maximal run of 4 KiB blocks of the file at `path` that
/// are not all zero (the last block may be short). Returns the file length.
pub fn for_each_data_run(path: &Path, mut f: impl FnMut(u64, &[u8]) -> Result<(), String>) -> Result<u64, String> {
    let mut file = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    let len = file.metadata().map_err(|e| format!("stat {}: {e}", path.display()))?.len();
    let mut buf = vec![0u8; CHUNK];
    let mut pos: u64 = 0;
    while pos < len {
        let want = usize::try_from((len - pos).min(CHUNK as u64)).map_err(|e| e.to_string())?;
        file.read_exact(&mut buf[..want]).map_err(|e| format!("read {} at {pos}: {e}", path.display()))?;
        let mut run_start: Option<usize> = None;
        let mut i = 0;
        while i < want {
            let end = (i + BLOCK).min(want);
            // slice equality is a memcmp, fast even in debug builds
            let zero = buf[i..end] == ZEROS[..end - i];
            match (zero, run_start) {
                (false, None) => run_start = Some(i),
                (true, Some(s)) => {
                    f(pos + s as u64, &buf[s..i])?;
                    run_start = None;
                }
                _ => {}
            }
            i = end;
        }
        if let Some(s) = run_start {
            f(pos + s as u64, &buf[s..want])?;
        }
        pos += want as u64;
    }
    Ok(len)
}

/// Relative `/`-separated paths of every file and directory below `root`, sorted, directories
/// before their contents.
pub fn walk(root: &Path) -> Result<Vec<(String, bool)>, String> {
    fn go(root: &Path, rel: &str, out: &mut Vec<(String, bool)>) -> Result<(), String> {
        let dir = if rel.is_empty() { root.to_path_buf() } else { root.join(rel) };
        let mut entries: Vec<_> = fs::read_dir(&dir)
            .map_err(|e| format!("read_dir {}: {e}", dir.display()))?
            .collect::<Result<_, _>>()
            .map_err(|e| format!("read_dir {}: {e}", dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().into_string().map_err(|n| format!("non-UTF-8 name {n:?}"))?;
            let child = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            let ty = e.file_type().map_err(|e| format!("stat {child}: {e}"))?;
            if ty.is_dir() {
                out.push((child.clone(), true));
                go(root, &child, out)?;
            } else if ty.is_file() {
                out.push((child, false));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    go(root, "", &mut out)?;
    Ok(out)
}

/// Copy the tree at `src` into `dst` (a storage root), keeping zero blocks as holes.
/// Returns the number of bytes actually written.
pub fn copy_dir_to_storage(src: &Path, dst: &dyn Storage) -> Result<u64, String> {
    let mut written = 0u64;
    for (rel, is_dir) in walk(src)? {
        if is_dir {
            dst.create_dir_all(&rel).map_err(|e| format!("create_dir_all {rel}: {e}"))?;
            continue;
        }
        let file = dst.open(&rel, OpenMode::Create).map_err(|e| format!("open {rel}: {e}"))?;
        let len = for_each_data_run(&src.join(&rel), |off, data| {
            written += data.len() as u64;
            file.write_at(off, data).map_err(|e| format!("write {rel} at {off}: {e}"))
        })?;
        file.set_len(len).map_err(|e| format!("set_len {rel}: {e}"))?;
    }
    Ok(written)
}

/// Copy the tree at `src` to a new directory `dst` on disk, keeping zero blocks as holes.
pub fn copy_dir_sparse(src: &Path, dst: &Path) -> Result<(), String> {
    fs::create_dir_all(dst).map_err(|e| format!("mkdir {}: {e}", dst.display()))?;
    for (rel, is_dir) in walk(src)? {
        let to = dst.join(&rel);
        if is_dir {
            fs::create_dir_all(&to).map_err(|e| format!("mkdir {}: {e}", to.display()))?;
            continue;
        }
        let mut out = File::create(&to).map_err(|e| format!("create {}: {e}", to.display()))?;
        let len = for_each_data_run(&src.join(&rel), |off, data| {
            out.seek(SeekFrom::Start(off)).map_err(|e| format!("seek {}: {e}", to.display()))?;
            out.write_all(data).map_err(|e| format!("write {}: {e}", to.display()))
        })?;
        out.set_len(len).map_err(|e| format!("set_len {}: {e}", to.display()))?;
    }
    Ok(())
}

/// The Python that runs the qdrant-edge-py oracle: `$QEW_PYTHON`, else the crate's `.venv`
/// (made by `scripts/setup.sh`). Panics, naming the interpreter, when it cannot import
/// `qdrant_edge` — the oracle tests must fail, never skip.
pub fn oracle_python() -> PathBuf {
    static CHECKED: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CHECKED
        .get_or_init(|| {
            let py = std::env::var_os("QEW_PYTHON")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")));
            let ok = std::process::Command::new(&py)
                .args(["-c", "import qdrant_edge"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(
                ok,
                "{} cannot import qdrant_edge: run scripts/setup.sh or set QEW_PYTHON to a Python with qdrant-edge-py 0.9.0",
                py.display()
            );
            py
        })
        .clone()
}

/// Run `tests/corpus/<script>` with the oracle interpreter and parse the JSON it prints; a
/// failing script fails the test with its output.
pub fn run_oracle_script(script: &str, args: &[&str]) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus").join(script);
    let out = std::process::Command::new(oracle_python()).arg(&path).args(args).output().expect("run python");
    assert!(
        out.status.success(),
        "python {script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// Our engine's answer to a quantization oracle's request (`tests/corpus/binary_quant_oracle.py
/// query`: `{"using", "vector", "limit", "params", "filter": null | {"g": value}}`), as
/// `(id, score)` pairs.
pub fn oracle_query(shard: &EdgeShard, r: &Value) -> Vec<(u64, f64)> {
    let res = dispatch(shard, "query", &oracle_body(r)).unwrap();
    res["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_u64().unwrap(), p["score"].as_f64().unwrap()))
        .collect()
}

/// The REST query body of a quantization oracle's request (see [`oracle_query`]).
pub fn oracle_body(r: &Value) -> Value {
    let mut body = json!({"query": r["vector"], "using": r["using"], "limit": r["limit"], "with_payload": false,
        "params": r["params"]});
    if let Some(g) = r["filter"].get("g") {
        body["filter"] = json!({"must": [{"key": "g", "match": {"value": g}}]});
    }
    body
}

/// An oracle script's answers, `[[[id, score], ...], ...]`.
pub fn parse_oracle_answers(v: &Value) -> Vec<Vec<(u64, f64)>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_array().unwrap().iter().map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap())).collect())
        .collect()
}

/// A quantization oracle's requests (see [`oracle_query`]): every query of `made["queries"]`
/// for each of `names`, with every `(params, filter)` of `param_sets`, limit 10.
pub fn oracle_requests(made: &Value, names: &[String], param_sets: &[(Value, Value)]) -> Vec<Value> {
    let mut reqs = Vec::new();
    for name in names {
        for v in made["queries"][name.as_str()].as_array().unwrap() {
            for (params, filter) in param_sets {
                reqs.push(json!({"using": name, "vector": v, "limit": 10, "params": params, "filter": filter}));
            }
        }
    }
    reqs
}

/// An oracle script's answers (`<script> query <shard> <requests.json>`) to `reqs` on a fresh
/// load of `shard`; the requests file is written into `tmp`.
pub fn oracle_answers(script: &str, tmp: &Path, shard: &Path, reqs: &[Value]) -> Vec<Vec<(u64, f64)>> {
    let req_file = tmp.join("reqs.json");
    fs::write(&req_file, serde_json::to_vec(reqs).unwrap()).unwrap();
    parse_oracle_answers(&run_oracle_script(script, &["query", shard.to_str().unwrap(), req_file.to_str().unwrap()]))
}

/// A shard's segment directories (`segments/<uuid>`).
pub fn segment_dirs(st: &dyn Storage) -> Vec<String> {
    st.list_dir("segments")
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == qdrant_edge_wasm::storage::EntryKind::Dir)
        .map(|e| format!("segments/{}", e.name))
        .collect()
}

/// [`segment_dirs`] split into the optimized ones (with an `id_tracker.mappings`, Qdrant's
/// immutable id tracker) and the appendable ones.
pub fn split_segment_dirs(st: &dyn Storage) -> (Vec<String>, Vec<String>) {
    segment_dirs(st).into_iter().partition(|dir| st.is_file(&format!("{dir}/id_tracker.mappings")).unwrap())
}

/// The shard's only optimized segment directory (fails the test unless there is exactly one).
pub fn optimized_segment(st: &dyn Storage) -> String {
    let (mut optimized, _) = split_segment_dirs(st);
    assert_eq!(optimized.len(), 1, "one optimized segment: {optimized:?}");
    optimized.pop().unwrap()
}

/// The shard's (optimized, appendable) segment directories (fails the test unless there is
/// exactly one of each).
pub fn optimized_and_appendable(st: &dyn Storage) -> (String, String) {
    let (mut optimized, mut appendable) = split_segment_dirs(st);
    assert_eq!(
        (optimized.len(), appendable.len()),
        (1, 1),
        "one optimized and one appendable segment: {optimized:?} {appendable:?}"
    );
    (optimized.pop().unwrap(), appendable.pop().unwrap())
}
