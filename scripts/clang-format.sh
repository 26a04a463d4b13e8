#!/usr/bin/env bash
# clang-format over the native sources (.clang-format): `--check` lists the files that differ and fails, no flag
# rewrites them. CI installs Debian's clang-format (14); another major version may format a few constructs otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v clang-format >/dev/null || { echo "clang-format not found (Debian/Ubuntu: apt-get install clang-format)" >&2; exit 1; }
mapfile -t files < <(git ls-files 'native/*.cc' 'native/*.h' 'native/*.cu')
if [ "${1:-}" = "--check" ]; then
  status=0
  for f in "${files[@]}"; do clang-format "$f" | cmp -s - "$f" || { echo "not clang-formatted: $f"; status=1; }; done
  [ "$status" = 0 ] && echo "clang-format: ${#files[@]} native files formatted"
  exit "$status"
fi
clang-format -i "${files[@]}"
