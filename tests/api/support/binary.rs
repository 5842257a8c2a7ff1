//! The real executable: run once for its output, or served on loopback ports read from its
//! own log lines, with the log kept for the test.

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::repo;

pub const BIN: &str = env!("CARGO_BIN_EXE_avs-api");

/// The binary with a clean environment (PATH only) and the repository as working directory.
pub fn command(args: &[&str], env: &[(&str, &str)]) -> Command {
    launched(BIN, args, env)
}

fn launched(program: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .current_dir(repo(""))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    cmd
}

pub async fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = command(args, env).output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running binary; killed on drop.
pub struct Server {
    pub child: Child,
    pub addr: String,
    pub admin_addr: String,
    /// Every line the server wrote to stderr so far.
    pub logs: Arc<Mutex<Vec<String>>>,
    /// The task that keeps reading the log; it ends when the process has closed it.
    reader: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// SIGTERM, then waits for the exit and for the last log line: what a test reads after
    /// this is the whole log, the drain's lines included.
    pub async fn stop(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("running").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        let status = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .expect("the server exits after SIGTERM")
            .unwrap();
        if let Some(reader) = self.reader.take() {
            reader.await.unwrap();
        }
        status
    }
}

pub async fn serve(env: &[(&str, &str)]) -> Server {
    serve_limited(env, None).await
}

/// The binary started under `ulimit -Sn <open_files>` (the soft open-file limit), when given.
///
/// `claims` identity unless `env` names one: the tests written before SiS send claims tokens
/// (`dev_token`); the SiS flow's tests say `AVS_IDENTITY=sis`.
pub async fn serve_limited(env: &[(&str, &str)], open_files: Option<u32>) -> Server {
    let prelude = open_files.map(|limit| format!("ulimit -Sn {limit}"));
    serve_under(env, prelude.as_deref()).await
}

/// The binary started by `sh` after `prelude` (a shell command: a limit, joining a cgroup).
pub async fn serve_under(env: &[(&str, &str)], prelude: Option<&str>) -> Server {
    let mut env: Vec<(&str, &str)> = env.to_vec();
    if !env.iter().any(|(k, _)| *k == "AVS_IDENTITY") {
        env.push(("AVS_IDENTITY", "claims"));
    }
    env.extend([
        ("AVS_LISTEN", "127.0.0.1:0"),
        ("AVS_ADMIN_LISTEN", "127.0.0.1:0"),
        ("AVS_LOG_FORMAT", "json"),
    ]);
    let mut cmd = match prelude {
        Some(prelude) => {
            let script = format!("{prelude} && exec \"$0\" serve");
            launched("sh", &["-c", &script, BIN], &env)
        }
        None => command(&["serve"], &env),
    };
    let mut child = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let logs = Arc::new(Mutex::new(Vec::new()));
    let seen = logs.clone();
    let (addr, admin_addr) = tokio::time::timeout(Duration::from_secs(20), async {
        let mut admin = None;
        while let Some(line) = lines.next_line().await.unwrap() {
            seen.lock().unwrap().push(line.clone());
            let Ok(event) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if event["message"] == "avs-api admin listening" {
                admin = event["addr"].as_str().map(str::to_owned);
            }
            if event["message"] == "avs-api listening" {
                let public = event["addr"].as_str().unwrap().to_owned();
                // The admin line comes right after.
                while admin.is_none() {
                    let line = lines.next_line().await.unwrap().expect("admin listener line");
                    seen.lock().unwrap().push(line.clone());
                    if let Ok(event) = serde_json::from_str::<Value>(&line)
                        && event["message"] == "avs-api admin listening"
                    {
                        admin = event["addr"].as_str().map(str::to_owned);
                    }
                }
                return (public, admin.unwrap());
            }
        }
        panic!("the server exited before listening");
    })
    .await
    .expect("the server did not listen within 20 s");
    // Keep draining the log so the server never blocks on a full pipe, and keep it for tests.
    let sink = logs.clone();
    let reader = tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            sink.lock().unwrap().push(line);
        }
    });
    Server {
        child,
        addr,
        admin_addr,
        logs,
        reader: Some(reader),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// The value of one series on a running binary's `/metrics`: a process of its own, so the
/// figure is what this test made it (in-process apps share one recorder with every test).
/// A counter not yet counted is not shown, and reads 0.
pub async fn series(server: &Server, line: &str) -> f64 {
    reading(server, line).await.unwrap_or(0.0)
}

/// The value of one series, None when `/metrics` does not show it (a gauge absent reads so).
pub async fn reading(server: &Server, line: &str) -> Option<f64> {
    metrics_text(server)
        .await
        .lines()
        .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ')?.parse().ok())
}

/// A running binary's whole `/metrics` page (its admin listener).
pub async fn metrics_text(server: &Server) -> String {
    client()
        .get(format!("http://{}/metrics", server.admin_addr))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}
