#!/usr/bin/env bash
# Makes the relocatable bundle of forkd: a folder that runs on any glibc
# Linux (x86-64 or arm64, glibc at least as new as the build machine's)
# whatever else is installed there, e.g. copied into an app's image by the
# Helm chart's app mode or by `COPY --from` (Dockerfile).
#
#   scripts/bundle.sh [OUT] [FORKD] [FORKCTL]
#     OUT      default $BUILD_DIR/forkd-bundle ($BUILD_DIR default ./build)
#     FORKD    default $BUILD_DIR/forkd;  FORKCTL default $BUILD_DIR/forkctl
#
#   OUT/bin/forkd, OUT/bin/forkctl   debug info stripped (symbols kept)
#   OUT/lib/                         every shared library they load except
#                                    glibc's own, under its soname
#   OUT/MANIFEST                     the libraries and the glibc they need
#
# The binaries look in $ORIGIN/../lib, the libraries in $ORIGIN. That path
# is a DT_RPATH, not a DT_RUNPATH: the loader searches DT_RPATH before
# LD_LIBRARY_PATH, so an app image that sets LD_LIBRARY_PATH (conda, CUDA
# images) cannot slip its own libstdc++ or libssl under forkd, and a
# library's own dependencies are found in the bundle too.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
out="${1:-$build/forkd-bundle}"
forkd="${2:-$build/forkd}"
forkctl="${3:-$build/forkctl}"

die() { echo "bundle.sh: $*" >&2; exit 1; }
for tool in ldd patchelf objcopy; do
  command -v "$tool" >/dev/null || die "$tool not found (scripts/install-deps.sh --build-only)"
done
for b in "$forkd" "$forkctl"; do
  [[ -x "$b" ]] || die "$b is not an executable (build forkd first: scripts/build.sh)"
done

# glibc's own libraries: the one part every glibc system has, and that
# must match its loader, so the bundle never carries them.
is_glibc() {
  case "$1" in
    linux-vdso.so.* | linux-gate.so.* | ld-linux*.so.* | libc.so.* | libm.so.* | \
    libmvec.so.* | libpthread.so.* | libdl.so.* | librt.so.* | libresolv.so.* | \
    libutil.so.* | libanl.so.* | libnss_*.so.* | libBrokenLocale.so.* | \
    libthread_db.so.* | libc_malloc_debug.so.*) return 0 ;;
  esac
  return 1
}

tmp="$out.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin" "$tmp/lib"

declare -A libs=()
for b in "$forkd" "$forkctl"; do
  name="$(basename "$b")"
  objcopy --strip-debug "$b" "$tmp/bin/$name"
  chmod 0755 "$tmp/bin/$name"
  # ldd lists the whole closure: name => path, or "not found".
  while read -r soname arrow path _; do
    [[ "$arrow" == "=>" ]] || continue
    is_glibc "$soname" && continue
    [[ "$path" == /* ]] || die "$name: $soname not found on this machine"
    libs["$soname"]="$path"
  done < <(ldd "$b")
done
((${#libs[@]} > 0)) || die "ldd found no libraries to bundle: a static build needs no bundle"

for soname in "${!libs[@]}"; do
  objcopy --strip-debug "${libs[$soname]}" "$tmp/lib/$soname"
  chmod 0644 "$tmp/lib/$soname"
  patchelf --force-rpath --set-rpath '$ORIGIN' "$tmp/lib/$soname"
done
for b in "$tmp"/bin/*; do
  patchelf --force-rpath --set-rpath '$ORIGIN/../lib' "$b"
done

# The newest GLIBC_ symbol version anything in the bundle needs: the
# oldest glibc the bundle runs on.
glibc="$(objdump -T "$tmp"/bin/* "$tmp"/lib/* 2>/dev/null \
  | grep -o 'GLIBC_[0-9][0-9.]*' | sort -u -V | tail -n 1)"
{
  echo "forkd bundle: bin/forkd bin/forkctl, libraries in lib/ (DT_RPATH \$ORIGIN/../lib)"
  echo "needs: ${glibc:-GLIBC_?} or newer ($(uname -m))"
  echo "from: $("$forkd" --version 2>/dev/null | head -n 1)"
  for soname in $(printf '%s\n' "${!libs[@]}" | sort); do
    echo "lib: $soname"
  done
} >"$tmp/MANIFEST"

# Every library the bundled binaries load now resolves inside the bundle.
for b in "$tmp"/bin/*; do
  while read -r soname arrow path _; do
    [[ "$arrow" == "=>" ]] || continue
    is_glibc "$soname" && continue
    [[ "$path" == "$tmp/lib/$soname" || "$(realpath "$path")" == "$(realpath "$tmp/lib/$soname")" ]] \
      || die "$(basename "$b"): $soname resolves to $path, not to the bundle"
  done < <(env -u LD_LIBRARY_PATH ldd "$b")
done

rm -rf "$out"
mv "$tmp" "$out"
trap - EXIT
echo "bundle.sh: $out ($(du -sh "$out" | cut -f1), ${#libs[@]} libraries, needs ${glibc:-?})"
