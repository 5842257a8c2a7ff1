//! Debian's nginx on loopback with a configuration a test writes: the fleet's load balancer,
//! and the TLS front that lets a production configuration (https only) reach a stand-in.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{TempDir, required, temp_dir};

/// A running nginx; stopped on drop.
pub struct Nginx {
    process: Child,
    pub addr: String,
    pub dir: TempDir,
}

impl Nginx {
    /// nginx with the configuration `config` writes for its listen address (`127.0.0.1:port`);
    /// `None` (said) when nginx is not installed outside CI.
    pub fn start(what: &str, config: impl FnOnce(&str) -> String) -> Option<Nginx> {
        let program = required(
            &["/usr/sbin/nginx", "/usr/bin/nginx"],
            &format!("nginx, for {what}"),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let dir = temp_dir();
        std::fs::create_dir_all(dir.path().join("tmp")).unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("nginx.conf"), config(&addr)).unwrap();
        let process = Command::new(program)
            .arg("-p")
            .arg(dir.path())
            .args(["-c", "nginx.conf", "-e", "logs/error.log", "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Nginx { process, addr, dir })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// What nginx logged (warnings and up): failed replicas, retries.
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    /// SIGTERM, so the master takes its workers down with it (SIGKILL would orphan them,
    /// listening on), then SIGKILL if it lingers.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.process.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.process.try_wait().is_ok_and(|s| s.is_some()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// https on loopback in front of plain-HTTP stand-ins: nginx terminating TLS with a leaf
/// certificate for 127.0.0.1 from a throwaway CA (made by `openssl`), each path prefix passed
/// to its stand-in. The service trusts the CA through its CA-file settings.
pub struct TlsFront {
    pub nginx: Nginx,
    /// The CA's certificate (PEM), for `AVS_UPSTREAM_CA_FILE` and `AVS_SIS_CA_FILE`.
    pub ca: std::path::PathBuf,
}

impl TlsFront {
    /// `routes`: (path prefix, backend address), e.g. `("/sis/", sis.addr)`.
    pub fn start(routes: &[(&str, std::net::SocketAddr)]) -> Option<TlsFront> {
        let openssl = required(&["/usr/bin/openssl"], "openssl, for the TLS front")?;
        let certs = temp_dir();
        let at = |name: &str| certs.path().join(name).display().to_string();
        std::fs::write(
            certs.path().join("leaf.ext"),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        let args = |parts: &[&[&str]]| -> Vec<String> {
            parts
                .iter()
                .flat_map(|p| p.iter())
                .map(|a| (*a).to_owned())
                .collect()
        };
        let ec: &[&str] = &[
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        let (ca_key, ca_pem, leaf_key, leaf_csr, leaf_pem, ext) = (
            at("ca.key"),
            at("ca.pem"),
            at("leaf.key"),
            at("leaf.csr"),
            at("leaf.pem"),
            at("leaf.ext"),
        );
        let steps = [
            args(&[
                &["req", "-x509"],
                ec,
                &[
                    "-keyout",
                    &ca_key,
                    "-out",
                    &ca_pem,
                    "-days",
                    "2",
                    "-subj",
                    "/CN=avs-api test CA",
                ],
                &["-addext", "basicConstraints=critical,CA:TRUE"],
                &["-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ]),
            args(&[
                &["req"],
                ec,
                &["-keyout", &leaf_key, "-out", &leaf_csr, "-subj", "/CN=127.0.0.1"],
            ]),
            args(&[
                &[
                    "x509", "-req", "-in", &leaf_csr, "-CA", &ca_pem, "-CAkey", &ca_key,
                ],
                &[
                    "-CAcreateserial",
                    "-out",
                    &leaf_pem,
                    "-days",
                    "2",
                    "-extfile",
                    &ext,
                ],
            ]),
        ];
        for args in steps {
            let out = Command::new(&openssl).args(&args).output().unwrap();
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let locations: String = routes
            .iter()
            .map(|(prefix, backend)| {
                format!("        location {prefix} {{ proxy_pass http://{backend}/; }}\n")
            })
            .collect();
        let (leaf, key) = (at("leaf.pem"), at("leaf.key"));
        let nginx = Nginx::start("the TLS front", |addr| {
            format!(
                "worker_processes 1;\npid tmp/nginx.pid;\nevents {{ worker_connections 256; }}\nhttp {{\n    access_log off;\n    client_body_temp_path tmp/body;\n    proxy_temp_path tmp/proxy;\n    fastcgi_temp_path tmp/fastcgi;\n    uwsgi_temp_path tmp/uwsgi;\n    scgi_temp_path tmp/scgi;\n    server {{\n        listen {addr} ssl;\n        ssl_certificate {leaf};\n        ssl_certificate_key {key};\n{locations}    }}\n}}\n"
            )
        })?;
        let ca = nginx.dir.path().join("ca.pem");
        std::fs::copy(certs.path().join("ca.pem"), &ca).unwrap();
        Some(TlsFront { nginx, ca })
    }

    /// `https://127.0.0.1:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.nginx.addr)
    }
}
