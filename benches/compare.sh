#!/usr/bin/env bash
# Whole-process comparison, in one run on one machine, at one or more environment sizes:
#
#   pack      the floor `tar -cf - . | zstd -3 -T0`, `gopack create`, and conda-pack 0.9.2
#             (`conda-pack -p ENV -o x.tar.gz -j 2`);
#   unpack    the floor `zstd -dc gopack.tar.zst | tar -xf -` (same bundle, no checks),
#             `gopack unpack` (extract + verify + relocate), and conda-pack's
#             `tar -xzf` + `bin/conda-unpack`;
#   relocate  on the target, after a plain `tar -xf` of the gopack bundle:
#             `dash bin/gopack-unpack -q` (its default path: .gopack/relocate when the bundle
#             has it) and `GOPACK_UNPACK_SH=1 dash bin/gopack-unpack -q` (the POSIX-sh path),
#             against `bin/conda-unpack` after `tar -xzf` of conda-pack's archive.
#
# The environment: fixtures/build_env.py --go --pandas, plus SciPy installed by pip (>= 500 MB,
# >= 20,000 files), scaled by fixtures/scale_env.py: factor N holds N copies of the big packages
# (numpy, pandas, scipy, go, ...) and 300 x N prefix-holding text files (see fixtures/README.md).
# Each scaled environment is built once and cached in WORKDIR (rebuilt when the fixture
# scripts change). Every run goes into a fresh directory on WORKDIR's filesystem; the rm -rf
# before it and a `sync` are not timed. Seconds and peak RSS are GNU time's %e and %M.
#
# usage: benches/compare.sh [--factors "1 10"] [--runs N] [--unpack-dir DIR] [WORKDIR]
#        (defaults: factors "1", 1 run, target/compare; with N runs, seconds are medians and
#        peak RSS the largest; --unpack-dir puts every unpacked tree in DIR, e.g. /dev/shm,
#        where a disk's write-back would otherwise make unpack times noise)
# Extra scale_env.py arguments (e.g. "--big-files 4 --big-size 1000000000"): $SCALE_ENV_ARGS.
# Needs: python3 (conda-pack is installed from PyPI into a venv), GNU tar, zstd, GNU time
# (/usr/bin/time), dash, cargo. Disk: about 3x the environment's size per factor at a time
# (the environment, the archives and one unpacked copy); factor 10 is ~6 GB of environment.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "compare.sh: $*" >&2; exit 1; }
usage() { sed -n '/^# usage:/,/^# Needs:/p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

factors=1
runs=1
unpack_dir=
work=
while [ $# -gt 0 ]; do
  case $1 in
    --factors) [ $# -ge 2 ] || usage; factors=$2; shift 2 ;;
    --factors=*) factors=${1#*=}; shift ;;
    --runs) [ $# -ge 2 ] || usage; runs=$2; shift 2 ;;
    --unpack-dir) [ $# -ge 2 ] || usage; unpack_dir=$2; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "compare.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$work" ] || usage; work=$1; shift ;;
  esac
done
for f in $factors; do
  case $f in ''|*[!0-9]*|0*) die "--factors takes positive whole numbers, got '$f'" ;; esac
done
[ -n "${factors// /}" ] || die "--factors is empty"
case $runs in ''|*[!0-9]*|0*) die "--runs takes a positive whole number, got '$runs'" ;; esac

# The tools, before anything slow.
for t in python3 tar zstd dash cargo; do
  command -v "$t" >/dev/null 2>&1 || die "needs $t on PATH (not found)"
done
[ -x /usr/bin/time ] && /usr/bin/time --version 2>&1 | grep -q GNU ||
  die "needs GNU time at /usr/bin/time (Debian/Ubuntu: apt-get install time)"
tar --version 2>/dev/null | grep -q 'GNU tar' || die "needs GNU tar"
dash=$(command -v dash)

work=${work:-$repo/target/compare}
mkdir -p "$work"
work=$(cd "$work" && pwd)
if [ -n "$unpack_dir" ]; then
  mkdir -p "$unpack_dir" && unpack_dir=$(cd "$unpack_dir" && pwd) || die "cannot use --unpack-dir $unpack_dir"
fi
env_dir=$work/bench-env
cores=$(nproc)

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
gopack=$repo/target/release/gopack

if [ ! -d "$env_dir/conda-meta" ]; then
  rm -rf "$env_dir"
  python3 "$repo/fixtures/build_env.py" "$env_dir" --go --pandas --quiet
  "$env_dir/bin/python3.11" -m pip install --quiet --no-warn-script-location \
    --root-user-action=ignore scipy==1.14.1
fi
if [ ! -x "$work/venv/bin/conda-pack" ]; then
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" install --quiet conda-pack==0.9.2
fi

# The scaled environment of factor $1, built once: $work/env-x$1, stamped with what made it.
scaled_env() {
  local f=$1 dir=$work/env-x$1 key
  # shellcheck disable=SC2086
  key="$(cat "$repo/fixtures/scale_env.py" "$repo/fixtures/build_env.py" | sha256sum | cut -c1-16)"
  key="$key $(stat -c %Y "$env_dir/conda-meta/history") --factor $f --text-files $((300 * f)) ${SCALE_ENV_ARGS:-}"
  if [ ! -d "$dir/conda-meta" ] || [ "$(cat "$dir.key" 2>/dev/null)" != "$key" ]; then
    rm -rf "$dir" "$dir.key"
    echo "building the ${f}x environment in $dir ..." >&2
    # shellcheck disable=SC2086
    python3 "$repo/fixtures/scale_env.py" "$env_dir" "$dir" --factor "$f" \
      --text-files $((300 * f)) ${SCALE_ENV_ARGS:-} --quiet >&2
    printf '%s\n' "$key" >"$dir.key"
  fi
  printf '%s\n' "$dir"
}

# measure NAME SETUP COMMAND... : runs SETUP (a shell function; not timed) then COMMAND under
# GNU time, $runs times; sets secs (the median) and rss (MB, the largest) and records them.
measure() {
  local name=$1 setup=$2 kb i all=
  shift 2
  rss=0
  for ((i = 1; i <= runs; i++)); do
    "$setup"
    /usr/bin/time -f "%e %M" -o "$out/$name.time" "$@" >"$out/$name.log" 2>&1 || {
      echo "$name failed:" >&2; tail -n 30 "$out/$name.log" >&2; exit 1; }
    read -r secs kb <"$out/$name.time"
    all="$all $secs"
    [ $((kb / 1024)) -gt "$rss" ] && rss=$((kb / 1024))
  done
  secs=$(printf '%s\n' $all | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }')
  printf '%s_s=%s\n%s_rss=%s\n%s_all=%s\n' "$name" "$secs" "$name" "$rss" "$name" "${all# }" >>"$out/results"
}
# Setups, run before each timed run: remove the previous output, flush dirty pages.
no_floor() { rm -f "$out/floor.tar.zst"; sync; }
no_gopack() { rm -f "$out/gopack.tar.zst" "$out/gopack.tar.zst.sha256"; sync; }
no_condapack() { rm -f "$out/conda-pack.tar.gz"; sync; }
fresh_dest() { rm -rf "$d"; sync; }
extracted_gopack() { fresh_dest; mkdir "$d" && tar -xf "$out/gopack.tar.zst" -C "$d" && sync; }
extracted_condapack() { fresh_dest; mkdir "$d" && tar -xzf "$out/conda-pack.tar.gz" -C "$d" && sync; }
mb() { echo $(($(stat -c %s "$1") / 1048576)); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

run_factor() {
  local f=$1 env files bytes gb d
  env=$(scaled_env "$f")
  out=$work/x$f
  mkdir -p "$out"
  : >"$out/results"
  files=$(find "$env" -type f | wc -l)
  bytes=$(du -s --apparent-size --block-size=1 "$env" | cut -f1)
  gb=$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1e9 }')
  printf 'files=%s\ngb=%s\n' "$files" "$gb" >>"$out/results"
  echo
  echo "== ${f}x: $env — $gb GB apparent, $files files, $cores cores"

  # Warm the page cache so every contender reads from memory. (Not `tar -cf - . >/dev/null`:
  # GNU tar does not read file contents when its archive is /dev/null.)
  tar -cf - -C "$env" . | cat >/dev/null

  # --- pack (the outputs are removed before each run, not timed)
  measure pack_floor no_floor sh -c "tar -cf - -C '$env' . | zstd -3 -T0 -q -o '$out/floor.tar.zst'"
  local pf_s=$secs pf_rss=$rss
  measure pack_gopack no_gopack "$gopack" create -q -p "$env" -o "$out/gopack.tar.zst"
  local pg_s=$secs pg_rss=$rss
  measure pack_condapack no_condapack "$work/venv/bin/conda-pack" -q -p "$env" \
    -o "$out/conda-pack.tar.gz" -j 2 --ignore-missing-files
  local pc_s=$secs pc_rss=$rss
  local a_floor a_gp a_cp
  a_floor=$(mb "$out/floor.tar.zst") a_gp=$(mb "$out/gopack.tar.zst") a_cp=$(mb "$out/conda-pack.tar.gz")
  printf 'archive_floor=%s\narchive_gopack=%s\narchive_condapack=%s\n' "$a_floor" "$a_gp" "$a_cp" >>"$out/results"

  # --- unpack, each into a fresh directory on this filesystem
  d=${unpack_dir:-$out}/gopack-compare-dest
  measure unpack_floor fresh_dest sh -c "mkdir '$d' && zstd -dc '$out/gopack.tar.zst' | tar -xf - -C '$d'"
  local uf_s=$secs uf_rss=$rss
  measure unpack_gopack fresh_dest "$gopack" unpack -q "$out/gopack.tar.zst" -d "$d"
  local ug_s=$secs ug_rss=$rss
  # conda-unpack's shebang is `#!/usr/bin/env python`: run it with the environment's bin/ first
  # on PATH, as after `source bin/activate`.
  measure unpack_condapack fresh_dest sh -c "mkdir '$d' && tar -xzf '$out/conda-pack.tar.gz' -C '$d' &&
    PATH='$d/bin':\"\$PATH\" '$d/bin/conda-unpack'"
  local uc_s=$secs uc_rss=$rss

  # --- relocation alone, on the target, after a plain tar -x (not timed)
  measure reloc_default extracted_gopack "$dash" "$d/bin/gopack-unpack" -q
  local rd_s=$secs rd_rss=$rss
  measure reloc_sh extracted_gopack env GOPACK_UNPACK_SH=1 "$dash" "$d/bin/gopack-unpack" -q
  local rs_s=$secs rs_rss=$rss
  measure reloc_condapack extracted_condapack env PATH="$d/bin:$PATH" "$d/bin/conda-unpack"
  local rc_s=$secs rc_rss=$rss
  rm -rf "$d"

  local row='%-9s %-44s %8s %8s %7s MB %7s\n'
  printf '\n'"$row" "step" "run" "seconds" "ratio" "RSS" "archive"
  printf "$row" pack "tar | zstd -3 -T0 (floor)" "$pf_s" "1.00" "$pf_rss" "$a_floor MB"
  printf "$row" pack "gopack create (vs floor)" "$pg_s" "$(ratio "$pg_s" "$pf_s")" "$pg_rss" "$a_gp MB"
  printf "$row" pack "conda-pack -j 2 (vs floor)" "$pc_s" "$(ratio "$pc_s" "$pf_s")" "$pc_rss" "$a_cp MB"
  printf "$row" unpack "zstd -dc | tar -x (floor)" "$uf_s" "1.00" "$uf_rss" "-"
  printf "$row" unpack "gopack unpack (vs floor)" "$ug_s" "$(ratio "$ug_s" "$uf_s")" "$ug_rss" "-"
  printf "$row" unpack "tar -xzf + conda-unpack (vs floor)" "$uc_s" "$(ratio "$uc_s" "$uf_s")" "$uc_rss" "-"
  printf "$row" relocate "dash gopack-unpack (default; vs conda)" "$rd_s" "$(ratio "$rd_s" "$rc_s")" "$rd_rss" "-"
  printf "$row" relocate "dash gopack-unpack, SH=1 (vs conda)" "$rs_s" "$(ratio "$rs_s" "$rc_s")" "$rs_rss" "-"
  printf "$row" relocate "conda-unpack" "$rc_s" "1.00" "$rc_rss" "-"
  echo
  awk -v pg="$pg_s" -v pf="$pf_s" -v pc="$pc_s" -v ug="$ug_s" -v uf="$uf_s" -v uc="$uc_s" \
    -v rd="$rd_s" -v rs="$rs_s" -v rc="$rc_s" 'function r(a, b) { return b > 0 ? a / b : 0 }
    BEGIN {
      printf "pack:     gopack / floor %.2fx (target <= 1.2x); conda-pack / gopack %.2fx faster (target >= 3x)\n", r(pg, pf), r(pc, pg)
      printf "unpack:   gopack / floor %.2fx; conda-pack / gopack %.2fx faster\n", r(ug, uf), r(uc, ug)
      printf "relocate: conda-unpack / gopack-unpack %.2fx (default), %.2fx (sh)\n", r(rc, rd), r(rc, rs)
    }'
}

for f in $factors; do
  run_factor "$f"
done

# --- summary over the factors
get() { sed -n "s/^$2=//p" "$work/x$1/results"; }
echo
echo "## Summary"
echo
echo "Seconds$([ "$runs" -gt 1 ] && echo " (median of $runs runs)"), on $cores cores. In brackets: the time over the floor's"
echo "(×floor), over conda-pack's (×conda-pack; below 1 = gopack is faster), the archive size."
echo
echo "| factor | files | GB | pack: floor | gopack create | conda-pack | unpack: floor | gopack unpack | tar -xzf + conda-unpack | relocate: gopack-unpack | gopack-unpack (sh) | conda-unpack | peak RSS create / unpack |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for f in $factors; do
  pf=$(get "$f" pack_floor_s) pg=$(get "$f" pack_gopack_s) pc=$(get "$f" pack_condapack_s)
  uf=$(get "$f" unpack_floor_s) ug=$(get "$f" unpack_gopack_s) uc=$(get "$f" unpack_condapack_s)
  rd=$(get "$f" reloc_default_s) rs=$(get "$f" reloc_sh_s) rc=$(get "$f" reloc_condapack_s)
  printf '| %sx | %s | %s | %s (%s MB) | %s (%s×floor, %s×conda-pack, %s MB) | %s (%s×floor, %s MB) | %s | %s (%s×floor, %s×conda-pack) | %s (%s×floor) | %s (%s×conda-pack) | %s (%s×conda-pack) | %s | %s / %s MB |\n' \
    "$f" "$(get "$f" files)" "$(get "$f" gb)" \
    "$pf" "$(get "$f" archive_floor)" \
    "$pg" "$(ratio "$pg" "$pf")" "$(ratio "$pg" "$pc")" "$(get "$f" archive_gopack)" \
    "$pc" "$(ratio "$pc" "$pf")" "$(get "$f" archive_condapack)" \
    "$uf" "$ug" "$(ratio "$ug" "$uf")" "$(ratio "$ug" "$uc")" "$uc" "$(ratio "$uc" "$uf")" \
    "$rd" "$(ratio "$rd" "$rc")" "$rs" "$(ratio "$rs" "$rc")" "$rc" \
    "$(get "$f" pack_gopack_rss)" "$(get "$f" unpack_gopack_rss)"
done

# --- memory per file above the smallest factor measured
set -- $factors
lo=$1
for f in $factors; do [ "$f" -lt "$lo" ] && lo=$f; done
echo
for f in $factors; do
  [ "$f" -eq "$lo" ] && continue
  awk -v f="$f" -v lo="$lo" -v n1="$(get "$lo" files)" -v n2="$(get "$f" files)" \
    -v c1="$(get "$lo" pack_gopack_rss)" -v c2="$(get "$f" pack_gopack_rss)" \
    -v u1="$(get "$lo" unpack_gopack_rss)" -v u2="$(get "$f" unpack_gopack_rss)" 'BEGIN {
      d = n2 - n1
      if (d <= 0) { printf "memory per file %sx vs %sx: no more files\n", f, lo; exit }
      printf "memory per file, %sx vs %sx (%d more files): gopack create %+.0f bytes/file (%d -> %d MB), gopack unpack %+.0f bytes/file (%d -> %d MB)\n",
        f, lo, d, (c2 - c1) * 1048576 / d, c1, c2, (u2 - u1) * 1048576 / d, u1, u2
    }'
done
