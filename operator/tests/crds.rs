//! The CRDs in `crds/` and the samples in `examples/`, checked as far as an
//! API server would check them without one:
//!
//! - `crds/` is exactly what `warden crds` generates (drift gate);
//! - each file parses as an `apiextensions.k8s.io/v1` CustomResourceDefinition
//!   with no field lost on the way (k8s-openapi's types);
//! - each schema is structural, documents every field, bounds its lists, and
//!   its printer columns point at fields that exist;
//! - every CEL rule compiles and stays within the cost budget (kube-cel);
//! - every example validates against the schema (JSON Schema, draft 4 as
//!   OpenAPI v3 uses it), has no field the API server would prune, passes
//!   the CEL rules after defaulting, and deserializes into the Rust type;
//! - the schema's defaults are the Rust defaults;
//! - nonsense is rejected, by the schema or by a CEL rule.

// Helpers outside #[test] functions panic on purpose: a test fixture that
// cannot be read is a failed test.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube_cel::{compile_schema, estimate_rule_cost, Validator};
use serde_json::{json, Value};
use warden_api::report::{
    ContainerFinding, ContainerRef, Hazard, HostFacts, PodRef, RuntimeFacts, Severity,
};
use warden_api::{NodeRuntimeReport, NodeRuntimeReportSpec, RuntimePolicy, RuntimePolicySpec};

const REGENERATE: &str = "cargo run -p warden -- crds --dir crds";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn yaml_value(path: &Path) -> Value {
    serde_saphyr::from_str(&read(path)).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The CRDs as checked in, by kind.
fn crds() -> BTreeMap<String, Value> {
    yaml_files(&repo().join("crds"))
        .iter()
        .map(|p| {
            let v = yaml_value(p);
            (v["spec"]["names"]["kind"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

fn schema_of(kind: &str) -> Value {
    crds()[kind]["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

#[test]
fn crds_directory_is_what_warden_crds_generates() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(env!("CARGO_BIN_EXE_warden"))
        .args(["crds", "--dir"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success());
    let generated = yaml_files(out.path());
    let committed = yaml_files(&repo().join("crds"));
    let names = |v: &[PathBuf]| -> Vec<String> {
        v.iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(
        names(&generated),
        names(&committed),
        "crds/ holds other files than `warden crds` writes; regenerate with `{REGENERATE}`"
    );
    for (g, c) in generated.iter().zip(&committed) {
        assert!(
            read(g) == read(c),
            "{} is out of date with the Rust types in operator/api; regenerate with `{REGENERATE}`",
            c.display()
        );
    }

    // Without --dir, stdout carries the same documents.
    let stdout = Command::new(env!("CARGO_BIN_EXE_warden"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(stdout.status.success());
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&String::from_utf8(stdout.stdout).unwrap()).unwrap();
    let kinds: Vec<&str> = docs
        .iter()
        .map(|d| d["spec"]["names"]["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["RuntimePolicy", "NodeRuntimeReport"]);
}

#[test]
fn crds_parse_as_apiextensions_v1_without_losing_fields() {
    for path in yaml_files(&repo().join("crds")) {
        let text = read(&path);
        let typed: CustomResourceDefinition = serde_saphyr::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not a v1 CRD: {e}", path.display()));
        let raw: Value = serde_saphyr::from_str(&text).unwrap();
        assert_eq!(raw["apiVersion"], "apiextensions.k8s.io/v1");
        // A field k8s-openapi does not know (a typo, an extension in the
        // wrong place) would be dropped by this round trip.
        assert_eq!(
            serde_json::to_value(&typed).unwrap(),
            raw,
            "{} does not round-trip through k8s-openapi",
            path.display()
        );
        let spec = &typed.spec;
        assert_eq!(spec.group, "runtimewarden.io");
        assert_eq!(spec.scope, "Cluster");
        assert_eq!(spec.versions.len(), 1);
        let v = &spec.versions[0];
        assert!(v.served && v.storage);
        assert_eq!(v.name, "v1alpha1");
        assert_eq!(
            typed.metadata.name.as_deref(),
            Some(format!("{}.{}", spec.names.plural, spec.group).as_str())
        );
    }
}

#[test]
fn names_short_names_and_subresources() {
    let crds = crds();
    let rtp = &crds["RuntimePolicy"]["spec"];
    assert_eq!(rtp["names"]["shortNames"], json!(["rtp"]));
    assert_eq!(rtp["versions"][0]["subresources"], json!({"status": {}}));
    let nrr = &crds["NodeRuntimeReport"]["spec"];
    assert_eq!(nrr["names"]["shortNames"], json!(["nrr"]));
    // A report is current state written whole by its agent: no status
    // subresource, its fields sit at the top level.
    assert!(nrr["versions"][0].get("subresources").is_none());
    let columns = |crd: &Value| -> Vec<String> {
        crd["versions"][0]["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        columns(rtp),
        ["Mode", "Matched", "Findings", "Ready", "Age"]
    );
    assert_eq!(
        columns(nrr),
        [
            "Containers",
            "Findings",
            "Unrepaired",
            "Repaired",
            "Last Scan",
            "Age"
        ]
    );
}

/// Keywords allowed in a structural schema node (apiextensions v1), beyond
/// which the API server refuses or mangles a CRD.
const ALLOWED: &[&str] = &[
    "type",
    "description",
    "title",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "default",
    "enum",
    "format",
    "pattern",
    "maxLength",
    "minLength",
    "maxItems",
    "minItems",
    "maxProperties",
    "minProperties",
    "maximum",
    "minimum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "multipleOf",
    "nullable",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-map-type",
];

/// Structural-schema rules, every field documented, every list bounded.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: schema is not an object"));
        return;
    };
    for key in obj.keys() {
        if !ALLOWED.contains(&key.as_str()) {
            problems.push(format!(
                "{path}: keyword {key} is not allowed (or not expected) in a structural schema"
            ));
        }
    }
    let ty = obj.get("type").and_then(Value::as_str);
    if ty.is_none() {
        problems.push(format!("{path}: no type"));
    }
    if !path.is_empty()
        && obj
            .get("description")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        problems.push(format!("{path}: no description"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        problems.push(format!(
            "{path}: properties and additionalProperties together"
        ));
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array) {
        for v in values {
            let ok = match ty {
                Some("string") => v.is_string(),
                Some("integer") => v.is_i64() || v.is_u64(),
                _ => false,
            };
            if !ok {
                problems.push(format!("{path}: enum value {v} does not match type {ty:?}"));
            }
        }
    }
    match ty {
        Some("object") => {
            if let Some(props) = obj.get("properties").and_then(Value::as_object) {
                if let Some(req) = obj.get("required").and_then(Value::as_array) {
                    for r in req {
                        if !props.contains_key(r.as_str().unwrap_or("")) {
                            problems.push(format!("{path}: required {r} is not a property"));
                        }
                    }
                }
                for (name, sub) in props {
                    check_structural(sub, &format!("{path}.{name}"), problems);
                }
            }
            if let Some(ap) = obj.get("additionalProperties") {
                if !ap.is_object() {
                    problems.push(format!("{path}: additionalProperties must be a schema"));
                } else {
                    let mut sub = ap.clone();
                    // Map values inherit the map's description.
                    sub.as_object_mut()
                        .unwrap()
                        .entry("description")
                        .or_insert_with(|| json!("map value"));
                    check_structural(&sub, &format!("{path}[*]"), problems);
                }
            }
        }
        Some("array") => {
            if !obj.contains_key("maxItems") && !path.ends_with(".conditions") {
                problems.push(format!(
                    "{path}: list without maxItems (unbounded size and CEL cost)"
                ));
            }
            match obj.get("items") {
                Some(items) if items.is_object() => {
                    let mut sub = items.clone();
                    sub.as_object_mut()
                        .unwrap()
                        .entry("description")
                        .or_insert_with(|| json!("list item"));
                    check_structural(&sub, &format!("{path}[]"), problems);
                }
                _ => problems.push(format!("{path}: array without a single items schema")),
            }
            match obj.get("x-kubernetes-list-type").and_then(Value::as_str) {
                Some("set") if obj["items"]["type"] == "object" => {
                    problems.push(format!("{path}: a set of objects"));
                }
                Some("map") => {
                    for key in obj["x-kubernetes-list-map-keys"]
                        .as_array()
                        .into_iter()
                        .flatten()
                    {
                        let required = obj["items"]["required"]
                            .as_array()
                            .is_some_and(|r| r.contains(key));
                        if !required {
                            problems.push(format!("{path}: list-map key {key} is not required"));
                        }
                    }
                }
                _ => {}
            }
        }
        _ => {}
    }
}

#[test]
fn schemas_are_structural_documented_and_bounded() {
    for (kind, crd) in crds() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let mut problems = Vec::new();
        check_structural(schema, "", &mut problems);
        // The root may not restrict metadata beyond name/generateName, and
        // ours does not mention it at all.
        assert!(schema["properties"].get("metadata").is_none());
        assert!(problems.is_empty(), "{kind}:\n{}", problems.join("\n"));
    }
}

/// Resolve a printer column's simple JSONPath in a schema.
fn resolve<'a>(schema: &'a Value, json_path: &str) -> Option<&'a Value> {
    // Drop filter expressions (`[?(@.type=="Ready")]` -> `[]`): they select
    // list items, whose schema is `items`.
    let mut plain = String::new();
    let mut depth = 0;
    for c in json_path.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    plain.push('[');
                }
                depth += 1;
            }
            ']' => {
                depth -= 1;
                if depth == 0 {
                    plain.push(']');
                }
            }
            _ if depth == 0 => plain.push(c),
            _ => {}
        }
    }
    let mut node = schema;
    for part in plain.trim_start_matches('.').split('.') {
        let (name, filtered) = match part.split_once('[') {
            Some((n, _)) => (n, true),
            None => (part, false),
        };
        node = node.get("properties")?.get(name)?;
        if filtered {
            node = node.get("items")?;
        }
    }
    Some(node)
}

#[test]
fn printer_columns_point_at_fields_of_their_type() {
    for (kind, crd) in crds() {
        let version = &crd["spec"]["versions"][0];
        let schema = &version["schema"]["openAPIV3Schema"];
        for col in version["additionalPrinterColumns"].as_array().unwrap() {
            let path = col["jsonPath"].as_str().unwrap();
            if path == ".metadata.creationTimestamp" {
                continue;
            }
            let field = resolve(schema, path)
                .unwrap_or_else(|| panic!("{kind}: column {path} names no field"));
            let expected = match col["type"].as_str().unwrap() {
                "date" => "string",
                other => other,
            };
            assert_eq!(field["type"], expected, "{kind}: column {path}");
        }
    }
}

/// Collect every CEL rule with the schema node it is attached to.
fn rules<'a>(node: &'a Value, path: String, out: &mut Vec<(String, &'a Value, String)>) {
    for r in node["x-kubernetes-validations"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push((path.clone(), node, r["rule"].as_str().unwrap().to_owned()));
    }
    for (name, sub) in node["properties"].as_object().into_iter().flatten() {
        rules(sub, format!("{path}.{name}"), out);
    }
    if node.get("items").is_some() {
        rules(&node["items"], format!("{path}[]"), out);
    }
}

#[test]
fn cel_rules_compile_and_fit_the_cost_budget() {
    let mut total = 0;
    for (kind, crd) in crds() {
        let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
        let compiled = compile_schema(schema);
        assert!(
            !compiled.has_errors(),
            "{kind}: {:?}",
            compiled.compilation_errors()
        );
        let mut found = Vec::new();
        rules(schema, String::new(), &mut found);
        for (path, node, rule) in &found {
            let node_compiled = compile_schema(node);
            assert!(
                !node_compiled.has_errors(),
                "{kind}{path}: {:?}",
                node_compiled.compilation_errors()
            );
            let warnings = estimate_rule_cost(rule, &node_compiled);
            assert!(
                warnings.is_empty(),
                "{kind}{path}: rule {rule:?}: {:?}",
                warnings.iter().map(|w| &w.message).collect::<Vec<_>>()
            );
        }
        total += found.len();
    }
    // Two selector rules and one spec rule on RuntimePolicy, two summary
    // rules on NodeRuntimeReport.
    assert_eq!(total, 5);
}

/// Draft-4 JSON Schema from an OpenAPI v3 schema: `nullable: true` becomes
/// a `null` alternative; Kubernetes extensions are ignored by the validator.
fn json_schema(openapi: &Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if map.remove("nullable") == Some(Value::Bool(true)) {
                    if let Some(Value::String(t)) = map.get("type").cloned() {
                        map.insert("type".into(), json!([t, "null"]));
                    }
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    let mut s = openapi.clone();
    walk(&mut s);
    s
}

/// Every field of `value` the schema does not declare, as the API server's
/// strict field validation (`kubectl apply --validate=strict`) reports them.
/// Without it they would be pruned silently.
fn unknown_fields(schema: &Value, value: &Value, path: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in map {
                    let root_meta =
                        path.is_empty() && ["apiVersion", "kind", "metadata"].contains(&k.as_str());
                    match props.get(k) {
                        Some(sub) => unknown_fields(sub, v, &format!("{path}.{k}"), out),
                        None if root_meta => {}
                        None => out.push(format!("{path}.{k}")),
                    }
                }
            } else if let Some(ap) = schema.get("additionalProperties") {
                for (k, v) in map {
                    unknown_fields(ap, v, &format!("{path}.{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                unknown_fields(&schema["items"], item, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// What the API server would say about `object` (besides metadata checks):
/// schema errors, pruned fields, CEL rule failures after defaulting.
fn admission_errors(kind: &str, object: &Value) -> Vec<String> {
    let schema = schema_of(kind);
    let mut errors = Vec::new();
    let validator = jsonschema::draft4::new(&json_schema(&schema)).unwrap();
    let defaulted = kube_cel::apply_defaults(&schema, object);
    errors.extend(
        validator
            .iter_errors(&defaulted)
            .map(|e| format!("schema: {e} at {}", e.instance_path())),
    );
    let mut unknown = Vec::new();
    unknown_fields(&schema, object, "", &mut unknown);
    errors.extend(unknown.into_iter().map(|f| format!("unknown field {f}")));
    if let Err(es) = Validator::new().validate(&schema, object, None) {
        errors.extend(
            es.into_vec()
                .into_iter()
                .map(|e| format!("cel: {}: {}", e.field_path, e.message)),
        );
    }
    errors
}

fn examples() -> Vec<(PathBuf, Value)> {
    let files = yaml_files(&repo().join("examples"));
    assert!(files.len() >= 3, "examples/ should hold sample policies");
    files
        .into_iter()
        .map(|p| (p.clone(), yaml_value(&p)))
        .collect()
}

fn dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

#[test]
fn examples_are_valid_policies() {
    for (path, value) in examples() {
        let file = path.display();
        assert_eq!(value["apiVersion"], "runtimewarden.io/v1alpha1", "{file}");
        assert_eq!(value["kind"], "RuntimePolicy", "{file}");
        let name = value["metadata"]["name"].as_str().unwrap_or("");
        assert!(dns_subdomain(name), "{file}: metadata.name {name:?}");
        assert!(
            value["metadata"].get("namespace").is_none(),
            "{file}: cluster-scoped, no namespace"
        );
        let errors = admission_errors("RuntimePolicy", &value);
        assert!(errors.is_empty(), "{file}:\n{}", errors.join("\n"));
        // What the agent, the webhook and `warden check --policy` read.
        let policy: RuntimePolicy =
            serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{file}: {e}"));
        // The file name says what the policy is called.
        assert_eq!(path.file_stem().unwrap().to_string_lossy(), name, "{file}");
        // Defaulting on the server and in Rust agree on this example.
        let defaulted = kube_cel::apply_defaults(&schema_of("RuntimePolicy"), &value);
        assert_eq!(
            serde_json::from_value::<RuntimePolicy>(defaulted)
                .unwrap()
                .spec,
            policy.spec,
            "{file}"
        );
    }
}

#[test]
fn schema_defaults_are_the_rust_defaults() {
    let schema = schema_of("RuntimePolicy");
    let defaulted = kube_cel::apply_defaults(
        &schema,
        &json!({"apiVersion": "runtimewarden.io/v1alpha1", "kind": "RuntimePolicy", "metadata": {"name": "x"}, "spec": {}}),
    );
    let expected = serde_json::to_value(RuntimePolicySpec::default()).unwrap();
    assert_eq!(defaulted["spec"], expected);
    // And partially given sub-objects get their missing fields defaulted.
    let partial = kube_cel::apply_defaults(
        &schema,
        &json!({"spec": {"devices": {"explicitRules": "Never"}, "remediation": {"killStuckInits": false}}}),
    );
    assert_eq!(
        partial["spec"]["devices"]["required"],
        expected["devices"]["required"]
    );
    assert_eq!(partial["spec"]["remediation"]["maxConcurrentRepairs"], 1);
}

fn policy_with(patch: impl FnOnce(&mut Value)) -> Value {
    let mut v = json!({
        "apiVersion": "runtimewarden.io/v1alpha1",
        "kind": "RuntimePolicy",
        "metadata": {"name": "p"},
        "spec": {"mode": "Enforce"},
    });
    patch(&mut v);
    v
}

#[test]
fn nonsense_policies_are_rejected() {
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "killStuckInits in Audit",
            policy_with(|v| {
                v["spec"] = json!({"mode": "Audit", "remediation": {"killStuckInits": true}})
            }),
            "needs mode: Enforce",
        ),
        (
            "killStuckInits with the default mode",
            policy_with(|v| v["spec"] = json!({"remediation": {"killStuckInits": true}})),
            "needs mode: Enforce",
        ),
        (
            "In without values",
            policy_with(|v| {
                v["spec"]["nodeSelector"] =
                    json!({"matchExpressions": [{"key": "pool", "operator": "In"}]})
            }),
            "operator must be",
        ),
        (
            "Exists with values",
            policy_with(
                |v| v["spec"]["namespaceSelector"] = json!({"matchExpressions": [{"key": "team", "operator": "Exists", "values": ["a"]}]}),
            ),
            "operator must be",
        ),
        (
            "unknown operator",
            policy_with(
                |v| v["spec"]["nodeSelector"] = json!({"matchExpressions": [{"key": "pool", "operator": "Like", "values": ["g*"]}]}),
            ),
            "operator must be",
        ),
        (
            "lower-case mode",
            policy_with(|v| v["spec"]["mode"] = json!("enforce")),
            "schema",
        ),
        (
            "device outside /dev",
            policy_with(|v| v["spec"]["devices"] = json!({"required": ["/etc/passwd"]})),
            "schema",
        ),
        (
            "device path escaping /dev",
            policy_with(|v| v["spec"]["devices"] = json!({"required": ["/dev/../etc/shadow"]})),
            "schema",
        ),
        (
            "no repairs at all",
            policy_with(|v| v["spec"]["remediation"] = json!({"maxConcurrentRepairs": 0})),
            "schema",
        ),
        (
            "too many concurrent repairs",
            policy_with(|v| v["spec"]["remediation"] = json!({"maxConcurrentRepairs": 17})),
            "schema",
        ),
        (
            "probe period zero",
            policy_with(|v| v["spec"]["exec"] = json!({"minProbePeriodSeconds": 0})),
            "schema",
        ),
        (
            "unknown notify action",
            policy_with(|v| v["spec"]["seccomp"] = json!({"notify": "Kill"})),
            "schema",
        ),
        (
            "misspelled field",
            policy_with(|v| v["spec"]["nodeSelecter"] = json!({})),
            "unknown field .spec.nodeSelecter",
        ),
    ];
    for (what, object, expected) in cases {
        let errors = admission_errors("RuntimePolicy", &object);
        assert!(
            errors.iter().any(|e| e.contains(expected)),
            "{what}: expected an error containing {expected:?}, got {errors:?}"
        );
    }
    // The same shapes done right pass.
    let good = policy_with(|v| {
        v["spec"]["remediation"] = json!({"killStuckInits": true});
        v["spec"]["nodeSelector"] = json!({"matchExpressions": [
            {"key": "pool", "operator": "In", "values": ["gpu"]},
            {"key": "spot", "operator": "DoesNotExist"}
        ]});
        v["spec"]["devices"] = json!({"required": ["/dev/null", "/dev/net/tun", "/dev/dri/card0"]});
    });
    assert_eq!(
        admission_errors("RuntimePolicy", &good),
        Vec::<String>::new()
    );
}

fn sample_report(findings: usize, message_len: usize) -> NodeRuntimeReport {
    let host = HostFacts {
        kernel: Some("6.1.0-18-amd64".into()),
        attach_race_exposed: Some(false),
        dev_char: false,
        runtimes: vec![RuntimeFacts {
            kind: "runc".into(),
            path: "/usr/sbin/runc".into(),
            version: Some("1.1.5".into()),
            version_raw: Some("1.1.5+ds1".into()),
        }],
        ..HostFacts::default()
    };
    let hazards = vec![Hazard {
        check: "device-update-jitter".into(),
        severity: Severity::Warning,
        message: "crun 1.8.1 rewrites every device rule on update".into(),
        evidence: BTreeMap::from([("runtime".to_owned(), "crun 1.8.1".to_owned())]),
        repaired: false,
        repair_note: None,
    }];
    let findings = (0..findings)
        .map(|i| ContainerFinding {
            pod: Some(PodRef {
                namespace: "default".into(),
                name: format!("web-{i}"),
                uid: Some(format!("4f2c0f0e-0000-0000-0000-{i:012}")),
            }),
            container: ContainerRef {
                name: Some("nginx".into()),
                id: format!("{i:064x}"),
                runtime: "containerd/runc".into(),
            },
            check: "device-access-broken".into(),
            severity: Severity::Error,
            message: "x".repeat(message_len),
            evidence: (0..40)
                .map(|k| (format!("k{k}"), "v".repeat(message_len.min(4000))))
                .collect(),
            repaired: i % 2 == 0,
            repair_note: (i % 2 == 0).then(|| "attached an allow program".to_owned()),
        })
        .collect();
    let spec = NodeRuntimeReportSpec::from_scan(
        host,
        hazards,
        findings,
        12,
        Time(Timestamp::from_second(1_700_000_000).unwrap()),
        Some("0.1.0".into()),
    );
    NodeRuntimeReport::new("worker-1", spec)
}

#[test]
fn reports_the_agent_builds_are_accepted() {
    for (findings, message_len) in [(0, 10), (3, 10), (1000, 50_000)] {
        let report = serde_json::to_value(sample_report(findings, message_len)).unwrap();
        let errors = admission_errors("NodeRuntimeReport", &report);
        assert!(
            errors.is_empty(),
            "{findings} findings:\n{}",
            errors.join("\n")
        );
        let bytes = serde_json::to_vec(&report).unwrap().len();
        assert!(bytes < 1024 * 1024, "{findings} findings: {bytes} bytes");
    }
}

#[test]
fn inconsistent_report_summaries_are_rejected() {
    let mut report = serde_json::to_value(sample_report(3, 10)).unwrap();
    report["summary"]["omittedFindings"] = json!(5);
    let errors = admission_errors("NodeRuntimeReport", &report);
    assert!(
        errors
            .iter()
            .any(|e| e.contains("summary.findings must count")),
        "{errors:?}"
    );

    let mut report = serde_json::to_value(sample_report(3, 10)).unwrap();
    report["summary"]["repaired"] = json!(4);
    let errors = admission_errors("NodeRuntimeReport", &report);
    assert!(
        errors.iter().any(|e| e.contains("cannot exceed")),
        "{errors:?}"
    );

    let mut report = serde_json::to_value(sample_report(3, 10)).unwrap();
    report["findings"][0]["severity"] = json!("critical");
    assert!(!admission_errors("NodeRuntimeReport", &report).is_empty());
}
