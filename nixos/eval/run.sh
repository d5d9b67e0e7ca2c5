#!/usr/bin/env bash
# Evaluates nixos/modules/vigil.nix against nixpkgs' lib alone (no nixpkgs,
# no network): prints the checks, the generated TOML and the systemd units.
#
#   nixos/eval/run.sh /path/to/nixpkgs.lib     # a checkout of nix-community/nixpkgs.lib
#
# Exit status 0 only if every check passed. Needs nix-instantiate (Nix >= 2.8).
set -euo pipefail

if [ $# -ne 1 ] || [ ! -f "$1/lib/default.nix" ]; then
  echo "usage: $0 PATH-TO-NIXPKGS-LIB   (the directory holding lib/default.nix)" >&2
  exit 2
fi
lib_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)

# --read-write-mode: the fake formats.toml writes the TOML with builtins.toFile.
eval_attr() {
  nix-instantiate --read-write-mode --eval --strict --json \
    "$here/eval-module.nix" --arg nixpkgsLib "$lib_dir" -A "$1"
}

eval_attr report | python3 -c 'import json, sys; print(json.load(sys.stdin))'

# The VM tests' Python scripts: they must compile, and use no name that is
# neither defined in the script, a builtin, nor given by the NixOS test driver.
eval_attr testScripts | python3 -c '
import ast, builtins, json, sys
driver = {"start_all", "subtest", "machines", "driver", "log", "join_all",
          "retry", "serial_stdout_off", "serial_stdout_on", "polling_condition",
          "create_machine", "run_tests", "vlans", "t",
          "hub", "camera"}
bad = False
for name, script in sorted(json.load(sys.stdin).items()):
    tree = ast.parse(script, filename=name)
    defined = set(dir(builtins)) | driver
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defined.add(node.name)
            defined.update(a.arg for a in node.args.args + node.args.kwonlyargs)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            defined.add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            defined.update((a.asname or a.name).split(".")[0] for a in node.names)
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    undefined = sorted(used - defined)
    status = "FAIL" if undefined else "ok  "
    extra = "; undefined: %s" % undefined if undefined else ""
    print("%s test script %s parses%s" % (status, name, extra))
    bad = bad or bool(undefined)
sys.exit(1 if bad else 0)
'

[ "$(eval_attr allOk)" = true ]
