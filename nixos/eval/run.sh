#!/usr/bin/env bash
# Evaluates nixos/modules/vigil.nix against nixpkgs' lib alone (no nixpkgs,
# no network): prints the checks, the generated TOML and the systemd units,
# and checks that nixos/eval/module-defaults.toml is what the module writes
# with its defaults (services/vigil-config/tests/nixos_defaults.rs checks
# that file's values against the Rust defaults).
#
#   nixos/eval/run.sh /path/to/nixpkgs.lib # a checkout of nix-community/nixpkgs.lib
#   VIGIL_NIXPKGS_LIB=/path nixos/eval/run.sh
#   nixos/eval/run.sh --update-defaults /path/to/nixpkgs.lib   # rewrite module-defaults.toml
#
# nixpkgs' lib is not part of this repository (it is nixpkgs' code, MIT):
# bring a checkout of nix-community/nixpkgs.lib beside it.
#
# Exit status 0 only if every check passed and module-defaults.toml is
# current. Needs nix-instantiate (Nix >= 2.8; Debian's nix-bin).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
update_defaults=false
if [ "${1:-}" = --update-defaults ]; then
  update_defaults=true
  shift
fi
lib_dir=${1:-${VIGIL_NIXPKGS_LIB:-}}
if [ $# -gt 1 ] || [ -z "$lib_dir" ] || [ ! -f "$lib_dir/lib/default.nix" ]; then
  echo "usage: $0 [--update-defaults] [PATH-TO-NIXPKGS-LIB]   (the directory holding lib/default.nix)" >&2
  exit 2
fi
lib_dir=$(cd "$lib_dir" && pwd)

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
          "hub", "camera", "broker"}
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

# The module's defaults, as the Rust test reads them: the committed file
# must be what the module writes now.
defaults=$here/module-defaults.toml
rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
eval_attr defaultsToml | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin))' >"$rendered"
if $update_defaults; then
  cp "$rendered" "$defaults"
  echo "wrote $defaults"
elif diff -u "$defaults" "$rendered"; then
  echo "ok   nixos/eval/module-defaults.toml is what the module writes with its defaults"
else
  echo "FAIL nixos/eval/module-defaults.toml is stale: a default of nixos/modules/vigil.nix changed (diff above)." >&2
  echo "     Change the Rust default to match (services/vigil-config/src/limits.rs or the section's check)," >&2
  echo "     then run nixos/eval/run.sh --update-defaults and cargo test -p vigil-config --test nixos_defaults." >&2
  exit 1
fi

[ "$(eval_attr allOk)" = true ]
