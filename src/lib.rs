//! qdrant-edge-wasm: Qdrant Edge's `EdgeShard`, rebuilt for WebAssembly.
//!
//! Layers (dependencies point down; see ARCHITECTURE.md):
//! `storage` → `format` → `segment` → `query`/`spaces` → `index` → `shard` → `api`.

pub mod api;
pub mod error;
pub mod format;
pub mod index;
pub mod operations;
pub mod outbox;
pub mod query;
pub mod segment;
pub mod shard;
pub mod snapshot;
pub mod spaces;
pub mod storage;
pub mod types;
#[cfg(all(target_arch = "wasm32", target_os = "unknown"))]
pub mod web;

pub use error::{Error, ErrorKind, Result};
pub use shard::EdgeShard;
pub use storage::{Memory, Storage};
pub use types::{Distance, Payload, PointId, SparseVector, VectorValue};
