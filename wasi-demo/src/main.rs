//! `wasi-demo <shard-dir> <command> [json | archive [sha256]]`: the command-line front end of qdrant-edge-wasm.
//!
//! The same binary runs natively and under WASI (`wasmtime run --dir <host>::<guest>`). The JSON
//! argument is the body of the matching Qdrant REST request; stdout gets exactly the JSON a
//! Qdrant server puts in `result`. On failure stderr gets `{"error":{"code","message",...}}`
//! and the exit code is 2 for bad input (usage, malformed request) and 1 for anything else.
//! The command set and formats are a stable contract, documented in the README.

use std::io::{BufRead, Read};
use std::process::ExitCode;
use std::sync::Arc;

use qdrant_edge_wasm::api::{dispatch, dispatch_update, READ_COMMANDS, UPDATE_COMMANDS};
use qdrant_edge_wasm::format::segment_meta::EdgeConfig;
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::snapshot::ApplyOptions;
use qdrant_edge_wasm::storage::FsStorage;
use qdrant_edge_wasm::{Error, ErrorKind};
use serde_json::{json, Value};

const USAGE: &str = "usage: wasi-demo <shard-dir> <command> [json]\n\
read commands: info, query, query_batch, search, scroll, count, facet, retrieve\n\
write commands: create <edge config>, upsert (points from stdin, one per line), update <batch body>,\n\
  delete, set_payload, overwrite_payload, delete_payload, clear_payload, update_vectors, delete_vectors,\n\
  create_index <body>, delete_index <field>, flush, optimize\n\
snapshot commands: manifest, unpack <archive> [sha256], apply <archive> [sha256] (archive `-` = stdin)\n\
json: the REST request body (read from stdin when given as `-`)";

/// Points per WAL entry for `upsert` from stdin.
const UPSERT_BATCH: usize = 256;

fn fail(e: &Error) -> ExitCode {
    eprintln!("{}", json!({ "error": e.to_json() }));
    if e.kind() == ErrorKind::InvalidArgument {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

fn read_body(arg: Option<&str>, default: Value) -> Result<Value, Error> {
    let text = match arg {
        None => return Ok(default),
        Some("-") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(|e| Error::invalid(format!("cannot read stdin: {e}")))?;
            s
        }
        Some(t) => t.to_string(),
    };
    serde_json::from_str(&text).map_err(|e| Error::invalid_field("body", format!("not valid JSON: {e}")))
}

/// The archive argument of `unpack` / `apply`: a path, or `-` for stdin.
fn archive_reader(arg: Option<&str>) -> Result<Box<dyn Read>, Error> {
    match arg {
        None => Err(Error::invalid_field("archive", "give the snapshot archive path (or `-` for stdin)")),
        Some("-") => Ok(Box::new(std::io::stdin().lock())),
        Some(p) => std::fs::File::open(p)
            .map(|f| Box::new(std::io::BufReader::with_capacity(1 << 20, f)) as Box<dyn Read>)
            .map_err(|e| Error::NotFound(format!("snapshot archive `{p}`: {e}"))),
    }
}

fn snapshot_options(args: &[String]) -> Result<ApplyOptions, Error> {
    let sha256 = args.get(3).cloned();
    if let Some(h) = &sha256 {
        if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Error::invalid_field("sha256", "expected 64 hexadecimal digits"));
        }
    }
    Ok(ApplyOptions { sha256, ..ApplyOptions::default() })
}

fn run(args: &[String]) -> Result<Value, Error> {
    let (dir, command) = (&args[0], args[1].as_str());
    if args.len() > 3 && !matches!(command, "unpack" | "apply") {
        return Err(Error::invalid_field("command", format!("too many arguments\n{USAGE}")));
    }
    if command == "unpack" {
        std::fs::create_dir_all(dir).map_err(|e| Error::invalid_field("shard-dir", format!("`{dir}`: {e}")))?;
    }
    let storage = Arc::new(FsStorage::new(dir)?);
    let arg = args.get(2).map(String::as_str);
    match command {
        "manifest" => {
            let mut shard = EdgeShard::load(storage, "")?;
            let m = shard.snapshot_manifest()?;
            serde_json::to_value(m).map_err(|e| Error::Internal(e.to_string()))
        }
        "unpack" => {
            let options = snapshot_options(args)?;
            let (mut shard, report) = EdgeShard::unpack_snapshot(storage, "", archive_reader(arg)?, options)?;
            shard.close()?;
            Ok(qdrant_edge_wasm::api::report_json(&report))
        }
        "apply" => {
            let options = snapshot_options(args)?;
            let reader = archive_reader(arg)?;
            let mut shard = EdgeShard::load(storage, "")?;
            let report = shard.update_from_snapshot(reader, options)?;
            shard.close()?;
            Ok(qdrant_edge_wasm::api::report_json(&report))
        }
        "create" => {
            let body = read_body(arg, json!({}))?;
            let config: EdgeConfig = qdrant_edge_wasm::api::requests::parse(&body)?;
            EdgeShard::create(storage, "", config)?.close()?;
            Ok(json!(true))
        }
        "flush" => {
            EdgeShard::load(storage, "")?.close()?;
            Ok(json!(true))
        }
        "optimize" => Ok(json!(EdgeShard::load(storage, "")?.optimize()?)),
        "upsert" if arg.is_none() => {
            let mut shard = EdgeShard::load(storage, "")?;
            let mut batch = Vec::new();
            let mut last = json!(null);
            let stdin = std::io::stdin();
            for (n, line) in stdin.lock().lines().enumerate() {
                let line = line.map_err(|e| Error::invalid(format!("cannot read stdin: {e}")))?;
                if line.trim().is_empty() {
                    continue;
                }
                let p: Value = serde_json::from_str(&line)
                    .map_err(|e| Error::invalid_field(format!("line {}", n + 1), format!("not valid JSON: {e}")))?;
                batch.push(p);
                if batch.len() == UPSERT_BATCH {
                    last = dispatch_update(&mut shard, "upsert", &json!({ "points": std::mem::take(&mut batch) }))?;
                }
            }
            if !batch.is_empty() {
                last = dispatch_update(&mut shard, "upsert", &json!({ "points": batch }))?;
            }
            persist(&mut shard)?;
            Ok(last)
        }
        "delete_index" => {
            let field = arg.ok_or_else(|| Error::invalid_field("field_name", "delete_index needs the field name"))?;
            let mut shard = EdgeShard::load(storage, "")?;
            let result = dispatch_update(&mut shard, "delete_index", &json!(field))?;
            persist(&mut shard)?;
            Ok(result)
        }
        c if UPDATE_COMMANDS.contains(&c) => {
            let body = read_body(arg, json!({}))?;
            let mut shard = EdgeShard::load(storage, "")?;
            let result = dispatch_update(&mut shard, c, &body)?;
            persist(&mut shard)?;
            Ok(result)
        }
        c if READ_COMMANDS.contains(&c) => {
            let body = read_body(arg, if c == "info" { Value::Null } else { json!({}) })?;
            let shard = EdgeShard::load(storage, "")?;
            dispatch(&shard, c, &body)
        }
        other => Err(Error::invalid_field("command", format!("unknown command `{other}`\n{USAGE}"))),
    }
}

/// Make the updates of this process durable before it reports them: the WAL already holds
/// them when the shard has one; a shard created with `wal_enabled: false` is flushed.
fn persist(shard: &mut EdgeShard) -> Result<(), Error> {
    if !shard.has_wal()? {
        shard.close()?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 4 || args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    match run(&args) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
