#!/usr/bin/env bash
# Checks the Helm chart: helm lint, the rendered manifests against Kubernetes' schemas
# (kubernetes-validate --strict), and a server-side dry run against the test API server.
#
#   tests/k8s/chart-check.sh            (after `tests/k8s/testenv.sh up`)
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tests/k8s
bin=$("$here/testenv.sh" tools)
venv="$(dirname "$bin")/venv/bin"
kubeconfig="${ROLECALL_TEST_KUBECONFIG:-/tmp/rolecall-k8s/kubeconfig}"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

"$bin/helm" lint --strict charts/rolecall
"$bin/helm" lint --strict charts/rolecall --set metrics.serviceMonitor.enabled=true \
    --set controller.watchNamespace=team-a --set controller.selector=shard=a

# Both RBAC shapes: cluster-wide, and one watched namespace.
"$bin/helm" template rc charts/rolecall --namespace rolecall-chart --include-crds >"$out/cluster.yaml"
"$bin/helm" template rc charts/rolecall --namespace rolecall-chart \
    --set controller.watchNamespace=rolecall-chart >"$out/namespaced.yaml"
"$venv/kubernetes-validate" --strict --quiet "$out/cluster.yaml" "$out/namespaced.yaml"

if [ -f "$kubeconfig" ]; then
    export KUBECONFIG="$kubeconfig"
    "$bin/kubectl" get namespace rolecall-chart >/dev/null 2>&1 || "$bin/kubectl" create namespace rolecall-chart >/dev/null
    "$bin/kubectl" apply --dry-run=server -f "$out/cluster.yaml" >/dev/null
    "$bin/kubectl" apply --dry-run=server -f "$out/namespaced.yaml" >/dev/null
    echo "chart-check: lint, kubernetes-validate --strict and a server dry run passed"
else
    echo "chart-check: no test API server ($kubeconfig); ran lint and kubernetes-validate only" >&2
    exit 1
fi
