//! What one summary's PDF can cost (#36), through the real binary in a memory cgroup of what
//! the pod leaves for rendering: the deployment's memory limit less the byte budgets of the
//! two caches (as if both were full). The shipped ~1 MB summary, 10,000 lab values, 10,000
//! providers, a 5 MB field, and two of the largest at once each answer a PDF (abridged and
//! saying so where the bounds cut it), and the process is still the one that started.

use std::time::Duration;

use serde_json::Value;

use crate::support::*;

#[path = "../../bench/cases.rs"]
#[allow(dead_code)]
mod cases;

/// A quantity as Kubernetes writes it ("512Mi", "1Gi", plain bytes), in bytes.
fn quantity(q: &str) -> u64 {
    let q = q.trim().trim_matches('"');
    let (digits, unit) = q.split_at(q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len()));
    let scale = match unit {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        other => panic!("unit {other}"),
    };
    digits.parse::<u64>().unwrap() * scale
}

/// The pod's memory limit, and what the two caches may hold, from `deploy/k8s`.
fn deployment_budget() -> (u64, u64) {
    let deployment = std::fs::read_to_string(repo("deploy/k8s/deployment.yaml")).unwrap();
    let limit = deployment
        .lines()
        .find_map(|l| l.trim().strip_prefix("limits: { memory: "))
        .map(|q| quantity(q.trim_end_matches('}').trim()))
        .expect("a memory limit in deployment.yaml");
    let configmap = std::fs::read_to_string(repo("deploy/k8s/configmap.yaml")).unwrap();
    let setting = |name: &str| {
        configmap
            .lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .map(quantity)
    };
    let caches = setting("AVS_CACHE_MAX_BYTES").expect("the summary cache's budget")
        + setting("AVS_OH_DOC_CACHE_MAX_BYTES").unwrap_or(67_108_864);
    (limit, caches)
}

/// A memory cgroup (v2, or v1's memory controller) holding at most `bytes`, swap included;
/// removed on drop.
struct Cgroup {
    dir: std::path::PathBuf,
    v2: bool,
}

impl Cgroup {
    fn new(bytes: u64) -> Option<Cgroup> {
        let name = format!("avs-render-test-{}", std::process::id());
        let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let dir = match v2 {
            true => std::path::PathBuf::from("/sys/fs/cgroup").join(&name),
            false => std::path::PathBuf::from("/sys/fs/cgroup/memory").join(&name),
        };
        if std::fs::create_dir(&dir).is_err() {
            skip(
                "a memory cgroup",
                "run as root with the memory controller (cgroup v1 or v2) writable",
            );
            return None;
        }
        let write = |file: &str, value: &str| std::fs::write(dir.join(file), value).is_ok();
        let limited = match v2 {
            true => write("memory.max", &bytes.to_string()) && write("memory.swap.max", "0"),
            false => {
                write("memory.limit_in_bytes", &bytes.to_string())
                    // Where swap accounting is on, swap counts too.
                    && (!dir.join("memory.memsw.limit_in_bytes").exists()
                        || write("memory.memsw.limit_in_bytes", &bytes.to_string()))
            }
        };
        assert!(limited, "the cgroup's limit is set");
        Some(Cgroup { dir, v2 })
    }

    /// The shell command that moves the shell (and so the binary it execs) into the cgroup.
    fn join(&self) -> String {
        format!("echo $$ > {}/cgroup.procs", self.dir.display())
    }

    /// The most the cgroup held, in bytes.
    fn peak(&self) -> u64 {
        let file = if self.v2 {
            "memory.peak"
        } else {
            "memory.max_usage_in_bytes"
        };
        std::fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0)
    }

    /// Whether the kernel killed anything for memory in it.
    fn oom_kills(&self) -> u64 {
        let (file, key) = if self.v2 {
            ("memory.events", "oom_kill")
        } else {
            ("memory.oom_control", "oom_kill")
        };
        std::fs::read_to_string(self.dir.join(file))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // Empty once the binary is gone; a few tries while the kernel lets it go.
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_summary_of_any_size_gets_a_pdf_within_the_pods_memory() {
    let (limit, caches) = deployment_budget();
    let left = limit - caches;
    let Some(cgroup) = Cgroup::new(left) else { return };
    let upstream = FakeUpstream::start().await;
    let (full, large) = (fixture("full"), large_fixture());
    for (name, _) in cases::CASES {
        upstream.summary(&cases::case(name, &full, &large));
    }
    let url = upstream.url();
    let join = cgroup.join();
    let mut server = serve_under(
        &[
            ("AVS_ENV", "test"),
            ("AVS_UPSTREAM_URL", &url),
            ("AVS_PROXY_URL", "direct"),
        ],
        Some(&join),
    )
    .await;
    let pid = server.child.id();
    let server_ref = &server;
    let token = dev_token(DEV_ICN, None);
    let pdf = |sid: &'static str| {
        let token = token.clone();
        let addr = server_ref.addr.clone();
        async move {
            let answer = client()
                .get(format!("http://{addr}/avs/v0/avs/{sid}/pdf"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap();
            (answer.status().as_u16(), answer.bytes().await.unwrap())
        }
    };
    let sids: Vec<(&str, &'static str)> = cases::CASES.iter().map(|(n, s)| (*n, *s)).collect();
    // The two costliest at once first (before either is kept), then each.
    let [(_, a), (_, b)] = [sids[1], sids[2]];
    let (one, two) = tokio::join!(pdf(a), pdf(b));
    for (status, bytes) in [one, two] {
        assert_eq!(
            status,
            200,
            "{}",
            String::from_utf8_lossy(&bytes[..bytes.len().min(300)])
        );
        assert!(bytes.starts_with(b"%PDF-"));
    }
    let mut abridged = Vec::new();
    for (name, sid) in &sids {
        let (status, bytes) = pdf(sid).await;
        assert_eq!(status, 200, "{name}");
        assert!(bytes.starts_with(b"%PDF-"), "{name}");
        if let Some(text) = pdf_text(&bytes) {
            let shortened = text.contains("This PDF is shortened");
            assert_eq!(
                shortened,
                *name != "full",
                "{name}: abridged exactly when it must be"
            );
            if shortened {
                abridged.push(*name);
            }
        }
    }
    assert!(server.child.try_wait().unwrap().is_none(), "the process is alive");
    assert_eq!(server.child.id(), pid, "the same process");
    assert_eq!(cgroup.oom_kills(), 0, "nothing killed for memory");
    eprintln!(
        "renders in a {} MiB cgroup ({} MiB pod less {} MiB of caches): peak {} MiB; abridged: {abridged:?}",
        left >> 20,
        limit >> 20,
        caches >> 20,
        cgroup.peak() >> 20
    );
    server.stop().await;
}

/// The shipped ~1 MB summary (the embedded fixture upstream's large one).
fn large_fixture() -> Value {
    let data = avs_api::clinical::fixture::FixtureData::shipped().unwrap();
    serde_json::from_slice(data.summary(avs_api::clinical::fixture::LARGE_SID).unwrap()).unwrap()
}

/// The PDF's text, by poppler.
fn pdf_text(bytes: &[u8]) -> Option<String> {
    let tool = required(&["/usr/bin/pdftotext"], "poppler-utils (pdftotext)")?;
    let dir = temp_dir();
    let file = dir.path().join("summary.pdf");
    std::fs::write(&file, bytes).unwrap();
    let out = std::process::Command::new(tool)
        .args(["-enc", "UTF-8", file.to_str().unwrap(), "-"])
        .output()
        .unwrap();
    Some(
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" "),
    )
}
