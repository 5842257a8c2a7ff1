//! Forward proxies: a recording one of our own (shows every upstream call relayed), and
//! Debian's tinyproxy (a real one that closes connections as real proxies do).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{listening, required, temp_dir};

#[derive(Clone)]
pub struct RecordingProxy {
    pub addr: SocketAddr,
    relayed: Arc<Mutex<Vec<String>>>,
}

impl RecordingProxy {
    pub async fn start() -> RecordingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let relayed = Arc::new(Mutex::new(Vec::new()));
        let log = relayed.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, log.clone()));
            }
        });
        RecordingProxy { addr, relayed }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The request lines relayed so far (`GET http://host:port/path HTTP/1.1`).
    pub fn relayed(&self) -> Vec<String> {
        self.relayed.lock().unwrap().clone()
    }
}

async fn relay(mut client: TcpStream, log: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).await.unwrap_or(0) == 0 {
            return;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or("").to_owned();
    log.lock().unwrap().push(request_line.clone());
    let mut parts = request_line.split(' ');
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Some(rest) = target.strip_prefix("http://") else {
        let _ = client
            .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    };
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Ok(mut upstream) = TcpStream::connect(host).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    };
    let mut forwarded = format!("{method} {path} HTTP/1.1\r\n");
    for line in lines.filter(|l| !l.is_empty()) {
        let name = line.split(':').next().unwrap_or("").to_ascii_lowercase();
        if !matches!(
            name.as_str(),
            "connection" | "proxy-connection" | "proxy-authorization"
        ) {
            forwarded.push_str(line);
            forwarded.push_str("\r\n");
        }
    }
    forwarded.push_str("connection: close\r\n\r\n");
    if upstream.write_all(forwarded.as_bytes()).await.is_ok() {
        let _ = tokio::io::copy(&mut upstream, &mut client).await;
    }
    let _ = client.shutdown().await;
}

/// The name tinyproxy gives itself in the `Via` header of every request it relays.
pub const VIA: &str = "avs-test-tinyproxy";

/// Whether a request came through tinyproxy (its `Via` names it).
pub fn via_tinyproxy(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all("via")
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains(VIA)))
}

/// Debian's tinyproxy on a loopback port, stopped on drop.
pub struct Tinyproxy {
    process: std::process::Child,
    port: u16,
    _dir: TempDir,
}

impl Tinyproxy {
    /// Starts one, or explains why it can't (a failure under CI).
    pub async fn start() -> Option<Tinyproxy> {
        let program = required(
            &["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"],
            "Debian's tinyproxy (the forward-proxy tests)",
        )?;
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let dir = temp_dir();
        let conf = dir.path().join("tinyproxy.conf");
        // Its defaults otherwise (Debian's: Timeout 600, MaxClients 100). Its `Via` header stays
        // on: it marks every request the proxy relayed, so a direct one is told apart.
        std::fs::write(
            &conf,
            format!(
                "User nobody\nGroup nogroup\nPort {port}\nListen 127.0.0.1\nTimeout 600\nMaxClients 100\n\
                 Allow 127.0.0.1\nLogLevel Critical\nDisableViaHeader No\nViaProxyName \"{VIA}\"\n"
            ),
        )
        .unwrap();
        let process = std::process::Command::new(program)
            .arg("-d")
            .arg("-c")
            .arg(&conf)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        listening(port, Duration::from_secs(10), "tinyproxy").await;
        Some(Tinyproxy {
            process,
            port,
            _dir: dir,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}
