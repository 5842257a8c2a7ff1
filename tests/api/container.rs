//! The container image: laid out by `deploy/container/stage.sh`, built from the top-level
//! `Containerfile` with rootful podman (runc, no registry), and run read-only with no
//! capabilities, as the non-root user it declares. The test binary stands in for the release
//! build (the README builds the release image the same way).

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::support::*;

/// podman with this project's settings for these machines: runc (crun refuses the host's
/// cgroup layout) and default ulimits (else `podman run` fails with EPERM).
fn podman(args: &[&str]) -> Output {
    let conf = repo("target/container-test/containers.conf");
    Command::new("podman")
        .env("CONTAINERS_CONF", &conf)
        .args(args)
        .output()
        .unwrap()
}

fn podman_ok(args: &[&str]) -> String {
    let out = podman(args);
    assert!(
        out.status.success(),
        "podman {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn podman_available() -> bool {
    let ok = Command::new("podman")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        skip("the container test", "install Debian's podman, buildah and runc");
    }
    ok
}

/// The image, built once per test run; removed with its containers on drop.
struct Image {
    tag: String,
    containers: Vec<String>,
}

impl Image {
    fn build() -> Image {
        let dir = repo("target/container-test");
        std::fs::create_dir_all(&dir).unwrap();
        let hard = String::from_utf8(
            Command::new("sh")
                .args(["-c", "ulimit -Hn"])
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .to_owned();
        std::fs::write(
            dir.join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [\"nofile={hard}:{hard}\", \"nproc=32768:32768\"]\n\
                 [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n"
            ),
        )
        .unwrap();
        let context: PathBuf = dir.join("context");
        let staged = Command::new("bash")
            .arg(repo("deploy/container/stage.sh"))
            .arg(env!("CARGO_BIN_EXE_avs-api"))
            .arg(&context)
            .output()
            .unwrap();
        assert!(
            staged.status.success(),
            "{}",
            String::from_utf8_lossy(&staged.stderr)
        );
        let tag = format!("localhost/avs-api:test-{}", std::process::id());
        let containerfile = repo("Containerfile");
        podman_ok(&[
            "build",
            "-q",
            "-t",
            &tag,
            "-f",
            containerfile.to_str().unwrap(),
            context.to_str().unwrap(),
        ]);
        Image {
            tag,
            containers: Vec::new(),
        }
    }

    /// Runs a container in the background (host network, read-only, no capabilities).
    fn run(&mut self, name: &str, args: &[&str]) -> String {
        let name = format!("{name}-{}", std::process::id());
        let mut all = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "host",
            "--read-only",
            "--cap-drop=all",
        ];
        all.extend_from_slice(args);
        all.push(&self.tag);
        podman_ok(&all);
        self.containers.push(name.clone());
        name
    }
}

impl Drop for Image {
    fn drop(&mut self) {
        for name in &self.containers {
            let _ = podman(&["rm", "-f", name]);
        }
        let _ = podman(&["rmi", "-f", &self.tag]);
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if client().get(url).send().await.is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs the image with `args` to completion: it must exit 2 (a configuration refusal); what it
/// said on stderr.
fn refused(image: &Image, args: &[&str]) -> String {
    let mut all = vec![
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "--cap-drop=all",
    ];
    all.extend_from_slice(args);
    all.push(&image.tag);
    let out = podman(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

async fn status(url: &str, token: Option<&str>) -> u16 {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.map_or(0, |r| r.status().as_u16())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_image_runs_read_only_as_non_root_and_stops_cleanly() {
    if !podman_available() {
        return;
    }
    let mut image = Image::build();

    // As it is, the image is production (#35: it fails closed): it refuses to start without
    // its real sources, keys and toggle store, naming them, and never runs the development
    // identity.
    let stderr = refused(&image, &[]);
    for variable in [
        "AVS_UPSTREAM_URL",
        "AVS_PROXY_URL",
        "AVS_SIS_JWKS_URL",
        "AVS_TOGGLES",
    ] {
        assert!(
            stderr.lines().any(|l| l.starts_with(&format!("{variable}: "))),
            "{variable}: {stderr}"
        );
    }

    // The embedded default, said explicitly: health, a summary with a development token, the
    // admin listener only where it is configured.
    let (public, admin) = (free_port(), free_port());
    let listen = format!("AVS_LISTEN=127.0.0.1:{public}");
    let admin_listen = format!("AVS_ADMIN_LISTEN=127.0.0.1:{admin}");
    let name = image.run(
        "avs-default",
        &["-e", &listen, "-e", &admin_listen, "-e", "AVS_ENV=development"],
    );
    let base = format!("http://127.0.0.1:{public}");
    wait_healthy(&format!("{base}/healthz")).await;
    // The image's embedded default is the SiS flow: its stand-in knows the fixture users.
    let token = dev_sis_token(DEV_ICN);
    assert_eq!(
        status(&format!("{base}/avs/v0/avs/{FULL_SID}"), Some(&token)).await,
        200
    );
    assert_eq!(
        status(&format!("http://127.0.0.1:{admin}/metrics"), None).await,
        200
    );
    assert_eq!(
        status(&format!("{base}/metrics"), None).await,
        404,
        "never on the public listener"
    );

    // As the image's non-root user, with no capabilities.
    let pid = podman_ok(&["inspect", "--format", "{{.State.Pid}}", &name]);
    let proc_status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |key: &str| {
        proc_status
            .lines()
            .find(|l| l.starts_with(key))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_owned())
            .unwrap()
    };
    assert_eq!(field("Uid:"), "10001");
    assert_eq!(field("CapEff:"), "0000000000000000");
    assert_eq!(
        podman_ok(&["inspect", "--format", "{{.HostConfig.ReadonlyRootfs}}", &name]),
        "true"
    );

    // SIGTERM to PID 1: it finishes and exits 0, well within the grace period.
    let stopping = Instant::now();
    podman_ok(&["kill", "--signal", "TERM", &name]);
    let code = podman_ok(&["wait", &name]);
    assert_eq!(code, "0", "exit status after SIGTERM");
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );

    // The upstream by host name: resolved inside the container (NSS: files, then DNS).
    let upstream = FakeUpstream::start().await;
    upstream.summary(&fixture("full"));
    let public = free_port();
    let listen = format!("AVS_LISTEN=127.0.0.1:{public}");
    let upstream_url = format!(
        "AVS_UPSTREAM_URL=http://upstream.avs.test:{}/",
        upstream.addr.port()
    );
    image.run(
        "avs-dns",
        &[
            "--add-host",
            "upstream.avs.test:127.0.0.1",
            "-e",
            &listen,
            "-e",
            "AVS_ADMIN_LISTEN=127.0.0.1:0",
            "-e",
            "AVS_ENV=test",
            "-e",
            &upstream_url,
            "-e",
            "AVS_PROXY_URL=direct",
        ],
    );
    let base = format!("http://127.0.0.1:{public}");
    wait_healthy(&format!("{base}/healthz")).await;
    assert_eq!(
        status(&format!("{base}/avs/v0/avs/{FULL_SID}"), Some(&token)).await,
        200
    );
    assert_eq!(
        upstream.hits(),
        1,
        "the summary came from the upstream named by host name"
    );

    // Production without a forward proxy: refused before listening, exit 2, naming it.
    let keys = format!("{}:/keys:ro", repo("tests/keys").display());
    let stderr = refused(
        &image,
        &[
            "-v",
            &keys,
            "-e",
            "AVS_ENV=production",
            "-e",
            "AVS_UPSTREAM_URL=https://clinical.example/",
            "-e",
            "AVS_JWKS_FILE=/keys/jwks.json",
            "-e",
            "AVS_TOGGLES=file:/app/fixtures/toggles.toml",
        ],
    );
    assert!(
        stderr.lines().any(|l| l.starts_with("AVS_PROXY_URL: ")),
        "{stderr}"
    );
}
