//! Filters, JSON paths and point selection; pure functions over payloads.

pub mod json_path;
pub mod filter;
pub mod geo;
