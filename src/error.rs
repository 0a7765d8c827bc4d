//! Error types, one enum per layer, and the small public kind taxonomy.
//!
//! Inside the crate each layer reports what failed and where (the storage call and path, the
//! file and byte offset of a format problem, the JSON field of a bad request). At the public
//! edge every error has a stable [`ErrorKind`] code, mirroring Qdrant Edge's FFI kinds with a
//! little more detail so callers can react (e.g. `Corrupted` vs `InvalidArgument`).

use std::fmt;

/// Stable, coarse error classification exposed to callers (and later to JS as `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request is malformed or names something that does not exist in the config.
    InvalidArgument,
    /// A file or directory the engine needs is missing.
    NotFound,
    /// Bytes on storage do not decode as the format says they must.
    Corrupted,
    /// A valid Qdrant format or feature this engine does not implement.
    Unsupported,
    /// The storage backend failed (I/O error, disk full, quota, lost handle).
    Io,
    /// The shard was closed, or a previous I/O failure made it unusable.
    ShardClosed,
    /// Anything else that is a bug in this engine rather than in the input.
    Internal,
}

impl ErrorKind {
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotFound => "not_found",
            ErrorKind::Corrupted => "corrupted",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Io => "io",
            ErrorKind::ShardClosed => "shard_closed",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// What went wrong in a storage backend call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageErrorKind {
    NotFound,
    AlreadyExists,
    NotADirectory,
    IsADirectory,
    /// Read past the end of a file.
    UnexpectedEof,
    /// The backend is out of space or quota.
    StorageFull,
    /// An earlier failure made this backend (or file) unusable; see redb's `PreviousIo`.
    PreviousIo,
    InvalidPath,
    Unsupported,
    Other,
}

/// A failed storage operation: which call, which path, and why.
#[derive(Debug, Clone, thiserror::Error)]
#[error("storage {op} `{path}`: {kind:?}: {message}")]
pub struct StorageError {
    pub op: &'static str,
    pub path: String,
    pub kind: StorageErrorKind,
    pub message: String,
}

impl StorageError {
    pub fn new(op: &'static str, path: impl Into<String>, kind: StorageErrorKind, message: impl Into<String>) -> Self {
        StorageError { op, path: path.into(), kind, message: message.into() }
    }

    pub fn from_io(op: &'static str, path: impl Into<String>, e: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        let kind = match e.kind() {
            K::NotFound => StorageErrorKind::NotFound,
            K::AlreadyExists => StorageErrorKind::AlreadyExists,
            K::UnexpectedEof => StorageErrorKind::UnexpectedEof,
            K::StorageFull | K::QuotaExceeded => StorageErrorKind::StorageFull,
            K::NotADirectory => StorageErrorKind::NotADirectory,
            K::IsADirectory => StorageErrorKind::IsADirectory,
            K::Unsupported => StorageErrorKind::Unsupported,
            K::InvalidInput => StorageErrorKind::InvalidPath,
            _ => StorageErrorKind::Other,
        };
        StorageError::new(op, path, kind, e.to_string())
    }
}

/// Bytes that do not match the on-disk format.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{file}: {message}")]
pub struct FormatError {
    /// Path of the file (relative to the shard root where known).
    pub file: String,
    pub message: String,
    /// True when the format is valid Qdrant but not implemented here.
    pub unsupported: bool,
}

impl FormatError {
    pub fn corrupt(file: impl Into<String>, message: impl Into<String>) -> Self {
        FormatError { file: file.into(), message: message.into(), unsupported: false }
    }
    pub fn unsupported(file: impl Into<String>, message: impl Into<String>) -> Self {
        FormatError { file: file.into(), message: message.into(), unsupported: true }
    }
}

/// The crate's error type.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Format(#[from] FormatError),
    /// A malformed or inconsistent request. `field` names the offending JSON path when known.
    #[error("invalid argument{}: {message}", field.as_ref().map(|f| format!(" `{f}`")).unwrap_or_default())]
    InvalidArgument { field: Option<String>, message: String },
    #[error("not found: {0}")]
    NotFound(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("shard is closed")]
    ShardClosed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidArgument { field: None, message: message.into() }
    }
    pub fn invalid_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::InvalidArgument { field: Some(field.into()), message: message.into() }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Storage(e) => match e.kind {
                StorageErrorKind::NotFound => ErrorKind::NotFound,
                StorageErrorKind::PreviousIo => ErrorKind::ShardClosed,
                _ => ErrorKind::Io,
            },
            Error::Format(e) if e.unsupported => ErrorKind::Unsupported,
            Error::Format(_) => ErrorKind::Corrupted,
            Error::InvalidArgument { .. } => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Unsupported(_) => ErrorKind::Unsupported,
            Error::ShardClosed => ErrorKind::ShardClosed,
            Error::Internal(_) => ErrorKind::Internal,
        }
    }

    /// The error as the JSON object the CLI prints and the JS facade throws:
    /// `{"code": "...", "message": "...", "field"?: "..."}`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert("code".into(), self.kind().code().into());
        m.insert("message".into(), self.to_string().into());
        match self {
            Error::InvalidArgument { field: Some(f), .. } => {
                m.insert("field".into(), f.clone().into());
            }
            Error::Format(e) => {
                m.insert("file".into(), e.file.clone().into());
            }
            Error::Storage(e) => {
                m.insert("file".into(), e.path.clone().into());
            }
            _ => {}
        }
        serde_json::Value::Object(m)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
