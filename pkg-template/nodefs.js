// The host side of the "fs" storage (Node): synchronous, positional file I/O with node:fs for
// the engine's storage trait (src/web/nodefs.rs calls these methods). Paths are absolute
// ("/"-separated; the engine builds them from the shard directory). Errors are node:fs
// errors; the engine maps their `code` (ENOENT, EEXIST, ENOSPC, ...) to its storage errors.
//
// One writer per shard directory: `lock(dir)` creates `dir/.qdrant-edge-wasm.lock` holding this
// process's pid; a lock whose process is gone (a crash) is taken over.
//
// No `import` statement, so the same file loads as an ES module (the package) or a script
// (wasm-bindgen-test under Node).

const LOCK = '.qdrant-edge-wasm.lock';

export function createFsHost() {
  const fs = process.getBuiltinModule('node:fs');
  const { O_RDONLY, O_RDWR, O_CREAT, O_EXCL } = fs.constants;
  const held = new Set();

  const alive = (pid) => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (e) {
      return e.code === 'EPERM';
    }
  };

  return {
    open(path, mode) {
      const flags = {
        read: O_RDONLY,
        readwrite: O_RDWR,
        create: O_RDWR | O_CREAT,
        create_new: O_RDWR | O_CREAT | O_EXCL,
      }[mode];
      const fd = fs.openSync(path, flags, 0o644);
      if (fs.fstatSync(fd).isDirectory()) {
        fs.closeSync(fd);
        throw Object.assign(new Error(`${path} is a directory`), { code: 'EISDIR' });
      }
      return fd;
    },
    close(fd) {
      fs.closeSync(fd);
    },
    size(fd) {
      return fs.fstatSync(fd).size;
    },
    /** Fill `buf` from `pos`; returns the bytes read (less only at the end of the file). */
    read(fd, buf, pos) {
      let done = 0;
      while (done < buf.length) {
        const n = fs.readSync(fd, buf, done, buf.length - done, pos + done);
        if (n === 0) break;
        done += n;
      }
      return done;
    },
    write(fd, data, pos) {
      let done = 0;
      while (done < data.length) done += fs.writeSync(fd, data, done, data.length - done, pos + done);
    },
    truncate(fd, len) {
      fs.ftruncateSync(fd, len);
    },
    fsync(fd) {
      fs.fsyncSync(fd);
    },
    /** [name, isDir] pairs of files and directories (other entries are skipped). */
    list(path) {
      const out = [];
      for (const e of fs.readdirSync(path, { withFileTypes: true })) {
        if (e.isDirectory()) out.push([e.name, true]);
        else if (e.isFile()) out.push([e.name, false]);
      }
      return out;
    },
    mkdirp(path) {
      fs.mkdirSync(path, { recursive: true });
    },
    rename(from, to) {
      fs.renameSync(from, to);
    },
    unlink(path) {
      fs.unlinkSync(path);
    },
    rmrf(path) {
      fs.rmSync(path, { recursive: true, force: false });
    },
    /** 0: nothing (or not a file or directory), 1: file, 2: directory. */
    kind(path) {
      let st;
      try {
        st = fs.lstatSync(path);
      } catch (e) {
        if (e.code === 'ENOENT' || e.code === 'ENOTDIR') return 0;
        throw e;
      }
      return st.isDirectory() ? 2 : st.isFile() ? 1 : 0;
    },
    syncDir(path) {
      const fd = fs.openSync(path, O_RDONLY);
      try {
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
    },
    /** Take the writer lock of `dir` (created if missing); throws when another holder is alive. */
    lock(dir) {
      fs.mkdirSync(dir, { recursive: true });
      const file = `${dir}/${LOCK}`;
      if (held.has(dir)) throw Object.assign(new Error(`${dir} is open in this process`), { code: 'ELOCKED' });
      for (let attempt = 0; attempt < 2; attempt++) {
        try {
          fs.writeFileSync(file, String(process.pid), { flag: 'wx' });
          held.add(dir);
          return;
        } catch (e) {
          if (e.code !== 'EEXIST') throw e;
        }
        const pid = Number(fs.readFileSync(file, 'utf8'));
        if (pid > 0 && pid !== process.pid && alive(pid)) {
          throw Object.assign(new Error(`${dir} is open in another process (pid ${pid})`), { code: 'ELOCKED' });
        }
        fs.rmSync(file, { force: true }); // stale: its process is gone
      }
      throw Object.assign(new Error(`${dir}: could not take the lock`), { code: 'ELOCKED' });
    },
    unlock(dir) {
      if (!held.delete(dir)) return;
      fs.rmSync(`${dir}/${LOCK}`, { force: true });
    },
  };
}
