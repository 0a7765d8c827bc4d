//! The format layer: one module per Qdrant on-disk structure.
//!
//! Each module documents its byte layout (see `../shared/reference/qdrant-formats.md` for the
//! spec it follows), decodes explicitly from little-endian bytes (never through `usize`, so a
//! wasm32 reader decodes 64-bit writers' `usize` fields as `u64`), and reports problems as
//! [`FormatError`](crate::error::FormatError)s naming the file.

pub mod le;
pub mod names;

pub mod binary_quantized;
pub mod binary_quantized_write;
pub mod chunked;
pub mod dense;
pub mod field_index_write;
pub mod flags;
pub mod fmph;
pub mod gridstore;
pub mod gridstore_write;
pub mod hnsw;
pub mod hnsw_write;
pub mod id_tracker;
pub mod immutable_index;
pub mod multi_quantized;
pub mod multivector;
pub mod payload_index;
pub mod product_quantized;
pub mod quantized;
pub mod scalar_quantized_write;
pub mod segment_meta;
pub mod segment_write;
pub mod sparse;
pub mod sparse_index;

pub mod cbor;
pub mod wal;
pub mod wal_write;
