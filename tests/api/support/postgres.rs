//! PostgreSQL for the tests: one throwaway server per test binary run (initdb into a temporary
//! directory, as the `postgres` user when running as root), a fresh database per test; a test
//! that stops its server gets one of its own.
//!
//! The shared server saves an initdb and a start per test (~2 s of CPU each on 2 cores). It
//! stops when the last test holding it ends.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::{required, temp_dir};

/// A database of its own on a running server.
pub struct Postgres {
    server: Arc<Server>,
    /// The database's URL.
    pub url: String,
}

struct Server {
    child: std::sync::Mutex<Child>,
    /// `postgres://postgres@127.0.0.1:{port}`, without a database.
    base: String,
    _dir: TempDir,
}

static SHARED: tokio::sync::Mutex<Weak<Server>> = tokio::sync::Mutex::const_new(Weak::new());

impl Postgres {
    /// A fresh database on the shared server, or why there is none (a failure under CI).
    pub async fn start() -> Option<Postgres> {
        let mut shared = SHARED.lock().await;
        let server = match shared.upgrade() {
            Some(server) => server,
            None => {
                let server = Arc::new(Server::start().await?);
                *shared = Arc::downgrade(&server);
                server
            }
        };
        drop(shared);
        Some(Postgres::on(server).await)
    }

    /// A fresh database on a server of its own, which the test may stop.
    pub async fn own() -> Option<Postgres> {
        Some(Postgres::on(Arc::new(Server::start().await?)).await)
    }

    async fn on(server: Arc<Server>) -> Postgres {
        let url = server.database("t", None).await;
        Postgres { server, url }
    }

    /// A client of this database.
    pub async fn client(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        connect(&self.url).await
    }

    /// Another fresh database on the same server (named after `name`), its URL.
    pub async fn database(&self, name: &str, time_zone: Option<&str>) -> String {
        self.server.database(name, time_zone).await
    }

    /// Stops the server at once (PostgreSQL's immediate shutdown, SIGQUIT): connections drop as
    /// in a crash. Only for a server of its own ([`Postgres::own`]).
    pub fn stop(&mut self) {
        assert_eq!(
            Arc::strong_count(&self.server),
            1,
            "stop only a server of its own"
        );
        self.server.stop();
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

impl Server {
    async fn start() -> Option<Server> {
        let bin = bin_dir().or_else(|| {
            required(
                &["/usr/lib/postgresql/15/bin/initdb"],
                "PostgreSQL's server binaries",
            )
            .and_then(|initdb| initdb.parent().map(PathBuf::from))
        })?;
        let dir = temp_dir();
        let data = dir.path().join("data");
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success());
        }
        let out = as_pg_user(bin.join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = as_pg_user(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args([
                "-p",
                &port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=300",
            ])
            .arg("-k")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Server {
            child: std::sync::Mutex::new(child),
            base: format!("postgres://postgres@127.0.0.1:{port}"),
            _dir: dir,
        };
        let started = Instant::now();
        while connect(&format!("{}/postgres", server.base)).await.is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "PostgreSQL did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Some(server)
    }

    async fn database(&self, name: &str, time_zone: Option<&str>) -> String {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("{name}_{}", NEXT.fetch_add(1, Ordering::Relaxed));
        let client = connect(&format!("{}/postgres", self.base)).await.unwrap();
        client
            .execute(&format!("CREATE DATABASE {name}"), &[])
            .await
            .unwrap();
        if let Some(zone) = time_zone {
            client
                .execute(&format!("ALTER DATABASE {name} SET timezone TO '{zone}'"), &[])
                .await
                .unwrap();
        }
        format!("{}/{name}", self.base)
    }

    fn stop(&self) {
        let mut child = self.child.lock().unwrap();
        if child.try_wait().is_ok_and(|s| s.is_some()) {
            return;
        }
        let pid = child.id().to_string();
        // As root the postmaster is runuser's child; otherwise it is ours.
        let signal = if is_root() {
            Command::new("pkill").args(["-QUIT", "-P", &pid]).status()
        } else {
            Command::new("kill").args(["-QUIT", &pid]).status()
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while signal.is_ok() && Instant::now() < deadline {
            if child.try_wait().is_ok_and(|s| s.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bin_dir() -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

/// A command run as the `postgres` user when we are root (PostgreSQL refuses to run as root).
fn as_pg_user(program: PathBuf) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}
