#!/usr/bin/env python3
"""Run a WASI program (preview 1 core module or preview 2 component) with PyPI wasmtime.

Used as the cargo runner for wasm32-wasip1/-wasip2 tests and to run wasi-demo.
The current directory is preopened as `.`; extra `--dir HOST::GUEST` options before the
module path preopen more directories. Exit code = the program's exit code.

On Linux the linear memory of a core module is advised to the kernel as wanting transparent
huge pages (madvise MADV_HUGEPAGE over wasmtime's reservation for it) before the program
runs, as the engine does natively for the large buffers it reads vector matrices and graph
links into (src/storage/mod.rs, zeroed_buffer): random rows of a pinned 150 MiB matrix
otherwise cost a TLB miss each (BENCHMARKS.md). It is advice: contents and behaviour are
unchanged, and where the kernel declines nothing happens.
"""
import ctypes
import os
import sys

import wasmtime
from wasmtime import Config, Engine, Linker, Module, Store, WasiConfig
from wasmtime import component as wc


MADV_HUGEPAGE = 14
RESERVATION = 4 << 30  # wasmtime's default reservation for a 32-bit linear memory on 64-bit hosts


def advise_huge_pages(store, memory) -> None:
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    base = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
    # the whole reservation, so pages the memory grows into later are covered; if the memory
    # is not reserved that way (ENOMEM: part of the range is unmapped), its current pages
    for size in (RESERVATION, memory.data_len(store)):
        if base and size and libc.madvise(base, size, MADV_HUGEPAGE) == 0:
            return


def main() -> int:
    argv = sys.argv[1:]
    dirs = []
    while argv and argv[0] == "--dir":
        host, _, guest = argv[1].partition("::")
        dirs.append((host, guest or host))
        argv = argv[2:]
    path, args = argv[0], argv[1:]
    data = open(path, "rb").read()
    engine = Engine(Config())
    store = Store(engine)
    wasi = WasiConfig()
    wasi.argv = [os.path.basename(path)] + args
    wasi.inherit_env()
    wasi.inherit_stdin()
    wasi.inherit_stdout()
    wasi.inherit_stderr()
    wasi.preopen_dir(os.getcwd(), ".")
    for host, guest in dirs:
        wasi.preopen_dir(host, guest)
    store.set_wasi(wasi)
    try:
        if data[4:8] == b"\x01\x00\x00\x00":  # core module: preview 1
            linker = Linker(engine)
            linker.define_wasi()
            instance = linker.instantiate(store, Module(engine, data))
            memory = instance.exports(store).get("memory")
            if isinstance(memory, wasmtime.Memory):
                advise_huge_pages(store, memory)
            instance.exports(store)["_start"](store)
            return 0
        linker = wc.Linker(engine)  # component: preview 2
        linker.add_wasip2()
        instance = linker.instantiate(store, wc.Component(engine, data))
        iface = None
        for minor in range(10):
            iface = instance.get_export_index(store, f"wasi:cli/run@0.2.{minor}")
            if iface:
                break
        if iface is None:
            print("component exports no wasi:cli/run", file=sys.stderr)
            return 127
        run = instance.get_func(store, instance.get_export_index(store, "run", iface))
        result = run(store)
        return 0 if getattr(result, "tag", "ok") == "ok" else 1
    except wasmtime.ExitTrap as e:
        return e.code
    except wasmtime.Trap as e:
        print(f"wasm trap: {e}", file=sys.stderr)
        return 134


if __name__ == "__main__":
    sys.exit(main())
