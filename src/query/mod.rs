//! Filters, JSON paths and point selection; pure functions over payloads.
//!
//! * [`json_path`]: Qdrant's payload path grammar and lookup.
//! * [`filter`]: the filter language (strict REST JSON parsing, serialization, evaluation).
//! * [`geo`]: bounding box / radius / polygon geometry.
//! * [`text`]: full-text tokenization for `match.text` / `text_any` / `phrase`.

pub mod filter;
pub mod geo;
pub mod json_path;
pub mod text;

pub use filter::{parse_filter, Condition, FieldCondition, Filter, FilterContext, IndexKind, Match, PointContext};
pub use json_path::JsonPath;
