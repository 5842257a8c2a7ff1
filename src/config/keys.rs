//! Verification keys (read and checked with the configuration, so a bad or development key
//! stops the process before it listens): PEM files, JWKS documents, and the development keys (never in production).

use std::path::{Path, PathBuf};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey};

pub(crate) const DEV_PUBLIC_PEM: &str = include_str!("../../fixtures/dev-keys/dev-rs256.pub.pem");
const DEV_JWKS: &str = include_str!("../../fixtures/dev-keys/dev-jwks.json");
/// The embedded SiS stand-in's key set: the development key (current) and a second, "old" one,
/// as vets-api publishes both during a rotation.
pub(crate) const DEV_SIS_JWKS: &str = include_str!("../../fixtures/dev-keys/sis-jwks.json");
pub const DEV_KID: &str = "avs-dev-rs256";

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The key pair in `fixtures/dev-keys`, outside production only.
    Development,
    PemFile(PathBuf),
    JwksFile(PathBuf),
    /// Fetched from a URL (the Sign-in Service's JWKS).
    JwksUrl,
}

#[derive(Clone)]
pub(crate) struct VerifyKey {
    /// From a JWKS; PEM keys have none and are tried in turn.
    pub(crate) kid: Option<String>,
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
    /// The key's public material as text (PEM body or JWK modulus / point), to spot the dev key.
    pub(crate) material: String,
}

/// The verification keys, each bound to the one algorithm its type allows.
#[derive(Clone)]
pub struct KeySet {
    source: KeySource,
    pub(crate) keys: Vec<VerifyKey>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySet {
    pub fn load(source: &KeySource) -> Result<KeySet, String> {
        let keys = match source {
            KeySource::Development => pem_keys(DEV_PUBLIC_PEM)?,
            KeySource::PemFile(path) => pem_keys(&read(path)?)?,
            KeySource::JwksFile(path) => jwks_keys(&read(path)?)?,
            KeySource::JwksUrl => return Err("a key set from a URL is fetched, not loaded".to_owned()),
        };
        if keys.is_empty() {
            return Err("holds no RSA or EC P-256 public key".to_owned());
        }
        Ok(KeySet {
            source: source.clone(),
            keys,
        })
    }

    pub fn describe(&self) -> String {
        let n = self.keys.len();
        match &self.source {
            KeySource::Development => "development key (fixtures/dev-keys)".to_owned(),
            KeySource::PemFile(p) => format!("{n} key(s) from PEM {}", p.display()),
            KeySource::JwksFile(p) => format!("{n} key(s) from JWKS {}", p.display()),
            KeySource::JwksUrl => format!("{n} key(s) from a JWKS URL"),
        }
    }

    pub fn contains_development_key(&self) -> bool {
        let dev: Vec<String> = pem_keys(DEV_PUBLIC_PEM)
            .into_iter()
            .chain(jwks_keys(DEV_JWKS))
            .chain(jwks_keys(DEV_SIS_JWKS))
            .flatten()
            .map(|k| k.material)
            .collect();
        self.source == KeySource::Development || self.keys.iter().any(|k| dev.contains(&k.material))
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// Splits a PEM file into its blocks; the key type of each decides its algorithm.
pub(crate) fn pem_keys(text: &str) -> Result<Vec<VerifyKey>, String> {
    let mut keys = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        let Some(end_marker) = rest[start..].find("-----END ") else {
            return Err("a PEM block has no END line".to_owned());
        };
        let end_marker = start + end_marker;
        let end = rest[end_marker..]
            .find('\n')
            .map_or(rest.len(), |i| end_marker + i);
        let block = &rest[start..end];
        let material: String = block
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .flat_map(|l| l.trim().chars())
            .collect();
        let (alg, key) = if let Ok(key) = DecodingKey::from_rsa_pem(block.as_bytes()) {
            (Algorithm::RS256, key)
        } else if let Ok(key) = DecodingKey::from_ec_pem(block.as_bytes()) {
            (Algorithm::ES256, key)
        } else {
            return Err(format!(
                "PEM block {} is not an RSA or EC public key",
                keys.len() + 1
            ));
        };
        keys.push(VerifyKey {
            kid: None,
            alg,
            key,
            material,
        });
        rest = &rest[end..];
    }
    Ok(keys)
}

pub(crate) fn jwks_keys(text: &str) -> Result<Vec<VerifyKey>, String> {
    let set: JwkSet = serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))?;
    let mut keys = Vec::new();
    for jwk in &set.keys {
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let (alg, material) = match &jwk.algorithm {
            P::RSA(rsa) => (Algorithm::RS256, rsa.n.clone()),
            P::EllipticCurve(ec) => (Algorithm::ES256, format!("{}.{}", ec.x, ec.y)),
            _ => continue, // symmetric or OKP keys are never accepted here
        };
        // A key published for encryption only is never a signing key.
        if matches!(&jwk.common.public_key_use, Some(u) if *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
            continue;
        }
        let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("a JWKS key is unusable: {e}"))?;
        keys.push(VerifyKey {
            kid: jwk.common.key_id.clone(),
            alg,
            key,
            material,
        });
    }
    Ok(keys)
}

impl KeySet {
    /// The RS256 keys of a JWKS document, as the Sign-in Service publishes them.
    pub fn sis_from_jwks(text: &str, source: KeySource) -> Result<KeySet, String> {
        let keys: Vec<VerifyKey> = jwks_keys(text)?
            .into_iter()
            .filter(|k| k.alg == Algorithm::RS256)
            .collect();
        if keys.is_empty() {
            return Err("holds no RSA signing key".to_owned());
        }
        Ok(KeySet { source, keys })
    }

    /// No key at all: verifies nothing (before a first key set arrives).
    pub fn empty() -> KeySet {
        KeySet {
            source: KeySource::JwksUrl,
            keys: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}
