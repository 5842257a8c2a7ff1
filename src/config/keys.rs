//! Verification keys (read and checked with the configuration, so a bad or development key
//! stops the process before it listens): PEM files, JWKS documents, and the development keys
//! (never in production).
//!
//! A key is known by its **material** (RSA modulus and exponent, EC point), never by its text:
//! the development key re-encoded as `BEGIN RSA PUBLIC KEY`, or with a JWK exponent padded
//! with a zero byte, is the same key and is refused the same (`identity.md`).

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind};

pub(crate) const DEV_PUBLIC_PEM: &str = include_str!("../../fixtures/dev-keys/dev-rs256.pub.pem");
/// The "old" development key (the stand-in's previous one, as during a rotation).
const DEV_OLD_PUBLIC_PEM: &str = include_str!("../../fixtures/dev-keys/dev-old-rs256.pub.pem");
const DEV_JWKS: &str = include_str!("../../fixtures/dev-keys/dev-jwks.json");
/// The embedded SiS stand-in's key set: the development key (current) and a second, "old" one,
/// as vets-api publishes both during a rotation.
pub(crate) const DEV_SIS_JWKS: &str = include_str!("../../fixtures/dev-keys/sis-jwks.json");
pub const DEV_KID: &str = "avs-dev-rs256";

/// What a public key is, whatever its encoding: big-endian integers without leading zeros.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyMaterial {
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point, `04 || x || y`.
    Ec(Vec<u8>),
}

impl KeyMaterial {
    /// Read from the decoding key itself, so it is what verification will use.
    fn of(key: &DecodingKey, alg: Algorithm) -> Result<KeyMaterial, String> {
        let unusable = || "a key's material could not be read".to_owned();
        match (key.kind(), alg) {
            (DecodingKeyKind::RsaModulusExponent { n, e }, _) => Ok(KeyMaterial::Rsa {
                n: unpadded(n),
                e: unpadded(e),
            }),
            // jsonwebtoken keeps an RSA PEM key (PKCS#1 or SPKI) as its PKCS#1 DER:
            // `SEQUENCE { INTEGER n, INTEGER e }`.
            (DecodingKeyKind::SecretOrDer(der), Algorithm::RS256) => {
                let blocks = simple_asn1::from_der(der).map_err(|_| unusable())?;
                match blocks.as_slice() {
                    [simple_asn1::ASN1Block::Sequence(_, fields)] => match fields.as_slice() {
                        [
                            simple_asn1::ASN1Block::Integer(_, n),
                            simple_asn1::ASN1Block::Integer(_, e),
                        ] => Ok(KeyMaterial::Rsa {
                            n: unpadded(&n.to_bytes_be().1),
                            e: unpadded(&e.to_bytes_be().1),
                        }),
                        _ => Err(unusable()),
                    },
                    _ => Err(unusable()),
                }
            }
            (DecodingKeyKind::SecretOrDer(point), _) => Ok(KeyMaterial::Ec(point.clone())),
        }
    }
}

fn unpadded(bytes: &[u8]) -> Vec<u8> {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes[first..].to_vec()
}

/// Both development keys' material, from every file they ship in.
static DEVELOPMENT_KEYS: LazyLock<Vec<KeyMaterial>> = LazyLock::new(|| {
    let pems = [DEV_PUBLIC_PEM, DEV_OLD_PUBLIC_PEM]
        .into_iter()
        .flat_map(|pem| pem_keys(pem).unwrap_or_default());
    let jwks = [DEV_JWKS, DEV_SIS_JWKS]
        .into_iter()
        .flat_map(|jwks| jwks_keys(jwks).map(|(keys, _)| keys).unwrap_or_default());
    let mut all: Vec<KeyMaterial> = Vec::new();
    for key in pems.chain(jwks) {
        if !all.contains(&key.material) {
            all.push(key.material);
        }
    }
    all
});

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
    /// What the key is, to know the development keys in any encoding.
    pub(crate) material: KeyMaterial,
}

/// The verification keys, each bound to the one algorithm its type allows.
#[derive(Clone)]
pub struct KeySet {
    source: KeySource,
    pub(crate) keys: Vec<VerifyKey>,
    /// Keys of the document that could not be used, each said without its values.
    skipped: Vec<String>,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl KeySet {
    pub fn load(source: &KeySource) -> Result<KeySet, String> {
        let (keys, skipped) = match source {
            KeySource::Development => (pem_keys(DEV_PUBLIC_PEM)?, Vec::new()),
            KeySource::PemFile(path) => (pem_keys(&read(path)?)?, Vec::new()),
            KeySource::JwksFile(path) => jwks_keys(&read(path)?)?,
            KeySource::JwksUrl => return Err("a key set from a URL is fetched, not loaded".to_owned()),
        };
        if keys.is_empty() {
            return Err(with_skipped("holds no RSA or EC P-256 public key", &skipped));
        }
        Ok(KeySet {
            source: source.clone(),
            keys,
            skipped,
        })
    }

    pub fn describe(&self) -> String {
        let n = self.keys.len();
        let skipped = match self.skipped.len() {
            0 => String::new(),
            k => format!(" ({k} unusable key(s) skipped)"),
        };
        match &self.source {
            KeySource::Development => "development key (fixtures/dev-keys)".to_owned(),
            KeySource::PemFile(p) => format!("{n} key(s) from PEM {}", p.display()),
            KeySource::JwksFile(p) => format!("{n} key(s) from JWKS {}{skipped}", p.display()),
            KeySource::JwksUrl => format!("{n} key(s) from a JWKS URL{skipped}"),
        }
    }

    /// Whether either development key is in the set, compared by key material.
    pub fn contains_development_key(&self) -> bool {
        self.source == KeySource::Development
            || self.keys.iter().any(|k| DEVELOPMENT_KEYS.contains(&k.material))
    }

    /// The keys of the document that were skipped, each said without its values (for the log).
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }
}

fn with_skipped(problem: &str, skipped: &[String]) -> String {
    if skipped.is_empty() {
        problem.to_owned()
    } else {
        format!("{problem} ({})", skipped.join("; "))
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
        let material =
            KeyMaterial::of(&key, alg).map_err(|e| format!("PEM block {}: {e}", keys.len() + 1))?;
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

/// A JWKS document's signing keys, and what was skipped: one unusable key (bad base64, an
/// unknown `kty`) must not take the whole set down, or a rotation would be missed and the
/// service never ready (`identity.md`). The document itself must be a JWKS.
pub(crate) fn jwks_keys(text: &str) -> Result<(Vec<VerifyKey>, Vec<String>), String> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<serde_json::Value>,
    }
    // Never a serde message: it would quote the offending value.
    let document: Document = serde_json::from_str(text).map_err(|_| "not a JWKS document".to_owned())?;
    let mut keys = Vec::new();
    let mut skipped = Vec::new();
    for (i, value) in document.keys.into_iter().enumerate() {
        let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
        let name = match &kid {
            Some(kid) => format!("key {} ({kid:?})", i + 1),
            None => format!("key {}", i + 1),
        };
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            skipped.push(format!("{name}: not a JWK of a known type"));
            continue;
        };
        use jsonwebtoken::jwk::AlgorithmParameters as P;
        let alg = match &jwk.algorithm {
            P::RSA(_) => Algorithm::RS256,
            P::EllipticCurve(_) => Algorithm::ES256,
            // Symmetric, OKP or unknown keys are never accepted here.
            _ => {
                skipped.push(format!("{name}: not an RSA or EC signing key"));
                continue;
            }
        };
        // A key published for encryption only is never a signing key.
        if matches!(&jwk.common.public_key_use, Some(u) if *u != jsonwebtoken::jwk::PublicKeyUse::Signature) {
            continue;
        }
        let usable = DecodingKey::from_jwk(&jwk)
            .map_err(|_| "its values do not decode".to_owned())
            .and_then(|key| Ok((KeyMaterial::of(&key, alg)?, key)));
        match usable {
            Ok((material, key)) => keys.push(VerifyKey {
                kid,
                alg,
                key,
                material,
            }),
            Err(why) => skipped.push(format!("{name}: {why}")),
        }
    }
    Ok((keys, skipped))
}

impl KeySet {
    /// The RS256 keys of a JWKS document, as the Sign-in Service publishes them; fails only
    /// when none is left.
    pub fn sis_from_jwks(text: &str, source: KeySource) -> Result<KeySet, String> {
        let (keys, skipped) = jwks_keys(text)?;
        let keys: Vec<VerifyKey> = keys.into_iter().filter(|k| k.alg == Algorithm::RS256).collect();
        if keys.is_empty() {
            return Err(with_skipped("holds no RSA signing key", &skipped));
        }
        Ok(KeySet {
            source,
            keys,
            skipped,
        })
    }

    /// No key at all: verifies nothing (before a first key set arrives).
    pub fn empty() -> KeySet {
        KeySet {
            source: KeySource::JwksUrl,
            keys: Vec::new(),
            skipped: Vec::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLD_JWKS_KEY: &str = r#"{"kty":"RSA","kid":"avs-dev-sis-old","use":"sig","alg":"RS256","n":"-hsoQDOu1ukj4u3eV9geA2NzYufi3wfv_vncb7HETayq08_eSHkPHHO2X2slVbL_GygbyOrePRMPb_EGoCTodOrbFHPO3W2ryZHEWpeLa5qR6EEKryqRh4QyYIYmTek2032wv3Jl7zFA5VsupIwWKKgNsgll_JfVfPnCaQwHazXxduF642Wyn4f1MWb15BdPHwSH-i0jRPmDfhfYK4tEyARQ-Q-GOL9IoaBbwWMJCglTMKvPtWJbDrcKGOHivwmlKi-HrpHVtVpbzhgI1e8JlYc9KHTux8kdIPDoJVbB4_WRwPQicIzu-v4Do_5x-YTnNo87HJwEMQE-sXvULfVCTw","e":"AQAB"}"#;

    fn pem_set(text: &str) -> KeySet {
        KeySet {
            source: KeySource::PemFile(PathBuf::from("k.pem")),
            keys: pem_keys(text).unwrap(),
            skipped: Vec::new(),
        }
    }

    #[test]
    fn both_development_keys_are_known_by_material_in_every_encoding() {
        assert_eq!(DEVELOPMENT_KEYS.len(), 2, "the current and the old key");
        // SPKI, PKCS#1 (`BEGIN RSA PUBLIC KEY`), and the old key's PEM.
        for text in [
            DEV_PUBLIC_PEM,
            include_str!("../../tests/keys/dev-rs256.pkcs1.pem"),
            DEV_OLD_PUBLIC_PEM,
        ] {
            assert!(pem_set(text).contains_development_key(), "{text}");
        }
        // A JWK with a padded modulus and exponent: other text, the same key.
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut jwk: serde_json::Value = serde_json::from_str(OLD_JWKS_KEY).unwrap();
        let mut n = b64.decode(jwk["n"].as_str().unwrap()).unwrap();
        n.insert(0, 0);
        jwk["n"] = b64.encode(n).into();
        jwk["e"] = "AAEAAQ".into();
        let padded = jwk.to_string();
        let (keys, _) = jwks_keys(&format!(r#"{{"keys":[{OLD_JWKS_KEY}]}}"#)).unwrap();
        let (padded_keys, _) = jwks_keys(&format!(r#"{{"keys":[{padded}]}}"#)).unwrap();
        assert_eq!(keys[0].material, padded_keys[0].material);
        let set = KeySet::sis_from_jwks(&format!(r#"{{"keys":[{padded}]}}"#), KeySource::JwksUrl).unwrap();
        assert!(set.contains_development_key());
        // The PEM and the JWK of one key have one material.
        let (dev_jwk, _) = jwks_keys(DEV_JWKS).unwrap();
        assert_eq!(pem_keys(DEV_PUBLIC_PEM).unwrap()[0].material, dev_jwk[0].material);
    }

    #[test]
    fn the_production_keys_are_not_development_keys() {
        let set = pem_set(include_str!("../../tests/keys/rsa.pub.pem"));
        assert!(!set.contains_development_key());
        let ec = pem_set(include_str!("../../tests/keys/ec.pub.pem"));
        assert!(matches!(ec.keys[0].material, KeyMaterial::Ec(_)));
        assert!(!ec.contains_development_key());
        let jwks =
            KeySet::sis_from_jwks(include_str!("../../tests/keys/jwks.json"), KeySource::JwksUrl).unwrap();
        assert!(!jwks.contains_development_key());
    }

    #[test]
    fn an_unusable_key_is_skipped_and_named_without_its_values() {
        let text = format!(
            r#"{{"keys":[{{"kty":"EC","crv":"P-256","kid":"bad","x":"no*","y":"no*"}},{{"kty":"XYZ","kid":"odd"}},{OLD_JWKS_KEY}]}}"#
        );
        let set = KeySet::sis_from_jwks(&text, KeySource::JwksUrl).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped().len(), 2, "{:?}", set.skipped());
        assert!(
            set.skipped().iter().all(|s| !s.contains("no*")),
            "{:?}",
            set.skipped()
        );
        assert!(set.describe().contains("2 unusable key(s) skipped"));
        // Nothing usable left: the set fails, saying what was skipped.
        let none = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"bad","x":"no*","y":"no*"}]}"#;
        let problem = KeySet::sis_from_jwks(none, KeySource::JwksUrl).unwrap_err();
        assert!(
            problem.contains("holds no RSA signing key") && problem.contains("\"bad\""),
            "{problem}"
        );
        // Not a JWKS at all: refused as a whole, quoting nothing of it.
        let problem = KeySet::sis_from_jwks(r#"{"keys": "secret-ish"}"#, KeySource::JwksUrl).unwrap_err();
        assert!(!problem.contains("secret-ish"), "{problem}");
    }
}
