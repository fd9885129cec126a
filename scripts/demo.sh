#!/usr/bin/env bash
# The main job, all local and with no cloud account: a test Kubernetes cluster (the
# embedded default), vbackup's CRDs, a filesystem storage location, then an application
# backed up, its namespace deleted, and everything restored — driven through real kubectl
# exactly as on a production cluster. The test cluster's node needs root (mount namespaces).
set -euo pipefail
cd "$(dirname "$0")/.."

DEMO_DIR="${DEMO_DIR:-$(mktemp -d -t vbackup-demo.XXXXXX)}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "building kubectl-vbackup and the test cluster"
cargo build --quiet --locked -p kubectl-vbackup -p vbackup-webhook -p vbackup-testcluster
BIN="$CARGO_TARGET_DIR/debug"
mkdir -p "$DEMO_DIR/bin"
ln -sf "$BIN/kubectl-vbackup" "$DEMO_DIR/bin/kubectl-vbackup"
export PATH="$DEMO_DIR/bin:$PATH"

step "starting a local Kubernetes API server (state in $DEMO_DIR/cluster)"
# vbackup's image is the build's output directory: mover pods run the kubectl-vbackup just built.
# TLS: scheduled runs are in-cluster clients, which speak https to the API server.
"$BIN/vbackup-testcluster" --node --tls --port 0 --state-dir "$DEMO_DIR/cluster" \
    --image-map "ghcr.io/vbackup/vbackup=$BIN" \
    --image-map "mariadb=$PWD/kubectl-vbackup/tests/fixtures/dbserver.sh" \
    --kubeconfig-out "$DEMO_DIR/kubeconfig" >"$DEMO_DIR/cluster.log" 2>&1 &
CLUSTER_PID=$!
trap 'kill $CLUSTER_PID 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$DEMO_DIR/kubeconfig" ] && break; sleep 0.1; done
export KUBECONFIG="$DEMO_DIR/kubeconfig"
run kubectl version
# Another kubectl-vbackup on PATH (e.g. after `cargo install --path kubectl-vbackup`) makes
# `kubectl plugin list` warn that it is overshadowed and exit 1: a note about the machine, not
# a failure of the demo, which runs the binary just built (first on PATH).
printf '$ kubectl plugin list\n'
kubectl plugin list || true
echo "kubectl vbackup runs $(readlink -f "$(command -v kubectl-vbackup)") (built above)"

step "installing vbackup's custom resources"
run kubectl apply -f manifests/crds/
run kubectl wait --for condition=established --timeout=60s -f manifests/crds/

step "creating the default storage location: a local directory mover pods reach by hostPath"
mkdir -p "$DEMO_DIR/store"
run kubectl vbackup location create local --provider filesystem --path "$DEMO_DIR/store" --pod-access hostPath --default
run kubectl vbackup location get
run kubectl vbackup location check local

step "deploying the shop application"
run kubectl apply -f manifests/examples/shop.yaml
run kubectl apply -f manifests/examples/shop-db.yaml
for _ in $(seq 300); do
    [ "$(kubectl get statefulset db -n shop -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = 1 ] &&
        [ "$(kubectl get deployment web -n shop -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = 2 ] && break
    sleep 0.2
done
run kubectl get deployments,statefulsets,services,pvc -n shop
before=$(kubectl get configmaps,secrets,serviceaccounts,services,deployments,statefulsets,persistentvolumeclaims -n shop \
    -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}{"\n"}{end}' | grep -v kube-root-ca.crt | sort)

step "the shop writes data into its volumes"
run kubectl exec -n shop db-0 -- sh -c 'for i in 1 2 3; do echo "order $i: $((i * 3)) coffees" >> /var/lib/postgresql/data/orders.log; done'
run kubectl exec -n shop deploy/web -- sh -c 'mkdir -p /srv/uploads/thumbnails && echo "the shop logo" > /srv/uploads/logo.txt && echo small > /srv/uploads/thumbnails/logo.png'
SQL='MYSQL_PWD="$MARIADB_ROOT_PASSWORD" mariadb -uroot -N'
for _ in $(seq 300); do kubectl exec -n shop orders-db-0 -- sh -c "$SQL -e 'SELECT 1'" >/dev/null 2>&1 && break; sleep 0.2; done
run kubectl exec -n shop orders-db-0 -- sh -c "$SQL -e \"CREATE DATABASE shop; CREATE TABLE shop.orders (id INT PRIMARY KEY, item TEXT);
    INSERT INTO shop.orders VALUES (1, 'espresso'), (2, 'flat white'), (3, 'cortado');\""
rows=$(kubectl exec -n shop orders-db-0 -- sh -c "$SQL -e 'SELECT * FROM shop.orders ORDER BY id'")
echo "$rows"
orders=$(kubectl exec -n shop db-0 -- cat /var/lib/postgresql/data/orders.log)
logo=$(kubectl exec -n shop deploy/web -- cat /srv/uploads/logo.txt)
echo "$orders"

step "why each volume is (or is not) copied: the policy the webhook and backups share"
run kubectl vbackup explain pod/db-0 -n shop
web_pod=$(kubectl get pods -n shop -l app=web -o jsonpath='{.items[0].metadata.name}')
run kubectl vbackup explain "pod/$web_pod" -n shop

step "backing up the namespace"
run kubectl vbackup backup create shop-1 --include-namespaces shop
run kubectl vbackup backup get
run kubectl vbackup backup describe shop-1
run sh -c 'kubectl vbackup backup logs shop-1 | grep -E "\"(dumped|dump-failed)\""'

step "verify: the backup restored into a scratch namespace, its orders counted, the copy deleted"
run kubectl vbackup verify --backup shop-1 --timeout 3m

step "a ReadOnly location refuses new backups before writing a byte"
run kubectl vbackup location set-readonly local
if kubectl vbackup backup create shop-2 --include-namespaces shop; then
    echo "demo failed: a ReadOnly location accepted a backup" >&2; exit 1
fi
run kubectl vbackup location set-readonly local --off

step "disaster: kubectl delete namespace shop"
run kubectl delete namespace shop --wait=true
run kubectl get namespaces

step "restoring from the backup"
run kubectl vbackup restore create shop-restore --from-backup shop-1
run kubectl vbackup restore describe shop-restore
run kubectl get deployments,statefulsets,services,pvc -n shop
after=$(kubectl get configmaps,secrets,serviceaccounts,services,deployments,statefulsets,persistentvolumeclaims -n shop \
    -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}{"\n"}{end}' | grep -v kube-root-ca.crt | sort)
if [ "$before" != "$after" ]; then
    echo "demo failed: objects differ after the restore" >&2
    diff <(echo "$before") <(echo "$after") >&2 || true
    exit 1
fi
echo "every object of namespace shop is back: $(echo "$after" | wc -l) objects"

step "the data is back too, before the shop started"
for _ in $(seq 300); do
    [ "$(kubectl get statefulset db -n shop -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = 1 ] &&
        [ "$(kubectl get deployment web -n shop -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = 2 ] && break
    sleep 0.2
done
run kubectl exec -n shop db-0 -- cat /var/lib/postgresql/data/orders.log
[ "$(kubectl exec -n shop db-0 -- cat /var/lib/postgresql/data/orders.log)" = "$orders" ] ||
    { echo "demo failed: the orders are not back" >&2; exit 1; }
[ "$(kubectl exec -n shop deploy/web -- cat /srv/uploads/logo.txt)" = "$logo" ] ||
    { echo "demo failed: the uploads are not back" >&2; exit 1; }
if kubectl exec -n shop deploy/web -- test -e /srv/uploads/thumbnails/logo.png 2>/dev/null; then
    echo "demo failed: an excluded path was restored" >&2; exit 1
fi
echo "orders and uploads are back; the excluded thumbnails were not copied"

step "the order database is back from its dump (its files were never copied)"
for _ in $(seq 300); do
    got=$(kubectl exec -n shop orders-db-0 -- sh -c "$SQL -e 'SELECT * FROM shop.orders ORDER BY id'" 2>/dev/null || true)
    [ "$got" = "$rows" ] && break
    sleep 0.2
done
run kubectl exec -n shop orders-db-0 -- sh -c "$SQL -e 'SELECT * FROM shop.orders ORDER BY id'"
[ "$got" = "$rows" ] || { echo "demo failed: the database rows are not back" >&2; exit 1; }

step "one file deleted by mistake comes back on its own"
run kubectl exec -n shop deploy/web -- rm /srv/uploads/logo.txt
run kubectl vbackup snapshot ls --backup shop-1 -n shop --pvc uploads
run kubectl vbackup snapshot restore --backup shop-1 -n shop --pvc uploads --path logo.txt --into-pvc
run kubectl exec -n shop deploy/web -- cat /srv/uploads/logo.txt

step "a nightly schedule: a CronJob running the same binary in the cluster, as its own ServiceAccount"
run kubectl vbackup schedule create nightly --schedule "0 2 * * *" --time-zone Europe/Paris \
    --include-namespaces shop --keep-last 3
run kubectl vbackup schedule get
run kubectl vbackup schedule describe nightly
# What the CronJob runs at 02:00 (as its ServiceAccount, in the cluster: tests/schedules.rs),
# run here now with the same command.
run kubectl vbackup backup create --from-schedule nightly
run kubectl vbackup backup get

step "coverage: which claims are protected, by what, and since when (exit 1 when one is not)"
# The order database's files are excluded on purpose: its claim is protected by the dump.
run kubectl vbackup coverage -n shop
kubectl vbackup coverage -n shop | grep -q "database dump" ||
    { echo "demo failed: coverage does not count the order database's dump" >&2; exit 1; }

step "status: is every schedule keeping up? (exit 1 if not: ready for cron and CI)"
run kubectl vbackup status

step "installing vbackup: the admission webhook protects every new pod by default"
run kubectl vbackup install
run kubectl get deployment vbackup-webhook -n vbackup-system

step "a database pod nobody annotated: the webhook adds its dump and restore commands"
kubectl create namespace crm >/dev/null
run kubectl run customers -n crm --image=postgres:16 --env=POSTGRES_PASSWORD=demo-only-password
annotations=$(kubectl get pod customers -n crm -o go-template='{{range $k, $v := .metadata.annotations}}{{$k}}{{"\n"}}{{end}}')
echo "$annotations"
echo "$annotations" | grep -qx vbackup.io/backup-command ||
    { echo "demo failed: the webhook did not annotate the database pod" >&2; exit 1; }
run kubectl vbackup explain pod/customers -n crm

step "done: state in $DEMO_DIR (KUBECONFIG=$DEMO_DIR/kubeconfig)"
