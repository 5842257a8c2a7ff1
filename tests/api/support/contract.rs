//! `openapi.yaml` is the contract: every response a test receives is validated against the
//! schema for its route, method and status.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::http::{Method, StatusCode};
use jsonschema::Validator;
use serde_json::{Map, Value, json};

use super::repo;

pub struct Contract {
    pub spec: Value,
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

impl Contract {
    pub fn get() -> &'static Contract {
        static CONTRACT: OnceLock<Contract> = OnceLock::new();
        CONTRACT.get_or_init(|| {
            let text = std::fs::read_to_string(repo("openapi.yaml")).unwrap();
            let spec: Value = serde_norway::from_str(&text).unwrap();
            Contract {
                spec,
                validators: Mutex::new(HashMap::new()),
            }
        })
    }

    /// The spec path template a concrete path falls under, literal segments beating parameters.
    fn template_for(&self, path: &str) -> Option<String> {
        let segments: Vec<&str> = path.split('/').collect();
        let mut best: Option<(usize, String)> = None;
        for template in self.spec["paths"].as_object().unwrap().keys() {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != segments.len() {
                continue;
            }
            let mut literal = 0;
            let fits = parts.iter().zip(&segments).all(|(t, s)| {
                if t.starts_with('{') {
                    // An empty segment is the parameter, empty: `/avs/v0/avs/` is the summary
                    // operation with an empty sid (400), not an operation of its own.
                    true
                } else {
                    literal += 1;
                    t == s
                }
            });
            if fits && best.as_ref().is_none_or(|(n, _)| literal > *n) {
                best = Some((literal, template.clone()));
            }
        }
        best.map(|(_, t)| t)
    }

    fn resolve<'a>(&'a self, value: &'a Value) -> &'a Value {
        match value.get("$ref").and_then(Value::as_str) {
            Some(pointer) => self.spec.pointer(pointer.trim_start_matches('#')).unwrap(),
            None => value,
        }
    }

    fn validator(&self, key: &str, schema: &Value) -> Arc<Validator> {
        let mut cache = self.validators.lock().unwrap();
        cache
            .entry(key.to_owned())
            .or_insert_with(|| {
                // The response schema at the root, the spec's components beside it, so that
                // `#/components/...` references resolve in place.
                let mut root: Map<String, Value> = schema.as_object().unwrap().clone();
                root.insert(
                    "$schema".into(),
                    json!("https://json-schema.org/draft/2020-12/schema"),
                );
                root.insert("components".into(), self.spec["components"].clone());
                Arc::new(jsonschema::validator_for(&Value::Object(root)).unwrap())
            })
            .clone()
    }

    /// Panics unless `body` is what the spec documents for this request and status.
    pub fn check(&self, method: &Method, path: &str, status: StatusCode, body: &Value) {
        let errors_schema = json!({"$ref": "#/components/schemas/Errors"});
        let (key, schema) = match self.template_for(path) {
            None => {
                assert_eq!(
                    status,
                    StatusCode::NOT_FOUND,
                    "{path} is not in the spec, so it must be 404"
                );
                ("unknown".to_owned(), errors_schema)
            }
            Some(template) => match self.spec["paths"][&template].get(method.as_str().to_lowercase()) {
                None => {
                    assert_eq!(
                        status,
                        StatusCode::METHOD_NOT_ALLOWED,
                        "{method} {template} is not in the spec"
                    );
                    ("method".to_owned(), errors_schema)
                }
                Some(operation) => {
                    let response = operation["responses"]
                        .get(status.as_str())
                        .unwrap_or_else(|| panic!("{method} {template}: status {status} is not documented"));
                    let response = self.resolve(response);
                    let schema = response["content"]["application/json"]["schema"].clone();
                    assert!(schema.is_object(), "{method} {template} {status}: no JSON schema");
                    (format!("{method} {template} {status}"), schema)
                }
            },
        };
        let validator = self.validator(&key, &schema);
        let problems: Vec<String> = validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .take(5)
            .collect();
        assert!(
            problems.is_empty(),
            "{key}: body does not match openapi.yaml: {problems:#?}"
        );
    }

    /// Panics unless the spec documents this status for the request, with `content_type`
    /// among its media types (`None`: a response without a body, such as a 304 or a HEAD).
    pub fn check_raw(&self, method: &Method, path: &str, status: StatusCode, content_type: Option<&str>) {
        let template = self
            .template_for(path)
            .unwrap_or_else(|| panic!("{path} is not in the spec"));
        let operation = &self.spec["paths"][&template][method.as_str().to_lowercase()];
        let response = operation["responses"]
            .get(status.as_str())
            .unwrap_or_else(|| panic!("{method} {template}: status {status} is not documented"));
        let response = self.resolve(response);
        if method == Method::HEAD || status == StatusCode::NOT_MODIFIED {
            return; // headers only, whatever the GET would carry
        }
        if let Some(content_type) = content_type {
            let essence = content_type.split(';').next().unwrap().trim();
            assert!(
                response["content"].get(essence).is_some(),
                "{method} {template} {status}: {essence} is not documented"
            );
        } else {
            assert!(
                method == Method::HEAD || response.get("content").is_none(),
                "{method} {template} {status}: a body is documented"
            );
        }
    }

    /// (method, path) of every operation in the spec.
    pub fn operations(&self) -> BTreeSet<(String, String)> {
        spec_operations(&self.spec)
    }
}

/// (method, path) of every operation in a spec.
pub fn spec_operations(spec: &Value) -> BTreeSet<(String, String)> {
    let methods = ["get", "put", "post", "delete", "patch", "head", "options"];
    spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| methods.contains(&k.as_str()))
                .map(|m| (m.to_uppercase(), path.clone()))
        })
        .collect()
}
