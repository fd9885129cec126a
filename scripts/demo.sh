#!/usr/bin/env bash
# The main job, all local and with no cloud account: a test Kubernetes API server (the
# embedded default cluster), vbackup's CRDs, and a filesystem storage location, driven
# through real kubectl exactly as on a production cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_DIR="${DEMO_DIR:-$(mktemp -d -t vbackup-demo.XXXXXX)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "building kubectl-vbackup and the test cluster"
cargo build --quiet --locked -p kubectl-vbackup -p vbackup-testcluster
BIN="$CARGO_TARGET_DIR/debug"
mkdir -p "$DEMO_DIR/bin"
ln -sf "$BIN/kubectl-vbackup" "$DEMO_DIR/bin/kubectl-vbackup"
export PATH="$DEMO_DIR/bin:$PATH"

step "starting a local Kubernetes API server (state in $DEMO_DIR/cluster)"
"$BIN/vbackup-testcluster" --port 0 --state-dir "$DEMO_DIR/cluster" \
    --kubeconfig-out "$DEMO_DIR/kubeconfig" >"$DEMO_DIR/cluster.log" 2>&1 &
CLUSTER_PID=$!
trap 'kill $CLUSTER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$DEMO_DIR/kubeconfig" ] && break; sleep 0.1; done
export KUBECONFIG="$DEMO_DIR/kubeconfig"
run kubectl version
run kubectl plugin list

step "installing vbackup's custom resources"
run kubectl apply -f manifests/crds/

step "creating the default storage location: a local directory"
run kubectl vbackup location create local --provider filesystem --path "$DEMO_DIR/store" --default
run kubectl vbackup location get
run kubectl vbackup location check local

step "a ReadOnly location refuses writes"
run kubectl vbackup location set-readonly local
run kubectl vbackup location check local
run kubectl vbackup location set-readonly local --off

step "done: state in $DEMO_DIR (KUBECONFIG=$DEMO_DIR/kubeconfig)"
