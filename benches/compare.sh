#!/usr/bin/env bash
# Whole-process comparison, in one run on one machine: gopack vs the floor
# (`tar -cf - . | zstd -3 -T0`) vs conda-pack 0.9.2 (`conda-pack -p ENV -o x.tar.gz -j 2`), on
# a benchmark environment of >= 500 MB and >= 20,000 files built by the fixture builder
# (CPython + NumPy + pandas + a Go toolchain, plus SciPy installed by pip as unmanaged files).
#
# usage: benches/compare.sh [WORKDIR]      (default: target/compare)
# Needs: python3 (conda-pack is installed from PyPI into a venv), GNU tar, zstd, GNU time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=${1:-$repo/target/compare}
mkdir -p "$work"
work=$(cd "$work" && pwd)
env_dir=$work/bench-env
cores=$(nproc)

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
gopack=$repo/target/release/gopack

if [ ! -d "$env_dir/conda-meta" ]; then
  rm -rf "$env_dir"
  python3 "$repo/fixtures/build_env.py" "$env_dir" --go --pandas --quiet
  "$env_dir/bin/python3.11" -m pip install --quiet --no-warn-script-location scipy==1.14.1
fi
if [ ! -x "$work/venv/bin/conda-pack" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet conda-pack==0.9.2
fi

size_mb=$(du -s --apparent-size --block-size=1M "$env_dir" | cut -f1)
files=$(find "$env_dir" -type f | wc -l)
echo "environment: $env_dir — ${size_mb} MB apparent, $files files, $cores cores"

# Warm the page cache so every contender reads from memory.
tar -cf - -C "$env_dir" . >/dev/null

measure() { # name command... ; prints "name seconds peak_rss_mb"
  local name=$1
  shift
  /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" >/dev/null 2>"$work/$name.log" || {
    echo "$name failed:"; cat "$work/$name.log"; exit 1; }
  read -r secs rss_kb <"$work/$name.time"
  printf '%s %s %s\n' "$name" "$secs" $((rss_kb / 1024))
}

rm -f "$work"/floor.tar.zst "$work"/gopack.tar.zst "$work"/conda-pack.tar.gz
floor=$(measure floor sh -c "tar -cf - -C '$env_dir' . | zstd -3 -T0 -q -o '$work/floor.tar.zst'")
gp=$(measure gopack "$gopack" create -q -p "$env_dir" -o "$work/gopack.tar.zst")
cp=$(measure conda-pack "$work/venv/bin/conda-pack" -q -p "$env_dir" -o "$work/conda-pack.tar.gz" -j 2 --ignore-missing-files)

read -r _ floor_s floor_rss <<<"$floor"
read -r _ gp_s gp_rss <<<"$gp"
read -r _ cp_s cp_rss <<<"$cp"
mb() { echo $(( $(stat -c %s "$1") / 1048576 )); }
printf '\n%-32s %8s %10s %10s\n' "run" "seconds" "peak RSS" "archive"
printf '%-32s %8s %7s MB %7s MB\n' "tar | zstd -3 -T0 (floor)" "$floor_s" "$floor_rss" "$(mb "$work/floor.tar.zst")"
printf '%-32s %8s %7s MB %7s MB\n' "gopack create (zstd -3)" "$gp_s" "$gp_rss" "$(mb "$work/gopack.tar.zst")"
printf '%-32s %8s %7s MB %7s MB\n' "conda-pack 0.9.2 (.tar.gz -j 2)" "$cp_s" "$cp_rss" "$(mb "$work/conda-pack.tar.gz")"
echo
awk -v g="$gp_s" -v f="$floor_s" -v c="$cp_s" 'BEGIN {
  printf "gopack / floor:      %.2fx (target <= 1.2x)\n", g / f
  printf "conda-pack / gopack: %.2fx faster (target >= 3x)\n", c / g
}'
