#!/usr/bin/env bash
# Runs every vbackup test on a fresh Debian machine with the Rust toolchain.
#
# It installs what the tests need (moto for a real S3 endpoint, restic to prove the volume
# repositories stay readable by the stock tool), starts an authenticated S3 server on
# 127.0.0.1 for the whole run, runs `cargo test` on the workspace and stops what it started.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh -p vbackup-engine`).
set -euo pipefail
cd "$(dirname "$0")/.."

MOTO_VERSION=5.2.5 # 5.2.1 answers CompleteMultipartUpload with a root element the SDK rejects

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

install_prerequisites() {
    local missing=()
    command -v restic >/dev/null || missing+=(restic)
    command -v kubectl >/dev/null || missing+=(kubectl)
    command -v unshare >/dev/null || missing+=(util-linux)
    command -v ip >/dev/null || missing+=(iproute2) # the test cluster's pod networks
    # Real database servers for the dump tests (started by the tests themselves).
    command -v mariadbd >/dev/null || [ -x /usr/sbin/mariadbd ] || missing+=(mariadb-server)
    compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v buildah >/dev/null || missing+=(buildah) # the container image check
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]} from Debian's packages" >&2
        as_root apt-get update -qq
        # Packages must not start their services here: the tests start their own servers.
        local no_start=
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            no_start=1
            printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
            as_root chmod +x /usr/sbin/policy-rc.d
        fi
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
        if [ -n "$no_start" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
    fi
    if [ "$(python3 -c 'import moto; print(moto.__version__)' 2>/dev/null)" != "$MOTO_VERSION" ]; then
        echo "installing moto $MOTO_VERSION from PyPI" >&2
        python3 -m pip install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION"
    fi
}

start_s3() {
    # Request logs would drown the test output; keep them for when a test needs them.
    MOTO_LOG="${TMPDIR:-/tmp}/vbackup-test-moto.log"
    coproc MOTO { exec python3 tests/support/moto_server.py 2>"$MOTO_LOG"; }
    local line
    if ! IFS= read -r -t 60 line <&"${MOTO[0]}"; then
        echo "error: moto did not start (python3 tests/support/moto_server.py)" >&2
        exit 1
    fi
    VBACKUP_TEST_S3_ENDPOINT=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["endpoint"])' "$line")
    VBACKUP_TEST_S3_ACCESS_KEY_ID=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["access_key_id"])' "$line")
    VBACKUP_TEST_S3_SECRET_ACCESS_KEY=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["secret_access_key"])' "$line")
    export VBACKUP_TEST_S3_ENDPOINT VBACKUP_TEST_S3_ACCESS_KEY_ID VBACKUP_TEST_S3_SECRET_ACCESS_KEY
    echo "S3 test server (moto $MOTO_VERSION, authenticated) at $VBACKUP_TEST_S3_ENDPOINT, log in $MOTO_LOG" >&2
}

stop_s3() {
    if [ -n "${MOTO_PID:-}" ]; then
        kill "$MOTO_PID" 2>/dev/null || true
        wait "$MOTO_PID" 2>/dev/null || true
    fi
}

install_prerequisites
trap stop_s3 EXIT
start_s3
cargo test --workspace --locked --no-fail-fast "$@"
# The image is proven, not just written: built offline from the Dockerfile and its binaries
# run from it. Only on a full run (extra arguments select tests).
if [ $# -eq 0 ]; then scripts/image.sh --check; fi
