#!/usr/bin/env python3
"""Run a WASI program (preview 1 core module or preview 2 component) with PyPI wasmtime.

Used as the cargo runner for wasm32-wasip1/-wasip2 tests and to run wasi-demo.
The current directory is preopened as `.`; extra `--dir HOST::GUEST` options before the
module path preopen more directories. Exit code = the program's exit code.
"""
import os
import sys

import wasmtime
from wasmtime import Config, Engine, Linker, Module, Store, WasiConfig
from wasmtime import component as wc


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
