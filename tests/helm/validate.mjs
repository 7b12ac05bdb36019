// Validates Kubernetes objects against the Kubernetes OpenAPI schemas that
// the npm packages kubernetes-models and @kubernetes-models/prometheus-operator
// ship (compiled with @kubernetes-models/validate).
//
//   node validate.mjs FILE.json...     (each a JSON array of objects; "-" = stdin)
//
// Prints one JSON report on stdout:
//   {"ok": bool, "objects": [{"apiVersion", "kind", "name", "schema", "errors": [...]}]}
// and exits 1 when any object has an error. Per object:
//   - schema: the OpenAPI validation of its kind (types, enums, required
//     fields, formats), when the packages have a model for it (schema: true);
//   - strict fields: a field the schema does not know is an error (as
//     kubectl --validate=strict reports it). The compiled validators ignore
//     unknown fields, so the object is wrapped in a Proxy that records which
//     properties the validator read: every property it never looked at is
//     unknown to the schema;
//   - structure, for every object: apiVersion, kind, metadata.name (DNS
//     subdomain), label keys and values, no duplicate kind/namespace/name.
import { readFileSync, existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const modules = join(here, "node_modules");

function modelFile(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/")
    ? apiVersion.split("/")
    : ["", apiVersion];
  if (group === "monitoring.coreos.com") {
    return join(modules, "@kubernetes-models/prometheus-operator", group, version, kind + ".js");
  }
  return group === ""
    ? join(modules, "kubernetes-models", version, kind + ".js")
    : join(modules, "kubernetes-models", group, version, kind + ".js");
}

// The raw validate function of a kind (its model file imports it from
// _schemas/), or null when the packages have no model for the kind.
const validators = new Map();
async function validatorFor(apiVersion, kind) {
  const key = apiVersion + " " + kind;
  if (validators.has(key)) return validators.get(key);
  const file = modelFile(apiVersion, kind);
  let validate = null;
  if (existsSync(file)) {
    const m = /from\s*"(\.\.?\/[^"]*_schemas\/[A-Za-z0-9]+\.js)"/.exec(readFileSync(file, "utf8"));
    if (!m) throw new Error(`no _schemas import in ${file}`);
    const schemaUrl = new URL(m[1], pathToFileURL(file));
    ({ validate } = await import(schemaUrl.href));
  }
  validators.set(key, validate);
  return validate;
}

function watched(value, path, seen) {
  if (value === null || typeof value !== "object") return value;
  return new Proxy(value, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof prop !== "string") return v;
      seen.add(path + "/" + prop);
      return watched(v, path + "/" + prop, seen);
    },
    has(target, prop) {
      if (typeof prop === "string") seen.add(path + "/" + prop);
      return Reflect.has(target, prop);
    },
  });
}

function unknownFields(value, path, seen, out) {
  if (value === null || typeof value !== "object") return;
  for (const k of Object.keys(value)) {
    const p = path + "/" + k;
    if (!seen.has(p)) out.push(p);
    else unknownFields(value[k], p, seen, out);
  }
}

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;
// Kinds whose names must be DNS labels (63 characters, no dots).
const LABEL_NAMED = new Set(["Service", "Namespace"]);

function structuralErrors(obj) {
  const errors = [];
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    return ["not an object"];
  }
  if (typeof obj.apiVersion !== "string" || !obj.apiVersion) errors.push("apiVersion missing");
  if (typeof obj.kind !== "string" || !/^[A-Z][A-Za-z0-9]*$/.test(obj.kind || "")) errors.push("kind missing or malformed");
  const md = obj.metadata;
  if (!md || typeof md !== "object") return errors.concat("metadata missing");
  const name = md.name;
  if (typeof name !== "string" || name.length === 0) {
    errors.push("metadata.name missing");
  } else if (LABEL_NAMED.has(obj.kind) ? !(DNS_LABEL.test(name) && name.length <= 63)
                                        : !(DNS_SUBDOMAIN.test(name) && name.length <= 253)) {
    errors.push(`metadata.name ${JSON.stringify(name)} is not a valid ${obj.kind} name`);
  }
  if (md.namespace !== undefined && !(DNS_LABEL.test(md.namespace) && md.namespace.length <= 63)) {
    errors.push(`metadata.namespace ${JSON.stringify(md.namespace)} is not a DNS label`);
  }
  const checkLabels = (labels, where) => {
    if (labels === undefined) return;
    for (const [k, v] of Object.entries(labels || {})) {
      const [prefix, n] = k.includes("/") ? k.split("/", 2) : [null, k];
      if ((prefix !== null && !(DNS_SUBDOMAIN.test(prefix) && prefix.length <= 253)) ||
          !n || n.length > 63 || !LABEL_NAME.test(n)) {
        errors.push(`${where}: bad label key ${JSON.stringify(k)}`);
      }
      if (typeof v !== "string" || v.length > 63 || !LABEL_NAME.test(v)) {
        errors.push(`${where}: bad value for label ${k}: ${JSON.stringify(v)}`);
      }
    }
  };
  checkLabels(md.labels, "metadata.labels");
  checkLabels(obj.spec?.template?.metadata?.labels, "spec.template.metadata.labels");
  checkLabels(obj.spec?.selector?.matchLabels, "spec.selector.matchLabels");
  return errors;
}

function formatAjvError(e) {
  return `${e.instancePath || "/"}: ${e.keyword} ${JSON.stringify(e.params)}`;
}

async function main() {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: node validate.mjs FILE.json... (- for stdin)");
    process.exit(2);
  }
  const objects = [];
  for (const f of files) {
    const text = readFileSync(f === "-" ? 0 : f, "utf8");
    const parsed = JSON.parse(text);
    if (!Array.isArray(parsed)) throw new Error(`${f}: expected a JSON array of objects`);
    objects.push(...parsed);
  }
  const report = { ok: true, objects: [] };
  const names = new Set();
  for (const obj of objects) {
    const entry = {
      apiVersion: obj?.apiVersion, kind: obj?.kind, name: obj?.metadata?.name,
      schema: false, errors: structuralErrors(obj),
    };
    const id = `${entry.kind}/${obj?.metadata?.namespace || ""}/${entry.name}`;
    if (names.has(id)) entry.errors.push(`duplicate ${id}`);
    names.add(id);
    if (typeof entry.apiVersion === "string" && typeof entry.kind === "string") {
      const validate = await validatorFor(entry.apiVersion, entry.kind);
      if (validate) {
        entry.schema = true;
        const seen = new Set();
        if (!validate(watched(obj, "", seen))) {
          entry.errors.push(...(validate.errors || []).map(formatAjvError));
        }
        const unknown = [];
        unknownFields(obj, "", seen, unknown);
        entry.errors.push(...unknown.map((p) => `${p}: field not in the schema`));
      }
    }
    if (entry.errors.length) report.ok = false;
    report.objects.push(entry);
  }
  process.stdout.write(JSON.stringify(report, null, 1) + "\n");
  process.exit(report.ok ? 0 : 1);
}

main().catch((e) => {
  console.error(e.stack || String(e));
  process.exit(2);
});
