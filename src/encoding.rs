//! Content codings for summaries: compressed once, when a summary is rendered, and kept beside
//! the identity bytes in its cache entry; each request is then answered with the form its
//! `Accept-Encoding` prefers (RFC 9110 §12.5.3), at no CPU cost per hit.
//!
//! Levels, measured by `bench/probe.rs levels` on the full fixture summary (31,699 bytes):
//! - gzip level 6: 7,230 bytes (4.4×) in 0.32 ms; level 9 gains 12 bytes for 50 % more time.
//! - brotli quality 5: 6,942 bytes (4.6×) in 0.40 ms; qualities 6 to 9 gain under 0.5 %, and 9
//!   takes 8 ms. Only quality 11 reaches 6,006 bytes (5.3×), at 29 ms (800 ms for 1 MB).
//!
//! So a miss compresses at brotli 5 and gzip 6 (0.7 ms in all), the entry is cached at once,
//! and brotli 11 then replaces the brotli form from a blocking thread, off the request's path,
//! for bodies up to `BEST_BROTLI_MAX_BYTES` (a 1 MB summary is already 79× at quality 5).
//! zstd is left out: browsers that send `zstd` send `br` too, and brotli does better on JSON.
//!
//! Why BREACH does not apply: it needs an attacker-chosen string reflected in the same
//! compressed body as a secret, and many requests to watch the length change. A summary's
//! body is the upstream document alone, fixed when it is fetched and shared by every request
//! for it; nothing from the request (query, path beyond the sid, headers, cookies) is
//! reflected into it, and it holds no token or CSRF secret. The links and search answers
//! (which do carry request values) are not compressed.

use std::io::Write as _;

use bytes::Bytes;

/// A codings this service can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coding {
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// The `Content-Encoding` value, if any.
    pub fn header(self) -> Option<&'static str> {
        match self {
            Coding::Brotli => Some("br"),
            Coding::Gzip => Some("gzip"),
            Coding::Identity => None,
        }
    }
}

const BROTLI_QUALITY: u32 = 5;
const BEST_BROTLI_QUALITY: u32 = 11;
const BROTLI_WINDOW: u32 = 22;
const GZIP_LEVEL: u32 = 6;
/// Bodies up to this size get brotli's best quality after the miss (~200 ms of CPU at most).
pub const BEST_BROTLI_MAX_BYTES: usize = 256 * 1024;

fn brotli(identity: &[u8], quality: u32) -> Bytes {
    let mut br = Vec::with_capacity(identity.len() / 4);
    {
        let mut writer = brotli::CompressorWriter::new(&mut br, 4096, quality, BROTLI_WINDOW);
        // Writing to a Vec cannot fail.
        let _ = writer.write_all(identity);
    }
    Bytes::from(br)
}

/// One body in every form this service serves.
#[derive(Clone, Debug)]
pub struct Encoded {
    pub identity: Bytes,
    pub br: Bytes,
    pub gzip: Bytes,
    /// Each form's `Content-Length` value, made once: making one per answer allocated twice.
    lengths: [axum::http::HeaderValue; 3],
}

impl Encoded {
    /// Compresses `identity` once into every coding.
    pub fn new(identity: Bytes) -> Encoded {
        let br = brotli(&identity, BROTLI_QUALITY);
        let mut gzip = flate2::write::GzEncoder::new(
            Vec::with_capacity(identity.len() / 3),
            flate2::Compression::new(GZIP_LEVEL),
        );
        let _ = gzip.write_all(&identity);
        let gzip = gzip.finish().unwrap_or_default();
        Encoded::of(identity, br, Bytes::from(gzip))
    }

    fn of(identity: Bytes, br: Bytes, gzip: Bytes) -> Encoded {
        let lengths = [&identity, &br, &gzip].map(|form| axum::http::HeaderValue::from(form.len()));
        Encoded {
            identity,
            br,
            gzip,
            lengths,
        }
    }

    /// The same forms with brotli at its best quality: slow (tens of ms), so never on a
    /// request's path. `None` when the body is too large to be worth it.
    pub fn best(&self) -> Option<Encoded> {
        (self.identity.len() <= BEST_BROTLI_MAX_BYTES).then(|| {
            Encoded::of(
                self.identity.clone(),
                brotli(&self.identity, BEST_BROTLI_QUALITY),
                self.gzip.clone(),
            )
        })
    }

    /// Bytes held, every form counted.
    pub fn len(&self) -> usize {
        self.identity.len() + self.br.len() + self.gzip.len()
    }

    pub fn is_empty(&self) -> bool {
        self.identity.is_empty()
    }

    /// The `Content-Length` of [`Encoded::get`]'s form.
    pub fn length(&self, coding: Coding) -> &axum::http::HeaderValue {
        &self.lengths[match coding {
            Coding::Identity => 0,
            Coding::Brotli => 1,
            Coding::Gzip => 2,
        }]
    }

    pub fn get(&self, coding: Coding) -> &Bytes {
        match coding {
            Coding::Brotli => &self.br,
            Coding::Gzip => &self.gzip,
            Coding::Identity => &self.identity,
        }
    }
}

/// The coding to answer with, from an `Accept-Encoding` value (RFC 9110 §12.5.3).
///
/// - no header: identity (the safe reading for clients that say nothing);
/// - each coding's weight is its own `q`, else that of `*`; identity is acceptable unless
///   `identity;q=0`, or `*;q=0` without an `identity` entry;
/// - the highest weight above 0 wins; on a tie, the smaller body (br, then gzip, then
///   identity);
/// - unknown codings and malformed entries are ignored; if nothing is acceptable, identity
///   all the same (a 406 would only break the client).
pub fn negotiate(accept: Option<&str>) -> Coding {
    let Some(accept) = accept else {
        return Coding::Identity;
    };
    let (mut br, mut gzip, mut identity, mut star) = (None, None, None, None);
    for entry in accept.split(',') {
        let mut parts = entry.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if coding.is_empty() {
            continue;
        }
        let mut q = Some(1.0);
        for param in parts {
            let (name, value) = param.split_once('=').unwrap_or((param, ""));
            if name.trim().eq_ignore_ascii_case("q") {
                q = parse_q(value.trim());
            }
        }
        let Some(q) = q else { continue };
        let slot = if coding.eq_ignore_ascii_case("br") {
            &mut br
        } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            &mut gzip
        } else if coding.eq_ignore_ascii_case("identity") {
            &mut identity
        } else if coding == "*" {
            &mut star
        } else {
            continue;
        };
        *slot = Some(q);
    }
    let weight = |explicit: Option<f32>| explicit.or(star).unwrap_or(0.0);
    let identity_weight = identity.or(star.filter(|q| *q == 0.0)).unwrap_or(0.001);
    let choices = [
        (Coding::Brotli, weight(br)),
        (Coding::Gzip, weight(gzip)),
        (Coding::Identity, identity_weight),
    ];
    choices
        .into_iter()
        .filter(|(_, q)| *q > 0.0)
        .fold(None, |best: Option<(Coding, f32)>, (coding, q)| match best {
            Some((_, best_q)) if best_q >= q => best,
            _ => Some((coding, q)),
        })
        .map_or(Coding::Identity, |(coding, _)| coding)
}

/// A `q` value: 0 to 1 with at most three decimals; anything else makes the entry ignored.
fn parse_q(text: &str) -> Option<f32> {
    let valid = match text.split_once('.') {
        None => text == "0" || text == "1",
        Some((whole, fraction)) => {
            fraction.len() <= 3
                && fraction.bytes().all(|b| b.is_ascii_digit())
                && (whole == "0" || (whole == "1" && fraction.bytes().all(|b| b == b'0')))
        }
    };
    valid.then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read as _;

    #[test]
    fn negotiation_follows_rfc_9110() {
        use Coding::*;
        let cases: &[(Option<&str>, Coding)] = &[
            (None, Identity),
            (Some(""), Identity),
            (Some("gzip, deflate, br"), Brotli),
            (Some("gzip, deflate, br, zstd"), Brotli),
            (Some("gzip"), Gzip),
            (Some("x-gzip"), Gzip),
            (Some("deflate"), Identity),
            (Some("compress, snappy"), Identity),
            (Some("br;q=0.5, gzip;q=0.8"), Gzip),
            (Some("br;q=0, gzip;q=0"), Identity),
            (Some("*"), Brotli),
            (Some("*;q=0.5, br;q=0.1"), Gzip),
            (Some("identity;q=0, gzip"), Gzip),
            (Some("identity;q=0"), Identity), // nothing acceptable: identity all the same
            (Some("*;q=0"), Identity),
            (Some("*;q=0, gzip"), Gzip),
            (Some("identity"), Identity),
            (Some("identity, gzip;q=0.5"), Identity),
            (Some("GZIP;Q=1.0"), Gzip),
            (Some("br;q=2, gzip"), Gzip), // a malformed q: the entry is ignored
            (Some("br;q=0.0001, gzip;q=0.001"), Gzip),
            (Some(" br ; q=0.9 ,gzip"), Gzip),
        ];
        for (accept, want) in cases {
            assert_eq!(negotiate(*accept), *want, "{accept:?}");
        }
    }

    #[test]
    fn every_form_decodes_to_the_identity_bytes() {
        let body = Bytes::from(r#"{"data":{"attributes":{"vitals":[1,2,3]}}}"#.repeat(200));
        let encoded = Encoded::new(body.clone()).best().unwrap();
        assert!(encoded.br.len() * 5 < body.len() && encoded.gzip.len() * 4 < body.len());
        let mut br = Vec::new();
        brotli::Decompressor::new(&encoded.br[..], 4096)
            .read_to_end(&mut br)
            .unwrap();
        let mut gz = Vec::new();
        flate2::read::GzDecoder::new(&encoded.gzip[..])
            .read_to_end(&mut gz)
            .unwrap();
        assert_eq!(br, body);
        assert_eq!(gz, body);
        assert_eq!(encoded.len(), body.len() + encoded.br.len() + encoded.gzip.len());
    }
}
