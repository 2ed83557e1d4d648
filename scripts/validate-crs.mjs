// Validates the chart's custom resources (KEDA ScaledObjects, the Prometheus operator's
// PodMonitor, ServiceMonitor and PrometheusRule) against their own schemas, from the npm packages
// @kubernetes-models/keda and @kubernetes-models/prometheus-operator (scripts/check-helm.sh
// installs them into .tools/node). Reads the rendered manifests on stdin; a document of a
// kind it does not know is an error (the core kinds are kubernetes-validate's). Exits
// non-zero with the reason on the first invalid one.
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";

const modules = path.resolve(process.env.FERRY_NODE_MODULES ?? ".tools/node/node_modules");
const load = (name) => import(createRequire(path.join(modules, "x.js")).resolve(name));
const kinds = {
  "keda.sh/v1alpha1/ScaledObject": ["@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject", "ScaledObject"],
  "monitoring.coreos.com/v1/PodMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor", "PodMonitor"],
  "monitoring.coreos.com/v1/ServiceMonitor": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor", "ServiceMonitor"],
  "monitoring.coreos.com/v1/PrometheusRule": ["@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule", "PrometheusRule"],
};

let input = "";
for await (const chunk of process.stdin) input += chunk;
const yaml = (await load("js-yaml")).default;
const docs = yaml.loadAll(input).filter(Boolean);
if (docs.length === 0) {
  console.error("no manifests to validate");
  process.exit(1);
}
for (const doc of docs) {
  const key = `${doc.apiVersion}/${doc.kind}`;
  if (!kinds[key]) {
    console.error(`not a custom resource this script knows: ${key}`);
    process.exit(1);
  }
  const [module, name] = kinds[key];
  // By file: the prometheus-operator package exports its models to `import` only.
  const loaded = await import(pathToFileURL(path.join(modules, `${module}.js`)).href);
  const Model = loaded[name] ?? loaded.default?.[name];
  try {
    new Model(doc).validate();
  } catch (e) {
    console.error(`${key} ${doc.metadata?.name}: ${e.message}`);
    process.exit(1);
  }
  console.log(`valid: ${key} ${doc.metadata.name}`);
}
