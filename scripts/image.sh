#!/usr/bin/env bash
# Builds vbackup's container image from the Dockerfile (FROM scratch; kubectl-vbackup and
# vbackup-webhook statically linked; user 65532) with buildah, offline, then proves it: the
# image's own binaries run from the built image (`buildah run`), the image holds nothing else
# (no shell), and its user is 65532.
#
#   scripts/image.sh [--release] [--tag IMAGE] [--check]
#
# --release  optimised binaries (default: debug, as the test suite uses)
# --tag      the image's name (default ghcr.io/vbackup/vbackup:<workspace version>)
# --check    build in a throw-away buildah store and remove it afterwards (scripts/test.sh)
#
# Static linking: the gnu target with crt-static. With an explicit --target, RUSTFLAGS reach
# only the target's crates, not build scripts and proc-macros (which cannot be static). The
# binaries go to $CARGO_TARGET_DIR/<host triple>/, apart from the usual dynamic build.
# buildah runs as root with the vfs storage driver and chroot isolation (no overlay mounts or
# user namespaces needed, so it works inside containers and sandboxes).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=debug
check=
tag=
while [ $# -gt 0 ]; do
    case "$1" in
        --release) profile=release ;;
        --check) check=1 ;;
        --tag) tag="$2"; shift ;;
        *) echo "usage: scripts/image.sh [--release] [--tag IMAGE] [--check]" >&2; exit 2 ;;
    esac
    shift
done

version=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
tag="${tag:-ghcr.io/vbackup/vbackup:$version}"
triple=$(rustc -vV | sed -n 's/^host: //p')
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
bin_dir="$target_dir/$triple/$profile"
fail() { echo "image check failed: $*" >&2; exit 1; }

command -v buildah >/dev/null || fail "buildah is not installed (Debian: apt-get install buildah)"

echo "building static kubectl-vbackup and vbackup-webhook ($profile, $triple)" >&2
release_flag=()
[ "$profile" = release ] && release_flag=(--release)
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked "${release_flag[@]}" --target "$triple" -p kubectl-vbackup -p vbackup-webhook

for b in kubectl-vbackup vbackup-webhook; do
    # A static executable has no program interpreter (ld.so) and needs no shared library.
    if readelf -lW "$bin_dir/$b" | grep -q 'Requesting program interpreter' ||
        readelf -dW "$bin_dir/$b" | grep -q '(NEEDED)'; then
        fail "$bin_dir/$b is dynamically linked"
    fi
done

context=$(mktemp -d -t vbackup-image.XXXXXX)
store=
cleanup() {
    if [ -n "$store" ]; then
        buildah "${storage[@]}" rm -a >/dev/null 2>&1 || true
        buildah "${storage[@]}" rmi -a -f >/dev/null 2>&1 || true
        rm -rf "$store"
    fi
    rm -rf "$context"
}
trap cleanup EXIT
storage=(--storage-driver vfs)
if [ -n "$check" ]; then
    store=$(mktemp -d -t vbackup-buildah.XXXXXX)
    storage+=(--root "$store/root" --runroot "$store/run")
fi
cp Dockerfile LICENSE /etc/ssl/certs/ca-certificates.crt "$context/"
cp "$bin_dir/kubectl-vbackup" "$bin_dir/vbackup-webhook" "$context/"

buildah "${storage[@]}" bud --isolation chroot --quiet -t "$tag" "$context" >/dev/null
echo "built $tag" >&2

# The image as built: its files, its user, then its binaries run from it.
ctr=$(buildah "${storage[@]}" from --quiet "$tag")
root=$(buildah "${storage[@]}" mount "$ctr")
files=$(cd "$root" && find . -type f -o -type l | sort | tr '\n' ' ')
want="./LICENSE ./etc/ssl/certs/ca-certificates.crt ./usr/local/bin/kubectl-vbackup ./usr/local/bin/vbackup-webhook "
[ "$files" = "$want" ] || fail "the image holds [$files], expected [$want]"
cmp -s "$root/usr/local/bin/vbackup-webhook" "$bin_dir/vbackup-webhook" || fail "the image's vbackup-webhook is not the one built"
buildah "${storage[@]}" umount "$ctr" >/dev/null
user=$(buildah "${storage[@]}" inspect --format '{{.OCIv1.Config.User}}' "$tag")
[ "$user" = "65532:65532" ] || fail "the image runs as '$user', not 65532:65532"

run() { buildah "${storage[@]}" run --isolation chroot "$ctr" -- "$@"; }
out=$(run kubectl-vbackup version 2>&1) || fail "kubectl-vbackup version: $out"
grep -qx "Client Version: v$version" <<<"$out" || fail "kubectl-vbackup version printed: $out"
out=$(run vbackup-webhook --version 2>&1) || fail "vbackup-webhook --version: $out"
grep -qx "vbackup-webhook $version" <<<"$out" || fail "vbackup-webhook --version printed: $out"
if run /bin/sh -c true >/dev/null 2>&1; then fail "the image has a shell"; fi
buildah "${storage[@]}" rm "$ctr" >/dev/null
echo "image $tag: kubectl-vbackup and vbackup-webhook $version run from it as 65532, nothing else in it" >&2
