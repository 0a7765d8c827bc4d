//! `wasi-demo <shard-dir> <command> [json]`: the command-line front end of qdrant-edge-wasm.
//!
//! The same binary runs natively and under WASI (`wasmtime run --dir <host>::<guest>`). The JSON
//! argument is the body of the matching Qdrant REST request; stdout gets exactly the JSON a
//! Qdrant server puts in `result`. On failure stderr gets `{"error":{"code","message",...}}`
//! and the exit code is 2 for bad input (usage, malformed request) and 1 for anything else.
//! The command set and formats are a stable contract, documented in the README.

use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

use qdrant_edge_wasm::api::{dispatch, READ_COMMANDS};
use qdrant_edge_wasm::shard::EdgeShard;
use qdrant_edge_wasm::storage::FsStorage;
use qdrant_edge_wasm::{Error, ErrorKind};
use serde_json::{json, Value};

const USAGE: &str = "usage: wasi-demo <shard-dir> <command> [json]\n\
commands: info, query, query_batch, search, scroll, count, facet, retrieve\n\
json: the REST request body (read from stdin when given as `-`)";

fn fail(e: &Error) -> ExitCode {
    eprintln!("{}", json!({ "error": e.to_json() }));
    if e.kind() == ErrorKind::InvalidArgument {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 2 || args.len() > 3 || args.iter().any(|a| a == "--help" || a == "-h") {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let (dir, command) = (&args[0], args[1].as_str());
    if !READ_COMMANDS.contains(&command) {
        return fail(&Error::invalid_field("command", format!("unknown command `{command}`\n{USAGE}")));
    }
    let body: Value = match args.get(2).map(String::as_str) {
        None => {
            if command == "info" {
                Value::Null
            } else {
                json!({})
            }
        }
        Some(text) => {
            let text = if text == "-" {
                let mut s = String::new();
                if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                    return fail(&Error::invalid(format!("cannot read stdin: {e}")));
                }
                s
            } else {
                text.to_string()
            };
            match serde_json::from_str(&text) {
                Ok(v) => v,
                Err(e) => return fail(&Error::invalid_field("body", format!("not valid JSON: {e}"))),
            }
        }
    };
    let storage = match FsStorage::new(dir) {
        Ok(s) => s,
        Err(e) => return fail(&e.into()),
    };
    let shard = match EdgeShard::load(Arc::new(storage), "") {
        Ok(s) => s,
        Err(e) => return fail(&e),
    };
    match dispatch(&shard, command, &body) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}
