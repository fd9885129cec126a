#!/usr/bin/env bash
# Admission webhook benchmark on loopback: requests/s and latency (p50/p99) at 1, 16 and 64
# connections with a realistic pod (the bitnami MariaDB StatefulSet's pod, ~2.3 KiB review),
# and the server's peak RSS. Needs `wrk` (Debian) and `openssl`.
#
#   scripts/bench-webhook.sh [path/to/vbackup-webhook] [seconds per run]
#
# Prints a Markdown table for BENCHMARKS.md, with the load average beside the figures: on a
# shared machine other processes take CPU from both wrk and the server.
set -euo pipefail
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/vbackup-webhook}
SECS=${2:-10}
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'kill "$PID" 2>/dev/null || true; rm -rf "$WORK"' EXIT
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.crt" 2>/dev/null
cat > "$WORK/review.json" <<'JSON'
{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"b2c7e0a4-1f7e-4a3b-9d1e-2f0c3a4b5c6d","kind":{"group":"","version":"v1","kind":"Pod"},"resource":{"group":"","version":"v1","resource":"pods"},"requestKind":{"group":"","version":"v1","kind":"Pod"},"requestResource":{"group":"","version":"v1","resource":"pods"},"name":"mariadb-0","namespace":"shop","operation":"CREATE","userInfo":{"username":"system:serviceaccount:kube-system:statefulset-controller","groups":["system:serviceaccounts","system:serviceaccounts:kube-system","system:authenticated"]},"object":{"apiVersion":"v1","kind":"Pod","metadata":{"name":"mariadb-0","generateName":"mariadb-","namespace":"shop","labels":{"app.kubernetes.io/instance":"mariadb","app.kubernetes.io/managed-by":"Helm","app.kubernetes.io/name":"mariadb","app.kubernetes.io/version":"11.4.3","helm.sh/chart":"mariadb-19.0.5","controller-revision-hash":"mariadb-6d5f8b7c9","statefulset.kubernetes.io/pod-name":"mariadb-0"},"annotations":{"checksum/configuration":"8f1c2a9e0b7d"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"StatefulSet","name":"mariadb","uid":"5d1c7c1e-0a4f-4e0e-9f55-0b9a1f2e3d4c","controller":true,"blockOwnerDeletion":true}]},"spec":{"serviceAccountName":"mariadb","securityContext":{"fsGroup":1001,"fsGroupChangePolicy":"Always"},"initContainers":[{"name":"preserve-logs-symlinks","image":"docker.io/bitnami/mariadb:11.4.3-debian-12-r0","command":["/bin/bash"],"args":["-ec","#!/bin/bash\n. /opt/bitnami/scripts/libfs.sh\n"],"volumeMounts":[{"name":"empty-dir","mountPath":"/emptydir"}]}],"containers":[{"name":"mariadb","image":"docker.io/bitnami/mariadb:11.4.3-debian-12-r0","imagePullPolicy":"IfNotPresent","securityContext":{"runAsUser":1001,"runAsNonRoot":true,"allowPrivilegeEscalation":false,"capabilities":{"drop":["ALL"]}},"env":[{"name":"BITNAMI_DEBUG","value":"false"},{"name":"MARIADB_ROOT_PASSWORD","valueFrom":{"secretKeyRef":{"name":"mariadb","key":"mariadb-root-password"}}},{"name":"MARIADB_ENABLE_SSL","value":"no"}],"ports":[{"name":"mysql","containerPort":3306,"protocol":"TCP"}],"livenessProbe":{"exec":{"command":["/bin/bash","-ec","password_aux=\"${MARIADB_ROOT_PASSWORD:-}\"\nmysqladmin status -uroot -p\"${password_aux}\"\n"]},"initialDelaySeconds":120,"periodSeconds":10},"resources":{"limits":{"cpu":"375m","memory":"384Mi"},"requests":{"cpu":"250m","memory":"256Mi"}},"volumeMounts":[{"name":"data","mountPath":"/bitnami/mariadb"},{"name":"config","mountPath":"/opt/bitnami/mariadb/conf/my.cnf","subPath":"my.cnf"},{"name":"empty-dir","mountPath":"/tmp","subPath":"tmp-dir"},{"name":"kube-api-access-x7k2p","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount","readOnly":true}]}],"volumes":[{"name":"empty-dir","emptyDir":{}},{"name":"config","configMap":{"name":"mariadb","defaultMode":420}},{"name":"data","persistentVolumeClaim":{"claimName":"data-mariadb-0"}},{"name":"kube-api-access-x7k2p","projected":{"defaultMode":420,"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}]}}]}},"dryRun":false}}
JSON
cat > "$WORK/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("$WORK/review.json", "rb"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  io.write(string.format("RESULT %.0f %.3f %.3f %d %d\n", summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, summary.errors.status, summary.requests))
end
LUA
"$BIN" --standalone --listen 127.0.0.1:0 --tls-cert-file "$WORK/tls.crt" --tls-key-file "$WORK/tls.key" \
  > "$WORK/out" 2>/dev/null &
PID=$!
for _ in $(seq 100); do grep -q listening "$WORK/out" 2>/dev/null && break; sleep 0.1; done
URL="$(sed -n 's/^listening on //p' "$WORK/out")/mutate"
curl -sk --fail -o /dev/null -d @"$WORK/review.json" "$URL" || { echo "webhook does not answer at $URL" >&2; exit 1; }
echo "| connections | requests/s | p50 ms | p99 ms | non-2xx | load average (1 min) |"
echo "|---|---|---|---|---|---|"
for c in 1 16 64; do
  t=$(( c < 2 ? 1 : 2 ))
  read -r _ rps p50 p99 errs _ < <(wrk -t"$t" -c"$c" -d"${SECS}s" -s "$WORK/post.lua" "$URL" | grep '^RESULT')
  echo "| $c | $rps | $p50 | $p99 | $errs | $(cut -d' ' -f1 /proc/loadavg) |"
done
echo
echo "server peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$PID/status);" \
  "server CPU: $(awk '{printf "%.1f s", ($14+$15)/100}' /proc/$PID/stat); cores: $(nproc)"
