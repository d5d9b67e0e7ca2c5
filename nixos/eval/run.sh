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
[ "$(eval_attr allOk)" = true ]
