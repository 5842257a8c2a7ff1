//! Identifiers parsed at the edge. Inner code only ever sees these types, never raw strings.

use std::fmt;
use std::sync::Arc;

/// A summary id: 30 to 40 ASCII hex digits in either case, kept exactly as the caller sent it.
/// It goes upstream byte for byte, as VA.gov's Ruby API sends it, and the clinical source
/// decides whether another spelling names a summary; the cache is keyed by the same exact
/// spelling, so no spelling can stand for, or poison the negative cache of, another (#20).
///
/// Checked byte by byte rather than with a regex, so there is no anchor or `\d` subtlety:
/// a newline, a non-ASCII digit or a 41st character is simply not a hex digit in range.
///
/// Held inline (at most 40 bytes): a cached hit parses one and looks it up without allocating.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Sid(arrayvec::ArrayString<40>);

impl Sid {
    pub fn parse(raw: impl AsRef<str>) -> Option<Sid> {
        let text = raw.as_ref();
        let ok = (30..=40).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return None;
        }
        arrayvec::ArrayString::from(text).ok().map(Sid)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a document's own sid names this one: the upstream decides spellings, so one that
    /// answers a lower-case request with its upper-case sid is answering this request.
    pub fn same_summary(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl fmt::Display for Sid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 1 to 20 ASCII digits: the shape of both a station number and an appointment IEN.
fn parse_digits(raw: &str) -> Option<String> {
    let ok = (1..=20).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| raw.to_owned())
}

/// A VA station (facility) number such as `500`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StationNo(String);

impl StationNo {
    pub fn parse(raw: &str) -> Option<StationNo> {
        parse_digits(raw).map(StationNo)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The internal entry number of an appointment at a station.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AppointmentIen(String);

impl AppointmentIen {
    pub fn parse(raw: &str) -> Option<AppointmentIen> {
        parse_digits(raw).map(AppointmentIen)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The owner part of an Integration Control Number: the ICN without its `V` + six-digit
/// checksum suffix. Two ICNs name the same patient when their owner parts are equal.
///
/// Deliberately has no `Display` and a redacted `Debug`: an ICN must never reach a log line.
/// Shared, not owned: a cached caller's ids are copied into every request.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct OwnerIcn(Arc<str>);

impl OwnerIcn {
    /// `None` for a missing ICN, and for one that is empty once the checksum is stripped:
    /// an empty ICN on both sides must never count as a match.
    pub fn from_icn(icn: Option<&str>) -> Option<OwnerIcn> {
        let icn = icn?;
        let owner = strip_checksum(icn);
        (!owner.is_empty()).then(|| OwnerIcn(Arc::from(owner)))
    }
}

impl fmt::Debug for OwnerIcn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnerIcn(<redacted>)")
    }
}

/// The patient's ICN exactly as the token gave it: what the Oracle Health upstream is asked
/// about (`patientId`). Like [`OwnerIcn`], no `Display` and a redacted `Debug`.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PatientIcn(Arc<str>);

impl PatientIcn {
    /// `None` for a missing or empty ICN: such a caller owns nothing.
    pub fn from_icn(icn: Option<&str>) -> Option<PatientIcn> {
        icn.filter(|i| !i.is_empty()).map(|i| PatientIcn(Arc::from(i)))
    }

    /// The ICN, for the upstream call only (never a log line or a response).
    pub fn for_upstream(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for PatientIcn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PatientIcn(<redacted>)")
    }
}

/// Strips a trailing `V` followed by exactly six ASCII digits; anything else is left as is.
fn strip_checksum(icn: &str) -> &str {
    let bytes = icn.as_bytes();
    if bytes.len() >= 7 {
        let (head, tail) = bytes.split_at(bytes.len() - 7);
        if tail[0] == b'V' && tail[1..].iter().all(u8::is_ascii_digit) {
            // The split is at an ASCII byte, so it is a char boundary.
            return &icn[..head.len()];
        }
    }
    icn
}

/// Whether a caller with `caller` ICN may see a record owned by `owner`.
pub fn same_patient(caller: Option<&OwnerIcn>, owner: Option<&OwnerIcn>) -> bool {
    matches!((caller, owner), (Some(a), Some(b)) if a == b)
}

/// The identity used for feature gating, named as VA.gov's user model names its Flipper actor:
/// the lowercased email when present and non-empty, else the account id (`sub`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ActorId(Arc<str>);

impl ActorId {
    /// VA.gov's `email&.downcase || account_uuid`: the email whenever the claim is present,
    /// even empty (`""` is truthy in Ruby), lower-cased as Ruby's `String#downcase` does: full
    /// Unicode mapping char by char, with no context-sensitive final sigma (`Σ` is `σ`
    /// everywhere; Rust's `str::to_lowercase` would give `ς` at a word's end and another bucket).
    pub fn from_claims(sub: &str, email: Option<&str>) -> ActorId {
        match email {
            Some(email) => ActorId(Arc::from(
                email.chars().flat_map(char::to_lowercase).collect::<String>(),
            )),
            None => ActorId(Arc::from(sub)),
        }
    }

    /// For toggles and tests that name actors directly (Flipper stores them as text).
    pub fn new(id: impl Into<String>) -> ActorId {
        ActorId(Arc::from(id.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actor_ids_follow_ruby() {
        // Ruby's downcase has no final-sigma rule.
        assert_eq!(
            ActorId::from_claims("s", Some("ΟΔΥΣΣΕΥΣ1@EXAMPLE.COM")).as_str(),
            "οδυσσευσ1@example.com"
        );
        assert_eq!(ActorId::from_claims("s", Some("ΟΔΥΣΣΕΥΣ")).as_str(), "οδυσσευσ");
        // "" is truthy in Ruby: an empty email is the actor.
        assert_eq!(ActorId::from_claims("sub-1", Some("")).as_str(), "");
        assert_eq!(ActorId::from_claims("sub-1", None).as_str(), "sub-1");
        assert_eq!(
            ActorId::from_claims("s", Some("İSTANBUL@X.ORG")).as_str(),
            "i\u{307}stanbul@x.org"
        );
    }

    #[test]
    fn sid_accepts_30_to_40_hex_digits_of_either_case() {
        assert!(Sid::parse("a".repeat(30)).is_some());
        assert!(Sid::parse("F".repeat(40)).is_some());
        assert!(Sid::parse("9A7AF40B2BC2471EA116891839113252").is_some());
        let lower = "9a7af40b2bc2471ea116891839113252";
        assert_eq!(
            Sid::parse(lower).map(|s| s.to_string()).as_deref(),
            Some(lower),
            "kept as sent"
        );
        for bad in [
            "a".repeat(29),
            "a".repeat(41),
            format!("{}g", "a".repeat(31)),
            format!("{}\n", "a".repeat(31)),
            format!("{}\n", "a".repeat(32)),
            String::new(),
            format!("{}٣", "a".repeat(31)), // Arabic-Indic digit: not ASCII
        ] {
            assert!(Sid::parse(&bad).is_none(), "{bad:?} must be rejected");
        }
    }

    #[test]
    fn station_and_ien_are_1_to_20_ascii_digits() {
        assert!(StationNo::parse("500").is_some());
        assert!(AppointmentIen::parse(&"9".repeat(20)).is_some());
        for bad in ["", "50a", " 500", "500\n", "-1", "1.5", "１２"] {
            assert!(StationNo::parse(bad).is_none(), "{bad:?}");
        }
        assert!(AppointmentIen::parse(&"9".repeat(21)).is_none());
    }

    #[test]
    fn icn_rule_strips_exactly_v_and_six_digits() {
        let o = |s: &str| OwnerIcn::from_icn(Some(s));
        assert_eq!(o("1234567890V123456"), o("1234567890"));
        assert_eq!(o("1234567890V123456"), o("1234567890V999999"));
        assert_ne!(o("1234567890V12345"), o("1234567890")); // five digits: not a checksum
        assert_ne!(o("1234567890v123456"), o("1234567890")); // lowercase v: not a checksum
        assert_ne!(o("1234567890 "), o("1234567890")); // no trimming
        assert!(OwnerIcn::from_icn(None).is_none());
        assert!(OwnerIcn::from_icn(Some("")).is_none());
        assert!(OwnerIcn::from_icn(Some("V123456")).is_none());
        assert!(!same_patient(None, None));
        assert!(same_patient(o("1V000000").as_ref(), o("1").as_ref()));
    }

    #[test]
    fn actor_is_lowercased_email_else_sub() {
        assert_eq!(
            ActorId::from_claims("u-1", Some("Tester@Example.COM")).as_str(),
            "tester@example.com"
        );
        // An empty email is the actor, as `email&.downcase || account_uuid` has it in Ruby.
        assert_eq!(ActorId::from_claims("User;15", Some("")).as_str(), "");
        assert_eq!(ActorId::from_claims("User;15", None).as_str(), "User;15");
    }
}
