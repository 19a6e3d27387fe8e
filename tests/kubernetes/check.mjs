// check.mjs — a schema check of the Kubernetes manifests, for machines
// without a cluster (kubectl --dry-run=client needs an API server to ask
// for its schema; there is none in CI).
//
//   node tests/kubernetes/check.mjs contrib/kubernetes/*.yaml
//
// Each document is checked twice against the Kubernetes API's own
// OpenAPI schema, as packaged for Node:
//  - kubernetes-models validates types, required fields, enums and
//    formats (quantities, int32, ...), the way the API server would;
//  - the field list of each type (@kubernetes/client-node's generated
//    models) catches unknown fields, a misspelt "parallelism" say, which
//    the API server's strict field validation refuses but a schema
//    without additionalProperties lets through.
// A Kustomization must list exactly the other files given from its own
// directory.  Exits 1 with
// every problem found, 0 with one line per document checked.
import { readFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import YAML from "yaml";
// Only the generated models: the client itself wants a newer Node.
import * as gen from "@kubernetes/client-node/dist/gen/models/all.js";

const KINDS = {
  "v1/ConfigMap": ["kubernetes-models/v1/ConfigMap", "V1ConfigMap"],
  "v1/Secret": ["kubernetes-models/v1/Secret", "V1Secret"],
  "v1/Service": ["kubernetes-models/v1/Service", "V1Service"],
  "v1/Pod": ["kubernetes-models/v1/Pod", "V1Pod"],
  "v1/PersistentVolumeClaim": ["kubernetes-models/v1/PersistentVolumeClaim",
    "V1PersistentVolumeClaim"],
  "apps/v1/Deployment": ["kubernetes-models/apps/v1/Deployment",
    "V1Deployment"],
  "batch/v1/CronJob": ["kubernetes-models/batch/v1/CronJob", "V1CronJob"],
  "batch/v1/Job": ["kubernetes-models/batch/v1/Job", "V1Job"],
};

const problems = [];

// Every key of `value` must be a field of `type` (a client-node type
// name: "V1JobSpec", "Array<V1Container>", "{ [key: string]: string; }").
function strict(value, type, path) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (Array.isArray(value))
      value.forEach((v, i) => strict(v, m[1], `${path}[${i}]`));
    return;
  }
  if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    for (const [k, v] of Object.entries(value))
      strict(v, m[1], `${path}.${k}`);
    return;
  }
  const cls = gen[type];
  if (!cls || typeof cls.getAttributeTypeMap !== "function") return;
  if (typeof value !== "object" || Array.isArray(value)) return;
  const fields = new Map(cls.getAttributeTypeMap().map(a => [a.baseName, a]));
  for (const [k, v] of Object.entries(value)) {
    const f = fields.get(k);
    if (!f) {
      problems.push(`${path}: unknown field "${k}" (${type} has: ` +
                    `${[...fields.keys()].join(", ")})`);
      continue;
    }
    strict(v, f.type, `${path}.${k}`);
  }
}

async function check(file, doc, others) {
  const where = `${basename(file)}: ${doc.kind ?? "?"} ` +
                `${doc.metadata?.name ?? ""}`.trim();
  if (doc.kind === "Kustomization") {
    const listed = [...(doc.resources ?? [])].sort();
    const want = others.filter(f => dirname(f) === dirname(file) &&
                                    f !== file).map(f => basename(f)).sort();
    if (JSON.stringify(listed) !== JSON.stringify(want))
      problems.push(`${where}: lists ${listed.join(", ")}, ` +
                    `but the manifests are ${want.join(", ")}`);
    return where;
  }
  const key = `${doc.apiVersion}/${doc.kind}`;
  const known = KINDS[key];
  if (!known) {
    problems.push(`${where}: ${key} is not a kind this check knows`);
    return where;
  }
  const mod = await import(known[0]);
  const Model = mod[doc.kind];
  try {
    new Model(doc).validate();
  } catch (e) {
    problems.push(`${where}: ${e.message}`);
  }
  strict(doc, known[1], where);
  return where;
}

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node check.mjs FILE.yaml...");
  process.exit(2);
}
const names = files;
let n = 0;
for (const file of files) {
  // YAML 1.1, as Kubernetes reads it.
  const docs = YAML.parseAllDocuments(readFileSync(file, "utf8"),
                                      { version: "1.1" });
  for (const d of docs) {
    if (d.errors.length) {
      problems.push(`${basename(file)}: ${d.errors.map(e => e.message)}`);
      continue;
    }
    const doc = d.toJS();
    if (doc === null) continue;
    console.log("checked " + await check(file, doc, names));
    n++;
  }
}
if (problems.length) {
  for (const p of problems) console.error("check.mjs: " + p);
  process.exit(1);
}
console.log(`${n} documents, no problem`);
