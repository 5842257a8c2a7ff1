//! `deploy/k8s/` held to Kubernetes' schemas (kubernetes-validate, offline) and to the code:
//! probe paths are routes the service serves, container ports are its listeners', the admin
//! port is in no public Service, every variable set is a setting, and the grace periods are
//! ordered. Each invariant is also shown to catch a manifest that breaks it.

use std::process::Command;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::support::*;

/// Every document of every manifest file.
fn manifests() -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(repo("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            serde_norway::Deserializer::from_str(&text)
                .map(|doc| Value::deserialize(doc).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn port_of(address: &str) -> u64 {
    address.rsplit(':').next().unwrap().parse().unwrap()
}

/// What is wrong with the manifests, as held to the code; empty when all holds.
fn problems(docs: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let config = &find(docs, "ConfigMap", "avs-api")["data"];
    let deployment = find(docs, "Deployment", "avs-api");
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];

    // Probe paths are routes the public listener serves, on its port.
    let routes: Vec<String> = avs_api::http::routes()
        .into_iter()
        .filter(|(m, _, _)| m == axum::http::Method::GET)
        .map(|(_, p, _)| p.to_owned())
        .collect();
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        let get = &container[probe]["httpGet"];
        match get["path"].as_str() {
            Some(path) if routes.iter().any(|r| r == path) => {}
            other => problems.push(format!(
                "{probe} path {other:?} is not a route the service serves"
            )),
        }
        if get["port"] != "http" {
            problems.push(format!("{probe} is not on the public listener's port"));
        }
    }

    // Container ports are the listeners' (the configured ones, else the defaults).
    let setting_port = |name: &str| {
        config[name]
            .as_str()
            .map(port_of)
            .or_else(|| {
                avs_api::config::SETTINGS
                    .iter()
                    .find(|s| s.name == name)
                    .and_then(|s| s.default)
                    .map(port_of)
            })
            .unwrap()
    };
    let (http, admin) = (setting_port("AVS_LISTEN"), setting_port("AVS_ADMIN_LISTEN"));
    let declared = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
    };
    if declared("http") != Some(http) {
        problems.push(format!(
            "containerPort http is {:?}, the public listener {http}",
            declared("http")
        ));
    }
    if declared("admin") != Some(admin) {
        problems.push(format!(
            "containerPort admin is {:?}, the admin listener {admin}",
            declared("admin")
        ));
    }

    // The admin port is in no Service the Ingress can reach, and the Ingress uses the public one.
    for service in docs
        .iter()
        .filter(|d| d["kind"] == "Service" && d["metadata"]["name"] == "avs-api")
    {
        for port in service["spec"]["ports"].as_array().unwrap() {
            let target = &port["targetPort"];
            if target == "admin" || target.as_u64() == Some(admin) || port["port"].as_u64() == Some(admin) {
                problems.push("the public Service exposes the admin listener".to_owned());
            }
        }
    }
    let ingress = find(docs, "Ingress", "avs-api");
    for rule in ingress["spec"]["rules"].as_array().unwrap() {
        for path in rule["http"]["paths"].as_array().unwrap() {
            if path["backend"]["service"] != json!({"name": "avs-api", "port": {"name": "http"}}) {
                problems.push("the Ingress routes to something other than the public Service".to_owned());
            }
        }
    }

    // Every variable set is a setting the service reads.
    let mut names: Vec<String> = config.as_object().unwrap().keys().cloned().collect();
    names.extend(
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["name"].as_str().map(str::to_owned)),
    );
    for name in names {
        if !avs_api::config::SETTINGS.iter().any(|s| s.name == name) {
            problems.push(format!("{name} is not a setting of avs-api"));
        }
    }

    // The kubelet waits longer than the pause plus the service's own grace.
    let grace: u64 = config["AVS_SHUTDOWN_GRACE_SECS"]
        .as_str()
        .unwrap_or("30")
        .parse()
        .unwrap();
    let pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .unwrap_or(0);
    let termination = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
    if termination <= grace + pause {
        problems.push(format!(
            "terminationGracePeriodSeconds {termination} is not above AVS_SHUTDOWN_GRACE_SECS {grace} + preStop {pause}"
        ));
    }
    problems
}

#[test]
fn the_manifests_hold_to_the_code_and_each_invariant_catches_a_break() {
    let shipped = manifests();
    assert_eq!(problems(&shipped), Vec::<String>::new());

    type Break = fn(&mut Vec<Value>);
    let breaks: [(&str, Break); 6] = [
        ("not a route", |docs| {
            let d = docs.iter_mut().find(|d| d["kind"] == "Deployment").unwrap();
            d["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["httpGet"]["path"] =
                json!("/health");
        }),
        ("containerPort http", |docs| {
            let d = docs.iter_mut().find(|d| d["kind"] == "Deployment").unwrap();
            d["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = json!(8081);
        }),
        ("exposes the admin listener", |docs| {
            let s = docs
                .iter_mut()
                .find(|d| d["kind"] == "Service" && d["metadata"]["name"] == "avs-api")
                .unwrap();
            s["spec"]["ports"]
                .as_array_mut()
                .unwrap()
                .push(json!({"name": "admin", "port": 9090, "targetPort": "admin"}));
        }),
        ("not a setting", |docs| {
            let c = docs.iter_mut().find(|d| d["kind"] == "ConfigMap").unwrap();
            c["data"]["AVS_SHUTDOWN_GRACE_SECONDS"] = json!("30");
        }),
        ("terminationGracePeriodSeconds", |docs| {
            let d = docs.iter_mut().find(|d| d["kind"] == "Deployment").unwrap();
            d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = json!(40);
        }),
        ("other than the public Service", |docs| {
            let i = docs.iter_mut().find(|d| d["kind"] == "Ingress").unwrap();
            i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = json!("avs-api-admin");
        }),
    ];
    for (expected, break_it) in breaks {
        let mut docs = shipped.clone();
        break_it(&mut docs);
        let found = problems(&docs);
        assert!(
            found.iter().any(|p| p.contains(expected)),
            "{expected}: {found:?}"
        );
    }
}

#[test]
fn the_manifests_validate_against_kubernetes_schemas_offline() {
    let validate = repo("target/test-venv/bin/kubernetes-validate");
    if !validate.exists() {
        skip(
            "kubernetes-validate",
            "target/test-venv/bin/pip install kubernetes-validate",
        );
        return;
    }
    let files: Vec<_> = std::fs::read_dir(repo("deploy/k8s"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    let run = |files: &[std::path::PathBuf]| {
        Command::new(&validate)
            .args(["--strict", "--kubernetes-version", "1.31.0"])
            .args(files)
            .output()
            .unwrap()
    };
    let out = run(&files);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // A misspelt field fails it: the validation means something.
    let dir = temp_dir();
    let broken = dir.path().join("deployment.yaml");
    let text = std::fs::read_to_string(repo("deploy/k8s/deployment.yaml")).unwrap();
    std::fs::write(&broken, text.replace("replicas: 3", "replica: 3")).unwrap();
    assert!(
        !run(&[broken]).status.success(),
        "a misspelt field passed validation"
    );
}

/// What the manifests give a pod, as the binary's environment: the ConfigMap, the container's
/// `env` (secrets from `secret.yaml`, the pod's name for a `fieldRef`), and each mounted secret
/// written under `root`, the paths that point into a mount moved there with it.
fn pod_environment(docs: &[Value], root: &std::path::Path) -> Vec<(String, String)> {
    let secret = &find(docs, "Secret", "avs-api")["stringData"];
    let pod = &find(docs, "Deployment", "avs-api")["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let mut mounts = Vec::new();
    for mount in container["volumeMounts"].as_array().into_iter().flatten() {
        let path = mount["mountPath"].as_str().unwrap().to_owned();
        let volume = pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == mount["name"])
            .unwrap();
        let here = root.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(&here).unwrap();
        for item in volume["secret"]["items"].as_array().into_iter().flatten() {
            let value = secret[item["key"].as_str().unwrap()].as_str().unwrap();
            std::fs::write(here.join(item["path"].as_str().unwrap()), value).unwrap();
        }
        mounts.push(path);
    }
    let relocated = |value: &str| match mounts.iter().find(|m| value.starts_with(m.as_str())) {
        Some(_) => root.join(value.trim_start_matches('/')).display().to_string(),
        None => value.to_owned(),
    };
    let mut env: Vec<(String, String)> = find(docs, "ConfigMap", "avs-api")["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), relocated(v.as_str().unwrap())))
        .collect();
    for var in container["env"].as_array().into_iter().flatten() {
        let from = &var["valueFrom"];
        let value = if let Some(key) = from["secretKeyRef"]["key"].as_str() {
            secret[key].as_str().unwrap().to_owned()
        } else if from["fieldRef"].is_object() {
            "avs-api-7c9d-x2k4".to_owned()
        } else {
            var["value"].as_str().unwrap().to_owned()
        };
        env.push((var["name"].as_str().unwrap().to_owned(), value));
    }
    env
}

/// The shipped manifests start the service: `check-config` (what `serve` checks before it
/// listens) passes on exactly what a pod is given, and the NetworkPolicy lets the pod reach
/// vets-api, which is called directly (keys and users never use the forward proxy).
#[tokio::test]
async fn check_config_passes_on_what_the_manifests_give_a_pod() {
    let docs = manifests();
    let root = temp_dir();
    let env = pod_environment(&docs, root.path());
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (code, stdout, stderr) = run(&["check-config"], &pairs).await;
    assert_eq!(
        code, 0,
        "the manifests' configuration is refused:\n{stderr}\n{stdout}"
    );
    assert!(stdout.contains("sis, keys from https://vets-api."), "{stdout}");

    let policy = find(&docs, "NetworkPolicy", "avs-api");
    let vets_api = env
        .iter()
        .filter(|(k, _)| k == "AVS_SIS_JWKS_URL" || k == "AVS_SIS_USER_URL")
        .map(|(_, v)| url::Url::parse(v).unwrap())
        .collect::<Vec<_>>();
    assert_eq!(vets_api.len(), 2);
    for url in vets_api {
        let port = url.port_or_known_default().unwrap();
        let allowed = policy["spec"]["egress"].as_array().unwrap().iter().any(|rule| {
            rule["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["port"] == port)
                && rule["to"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|to| to["podSelector"]["matchLabels"]["app"] == "vets-api")
        });
        assert!(allowed, "no egress to vets-api on {port} for {url}");
    }
}
