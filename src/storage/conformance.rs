//! The backend-generic conformance battery.
//!
//! Every backend runs the same checks: call [`run_all`] with a function that returns a fresh,
//! empty storage. Each check returns `Err(description)` instead of panicking so that harnesses
//! without unwinding (WASI, browsers) can report which check failed.

use super::*;

type Check<S> = (&'static str, fn(&S) -> Result<(), String>);

fn ck<T, E: std::fmt::Debug>(r: Result<T, E>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e:?}"))
}

fn ensure(cond: bool, what: &str) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(what.to_string())
    }
}

fn expect_kind<T: std::fmt::Debug>(r: StorageResult<T>, kind: StorageErrorKind, what: &str) -> Result<(), String> {
    match r {
        Err(e) if e.kind == kind => Ok(()),
        other => Err(format!("{what}: expected {kind:?}, got {other:?}")),
    }
}

fn read_write<S: Storage>(s: &S) -> Result<(), String> {
    let f = ck(s.open("a.bin", OpenMode::CreateNew), "create")?;
    ensure(ck(f.len(), "len")? == 0, "new file is empty")?;
    ck(f.write_at(0, b"hello world"), "write")?;
    ensure(ck(f.len(), "len")? == 11, "len after write")?;
    let mut buf = [0u8; 5];
    ck(f.read_at(6, &mut buf), "read")?;
    ensure(&buf == b"world", "read back")?;
    ck(f.write_at(6, b"WORLD"), "overwrite")?;
    let g = ck(s.open("a.bin", OpenMode::Read), "reopen")?;
    let mut all = [0u8; 11];
    ck(g.read_at(0, &mut all), "read all")?;
    ensure(&all == b"hello WORLD", "writes visible through other handles")?;
    expect_kind(g.read_at(8, &mut [0u8; 4]), StorageErrorKind::UnexpectedEof, "read past end")?;
    ensure(ck(g.read_at(11, &mut []), "empty read at end").is_ok(), "empty read at end")?;
    expect_kind(s.open("a.bin", OpenMode::CreateNew), StorageErrorKind::AlreadyExists, "create_new twice")?;
    expect_kind(s.open("missing", OpenMode::Read), StorageErrorKind::NotFound, "open missing")?;
    let c = ck(s.open("a.bin", OpenMode::Create), "open create existing")?;
    ensure(ck(c.len(), "len")? == 11, "Create keeps content")?;
    Ok(())
}

fn gaps_read_zero<S: Storage>(s: &S) -> Result<(), String> {
    let f = ck(s.open("g.bin", OpenMode::Create), "create")?;
    ck(f.write_at(10_000, b"xyz"), "write past end")?;
    ensure(ck(f.len(), "len")? == 10_003, "len after sparse write")?;
    let mut buf = vec![1u8; 10_000];
    ck(f.read_at(0, &mut buf), "read gap")?;
    ensure(buf.iter().all(|&b| b == 0), "gap reads zero")?;
    Ok(())
}

fn set_len_grow_shrink<S: Storage>(s: &S) -> Result<(), String> {
    let f = ck(s.open("l.bin", OpenMode::Create), "create")?;
    ck(f.write_at(0, &[7u8; 100]), "write")?;
    ck(f.set_len(32 << 20), "grow to 32 MiB")?;
    ensure(ck(f.len(), "len")? == 32 << 20, "len after grow")?;
    let mut tail = vec![9u8; 4096];
    ck(f.read_at((32 << 20) - 4096, &mut tail), "read tail")?;
    ensure(tail.iter().all(|&b| b == 0), "growth reads zero")?;
    let mut head = [0u8; 100];
    ck(f.read_at(0, &mut head), "read head")?;
    ensure(head.iter().all(|&b| b == 7), "head kept")?;
    ck(f.set_len(50), "shrink")?;
    ensure(ck(f.len(), "len")? == 50, "len after shrink")?;
    ck(f.set_len(200), "grow again")?;
    let mut b = [9u8; 150];
    ck(f.read_at(50, &mut b), "read regrown")?;
    ensure(b.iter().all(|&x| x == 0), "bytes cut by a shrink read zero after regrowth")?;
    ck(f.sync(), "sync")?;
    Ok(())
}

fn directories<S: Storage>(s: &S) -> Result<(), String> {
    ck(s.create_dir_all("d/e/f"), "mkdir -p")?;
    ck(s.create_dir_all("d/e"), "mkdir existing")?;
    ensure(ck(s.is_dir("d/e/f"), "stat")?, "nested dir exists")?;
    ck(s.open("d/x.txt", OpenMode::Create), "create in dir")?;
    ck(s.open("d/e/y.txt", OpenMode::Create), "create nested")?;
    let names: Vec<(String, EntryKind)> = ck(s.list_dir("d"), "list")?.into_iter().map(|e| (e.name, e.kind)).collect();
    ensure(
        names == vec![("e".to_string(), EntryKind::Dir), ("x.txt".to_string(), EntryKind::File)],
        &format!("list_dir sorted and direct children only: {names:?}"),
    )?;
    expect_kind(s.open("nodir/x", OpenMode::Create), StorageErrorKind::NotFound, "create without parent")?;
    expect_kind(s.list_dir("nope"), StorageErrorKind::NotFound, "list missing")?;
    ensure(ck(s.entry_kind("d/x.txt"), "stat")? == Some(EntryKind::File), "file kind")?;
    ensure(ck(s.entry_kind("zzz"), "stat")?.is_none(), "missing kind")?;
    ck(s.remove_file("d/x.txt"), "rm")?;
    ensure(!ck(s.exists("d/x.txt"), "stat")?, "removed")?;
    expect_kind(s.remove_file("d/x.txt"), StorageErrorKind::NotFound, "rm twice")?;
    ck(s.remove_dir_all("d"), "rm -r")?;
    ensure(!ck(s.exists("d/e/y.txt"), "stat")?, "rm -r removes children")?;
    ensure(!ck(s.exists("d"), "stat")?, "rm -r removes dir")?;
    ck(s.sync_dir(""), "sync root")?;
    Ok(())
}

fn renames<S: Storage>(s: &S) -> Result<(), String> {
    let f = ck(s.open("r1", OpenMode::Create), "create")?;
    ck(f.write_at(0, b"one"), "write")?;
    let g = ck(s.open("r2", OpenMode::Create), "create")?;
    ck(g.write_at(0, b"two!"), "write")?;
    ck(s.rename("r1", "r2"), "rename over file")?;
    ensure(!ck(s.exists("r1"), "stat")?, "source gone")?;
    ensure(&ck(s.read_all("r2"), "read")?[..] == b"one", "target replaced")?;
    ck(s.create_dir_all("seg/sub"), "mkdir")?;
    ck(s.open("seg/sub/file", OpenMode::Create).and_then(|f| f.write_at(0, b"deep")), "write deep")?;
    ck(s.rename("seg", "seg2"), "rename dir")?;
    ensure(&ck(s.read_all("seg2/sub/file"), "read moved")?[..] == b"deep", "dir moved with content")?;
    ensure(!ck(s.exists("seg"), "stat")?, "old dir gone")?;
    ck(s.create_dir_all("other"), "mkdir")?;
    expect_kind(s.rename("seg2", "other"), StorageErrorKind::AlreadyExists, "rename dir over dir")?;
    expect_kind(s.rename("nothing", "x"), StorageErrorKind::NotFound, "rename missing")?;
    ck(s.write_atomic("seg2/meta.json", b"{\"a\":1}"), "write_atomic")?;
    ck(s.write_atomic("seg2/meta.json", b"{}"), "write_atomic replace")?;
    ensure(&ck(s.read_all("seg2/meta.json"), "read")?[..] == b"{}", "atomic replace content")?;
    ensure(!ck(s.exists("seg2/meta.json.tmp"), "stat")?, "no temp file left")?;
    Ok(())
}

fn bad_paths<S: Storage>(s: &S) -> Result<(), String> {
    for p in ["/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a\\b"] {
        expect_kind(s.open(p, OpenMode::Create), StorageErrorKind::InvalidPath, p)?;
    }
    Ok(())
}

fn read_only_mode<S: Storage>(s: &S) -> Result<(), String> {
    ck(s.open("ro", OpenMode::Create).and_then(|f| f.write_at(0, b"abc")), "create")?;
    let r = ck(s.open("ro", OpenMode::Read), "open ro")?;
    ensure(r.write_at(0, b"x").is_err(), "write through read-only handle fails")?;
    let slice = ck(s.open_slice("ro"), "slice")?;
    ensure(&ck(slice.slice(1, 10).read_bytes(), "slice read")?[..] == b"bc", "slice clamps")?;
    Ok(())
}

fn large_positions<S: Storage>(s: &S) -> Result<(), String> {
    // Offsets above 4 GiB must work on wasm32 too (u64 offsets, no usize conversions).
    if !s.capabilities().sparse_files {
        return Ok(());
    }
    let f = ck(s.open("big", OpenMode::Create), "create")?;
    let off = (5u64 << 30) + 3;
    ck(f.write_at(off, b"far"), "write at 5 GiB")?;
    let mut b = [0u8; 3];
    ck(f.read_at(off, &mut b), "read at 5 GiB")?;
    ensure(&b == b"far", "far data")?;
    ck(f.set_len(0), "truncate")?;
    Ok(())
}

fn large_transfers<S: Storage>(s: &S) -> Result<(), String> {
    // One call moving 160 MiB (a whole `matrix.dat` is read like this): WASI hosts refuse
    // a single huge read, so the backend must split it.
    let n = 160 << 20;
    let data: Vec<u8> = (0..n).map(|i| (i % 251) as u8).collect();
    let f = ck(s.open("bulk", OpenMode::Create), "create")?;
    ck(f.write_at(7, &data), "write 160 MiB")?;
    let mut back = vec![0u8; n];
    ck(f.read_at(7, &mut back), "read 160 MiB")?;
    ensure(back == data, "160 MiB round trip")?;
    drop(f);
    ck(s.remove_file("bulk"), "remove")?;
    Ok(())
}

/// The list of checks, in order.
pub fn checks<S: Storage>() -> Vec<Check<S>> {
    vec![
        ("read_write", read_write::<S>),
        ("gaps_read_zero", gaps_read_zero::<S>),
        ("set_len_grow_shrink", set_len_grow_shrink::<S>),
        ("directories", directories::<S>),
        ("renames", renames::<S>),
        ("bad_paths", bad_paths::<S>),
        ("read_only_mode", read_only_mode::<S>),
        ("large_positions", large_positions::<S>),
        ("large_transfers", large_transfers::<S>),
    ]
}

/// Run every check on fresh storages from `make`; returns the names that passed or the first
/// failure as `"name: what"`.
pub fn run_all<S: Storage>(mut make: impl FnMut() -> S) -> Result<Vec<&'static str>, String> {
    let mut passed = Vec::new();
    for (name, f) in checks::<S>() {
        let s = make();
        f(&s).map_err(|e| format!("{name}: {e}"))?;
        passed.push(name);
    }
    Ok(passed)
}
