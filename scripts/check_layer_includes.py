#!/usr/bin/env python3
"""Fails when a file of server/<layer>/ includes a header of a folder that
<layer> does not declare in its CMakeLists.txt (forkd_layer DEPS).

The declared graph comes from the configure step (build/forkd_layers.txt,
written by cmake/ForkdLayers.cmake, which already refused cycles); this check
makes the declarations match the code, so the graph the build enforces is the
graph the includes use.

usage: check_layer_includes.py <forkd_layers.txt> <source root>
"""
import pathlib
import re
import sys

INCLUDE = re.compile(r'^\s*#\s*include\s+"server/([a-z0-9_]+)/', re.M)


def read_layers(path):
    layers = {}
    for line in pathlib.Path(path).read_text().splitlines():
        if not line.strip():
            continue
        name, _, deps = line.partition(":")
        layers[name.strip()] = set(deps.split())
    return layers


def violations(layers, root):
    found = []
    server = pathlib.Path(root) / "server"
    for folder in sorted(p for p in server.iterdir() if p.is_dir()):
        name = folder.name
        if name not in layers:
            if any(folder.glob("*.cc")) or any(folder.glob("*.h")):
                found.append(f"server/{name}/ holds code but is no layer")
            continue
        allowed = layers[name] | {name}
        for src in sorted(folder.iterdir()):
            if src.suffix not in (".h", ".cc"):
                continue
            for used in INCLUDE.findall(src.read_text()):
                if used not in allowed:
                    found.append(f"server/{name}/{src.name} includes server/"
                                 f"{used}/, not in the DEPS of layer {name}")
    return found


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    found = violations(read_layers(sys.argv[1]), sys.argv[2])
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} include(s) outside the declared layers "
              "(declare the dependency in the folder's CMakeLists.txt, "
              "or move the code)")
        return 1
    print("layers: every include is declared")
    return 0


if __name__ == "__main__":
    sys.exit(main())
