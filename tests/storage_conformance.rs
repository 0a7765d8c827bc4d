//! The storage conformance battery on every backend available on this target.

use qdrant_edge_wasm::storage::{conformance, wrap::FaultStorage, MemoryStorage};

#[test]
fn memory_backend_conforms() {
    let passed = conformance::run_all(MemoryStorage::new).unwrap();
    assert_eq!(passed.len(), conformance::checks::<MemoryStorage>().len());
}

#[test]
fn memory_backend_keeps_holes_sparse() {
    use qdrant_edge_wasm::storage::{OpenMode, Storage};
    let s = MemoryStorage::new();
    let f = s.open("chunk_0.mmap", OpenMode::Create).unwrap();
    f.set_len(32 << 20).unwrap();
    f.write_at(4096 * 3 + 10, &[1, 2, 3]).unwrap();
    assert_eq!(f.len().unwrap(), 32 << 20);
    assert_eq!(s.stored_bytes(), 4096, "a 32 MiB preallocated file with 3 bytes must store one page");
}

#[test]
fn fault_wrapper_without_faults_conforms() {
    let passed = conformance::run_all(|| FaultStorage::new(MemoryStorage::new())).unwrap();
    assert!(!passed.is_empty());
}

#[cfg(feature = "fs")]
#[test]
fn fs_backend_conforms() {
    use qdrant_edge_wasm::storage::FsStorage;
    let dirs: std::cell::RefCell<Vec<tempfile::TempDir>> = Default::default();
    let passed = conformance::run_all(|| {
        let d = tempfile::tempdir_in(
            std::env::var("CONFORMANCE_TMP").unwrap_or_else(|_| std::env::temp_dir().display().to_string()),
        )
        .unwrap();
        let s = FsStorage::new(d.path()).unwrap();
        dirs.borrow_mut().push(d);
        s
    })
    .unwrap();
    assert_eq!(passed.len(), conformance::checks::<FsStorage>().len());
}

/// The explicit SIMD distance kernels of this target (simd128 under WASI, SSE2 natively) equal
/// their scalar references (`spaces::simd::check_against_scalar`).
#[test]
fn simd_kernels_equal_the_scalar_references() {
    let n = qdrant_edge_wasm::spaces::simd::check_against_scalar().unwrap();
    assert!(n > 1500, "{n} checks");
}
