//! Flipper's gate semantics, pure: no I/O, no clock, randomness passed in.

use std::collections::BTreeSet;

use crate::domain::ActorId;

/// A percentage as Flipper stores it: text, compared as f64 when it contains `.`, else as an
/// integer. The two are kept apart because integer milli-percent arithmetic differs from
/// Ruby's at the edges (2.007 * 1000 is 2007.0000000000002, so bucket 2007 is in at 2.007 %).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Percentage {
    Integer(i64),
    Decimal(f64),
}

impl Percentage {
    /// A number given to the admin API or a toggle file: the whole text must be a number. It is
    /// kept as Flipper keeps it: an integer when whole (`"10.0"` is 10), else a decimal.
    pub fn parse(text: &str) -> Option<Percentage> {
        let value: f64 = text.trim().parse().ok().filter(|p: &f64| p.is_finite())?;
        Some(Percentage::from_f64(value))
    }

    /// A stored row's value, read as VA.gov's Flipper reads it (`Typecast.to_percentage`):
    /// Ruby's `String#to_f`, the leading number (`"abc"` is 0, `"12abc"` is 12), an integer when
    /// whole. Whatever Flipper reads from a row, the service reads the same.
    pub fn read_stored(text: &str) -> Percentage {
        Percentage::from_f64(ruby_to_f(text))
    }

    pub fn from_f64(value: f64) -> Percentage {
        if value.fract() == 0.0 && value.abs() < 1e15 {
            Percentage::Integer(value as i64)
        } else {
            Percentage::Decimal(value)
        }
    }

    /// Flipper accepts 0 to 100.
    pub fn in_range(self) -> bool {
        match self {
            Percentage::Integer(p) => (0..=100).contains(&p),
            Percentage::Decimal(p) => (0.0..=100.0).contains(&p),
        }
    }

    /// A percentage gate is "set" (counts for the feature's state) only above 0.
    pub fn is_positive(self) -> bool {
        match self {
            Percentage::Integer(p) => p > 0,
            Percentage::Decimal(p) => p > 0.0,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Percentage::Integer(p) => p as f64,
            Percentage::Decimal(p) => p,
        }
    }

    pub fn at_least_100(self) -> bool {
        match self {
            Percentage::Integer(p) => p >= 100,
            Percentage::Decimal(p) => p >= 100.0,
        }
    }

    /// Whether a bucket in `0..100_000` falls under this percentage.
    fn covers(self, bucket: u32) -> bool {
        match self {
            Percentage::Integer(p) => i64::from(bucket) < p.saturating_mul(1000),
            Percentage::Decimal(p) => f64::from(bucket) < p * 1000.0,
        }
    }

    fn opens(self, bucket: impl FnOnce() -> u32) -> bool {
        self.is_positive() && (self.at_least_100() || self.covers(bucket()))
    }

    /// Whether a draw uniform in `[0, 1)` falls under this percentage of time.
    fn covers_draw(self, draw: f64) -> bool {
        match self {
            Percentage::Integer(p) => draw < p as f64 / 100.0,
            Percentage::Decimal(p) => draw < p / 100.0,
        }
    }
}

/// As stored: Ruby's `Integer#to_s` / `Float#to_s` (`10`, `2.5`, `33.333`, `1.0e-05`), so that
/// both Flipper 1.x and 0.25 read the row as this service does (0.25 reads text without a `.`
/// as an integer: `1e-5` would be 1 % to it).
impl std::fmt::Display for Percentage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Percentage::Integer(p) => write!(f, "{p}"),
            Percentage::Decimal(p) => f.write_str(&ruby_float_to_s(*p)),
        }
    }
}

/// Ruby's `Float#to_s`: the shortest round-trip digits, in plain notation when the decimal
/// exponent is -4 to 15, else as `d.ddde±XX`, always with a `.` in the mantissa.
fn ruby_float_to_s(value: f64) -> String {
    let scientific = format!("{value:e}"); // e.g. "1e-5", "3.3333e1"
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if (-4..16).contains(&exponent) {
        let plain = format!("{value}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let mantissa = if mantissa.contains('.') {
            mantissa.to_owned()
        } else {
            format!("{mantissa}.0")
        };
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// Ruby's `String#to_f`: leading white space, then the longest prefix that is a decimal
/// number (sign, digits with single underscores between them, a fraction, an exponent); 0.0
/// when there is none.
fn ruby_to_f(text: &str) -> f64 {
    let bytes = text.trim_start().as_bytes();
    let mut number = String::new();
    let mut i = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        number.push(bytes[0] as char);
        i = 1;
    }
    let digits = |i: &mut usize, number: &mut String| {
        let start = *i;
        while *i < bytes.len() {
            match bytes[*i] {
                b'0'..=b'9' => number.push(bytes[*i] as char),
                b'_' if *i > start && *i + 1 < bytes.len() && bytes[*i + 1].is_ascii_digit() => {}
                _ => break,
            }
            *i += 1;
        }
        *i > start
    };
    if !digits(&mut i, &mut number) {
        return 0.0;
    }
    if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
        number.push('.');
        i += 1;
        digits(&mut i, &mut number);
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut exponent = String::from("e");
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            exponent.push(bytes[j] as char);
            j += 1;
        }
        if digits(&mut j, &mut exponent) {
            number.push_str(&exponent);
        }
    }
    number.parse().unwrap_or(0.0)
}

/// Flipper's actor bucket: `crc32(feature_name + actor_id) % 100000`, no separator.
pub fn bucket(feature: &str, actor: &ActorId) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(feature.as_bytes());
    hasher.update(actor.as_str().as_bytes());
    hasher.finalize() % 100_000
}

/// Flipper's summary of a feature's gates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeatureState {
    /// Fully on: boolean, or percentage of time at 100.
    On,
    /// Some gate is set: actors, a percentage above 0, groups.
    Conditional,
    Off,
}

impl FeatureState {
    pub fn as_str(self) -> &'static str {
        match self {
            FeatureState::On => "on",
            FeatureState::Conditional => "conditional",
            FeatureState::Off => "off",
        }
    }
}

/// One feature's gates, as stored.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Feature {
    pub boolean: bool,
    pub actors: BTreeSet<String>,
    pub percentage_of_actors: Option<Percentage>,
    pub percentage_of_time: Option<Percentage>,
    /// Flipper groups are Ruby code; they never open here.
    pub groups: BTreeSet<String>,
}

impl Feature {
    pub fn state(&self) -> FeatureState {
        let positive = |p: Option<Percentage>| p.is_some_and(Percentage::is_positive);
        if self.boolean || self.percentage_of_time.is_some_and(Percentage::at_least_100) {
            FeatureState::On
        } else if !self.actors.is_empty()
            || !self.groups.is_empty()
            || positive(self.percentage_of_actors)
            || positive(self.percentage_of_time)
        {
            FeatureState::Conditional
        } else {
            FeatureState::Off
        }
    }

    /// Any gate opening opens the feature (`boolean = false` vetoes nothing).
    /// `draw` is a uniform random number in `[0, 1)`, used only by `percentage_of_time`.
    pub fn is_enabled(&self, name: &str, actor: Option<&ActorId>, draw: impl FnOnce() -> f64) -> bool {
        if self.boolean {
            return true;
        }
        if let Some(actor) = actor {
            if self.actors.contains(actor.as_str()) {
                return true;
            }
            if let Some(pct) = self.percentage_of_actors
                && pct.opens(|| bucket(name, actor))
            {
                return true;
            }
        }
        match self.percentage_of_time {
            Some(pct) => pct.is_positive() && (pct.at_least_100() || pct.covers_draw(draw())),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_written_as_ruby_writes_them() {
        let cases = [
            ("10", "10"),
            ("10.0", "10"),
            ("2.5", "2.5"),
            ("33.333", "33.333"),
            ("2.007", "2.007"),
            ("0.0001", "0.0001"),
            ("0.00001", "1.0e-05"),
            ("0.000015", "1.5e-05"),
            ("1e-5", "1.0e-05"),
            ("100", "100"),
        ];
        for (given, stored) in cases {
            let pct = Percentage::parse(given).unwrap();
            assert_eq!(pct.to_string(), stored, "{given}");
            assert_eq!(Percentage::read_stored(stored), pct, "{stored} reads back");
        }
        assert!(
            Percentage::parse("abc").is_none(),
            "the admin API refuses non-numbers"
        );
    }

    #[test]
    fn stored_values_are_read_as_ruby_to_f_reads_them() {
        for (stored, read) in [
            ("abc", Percentage::Integer(0)),
            ("12abc", Percentage::Integer(12)),
            (" 7.5 ", Percentage::Decimal(7.5)),
            ("1_0", Percentage::Integer(10)),
            ("1e-5", Percentage::Decimal(0.00001)),
            ("1.0e-05", Percentage::Decimal(0.00001)),
            ("5.", Percentage::Integer(5)),
            ("-3", Percentage::Integer(-3)),
            ("", Percentage::Integer(0)),
        ] {
            assert_eq!(Percentage::read_stored(stored), read, "{stored:?}");
        }
    }

    fn pct(n: &str) -> Feature {
        Feature {
            percentage_of_actors: Percentage::parse(n),
            ..Feature::default()
        }
    }

    fn on(feature: &Feature, actor: &str) -> bool {
        feature.is_enabled("avs_enabled", Some(&ActorId::new(actor)), || 0.5)
    }

    #[test]
    fn known_buckets_from_the_spec() {
        for (actor, crc, b) in [
            ("User;1", 3362246802u32, 46802),
            ("User;15", 2591604246, 4246),
            ("User;42", 2037112816, 12816),
            ("vets.gov.user+1@gmail.com", 395345493, 45493),
            ("User;19008", 1519102007, 2007),
        ] {
            assert_eq!(crc32fast::hash(format!("avs_enabled{actor}").as_bytes()), crc);
            assert_eq!(bucket("avs_enabled", &ActorId::new(actor)), b);
        }
        assert!(!on(&pct("10"), "User;1"));
        assert!(!on(&pct("46.802"), "User;1") && on(&pct("46.803"), "User;1"));
        assert!(on(&pct("10"), "User;15"));
        assert!(!on(&pct("10"), "User;42") && on(&pct("13"), "User;42"));
        assert!(!on(&pct("10"), "vets.gov.user+1@gmail.com") && on(&pct("50"), "vets.gov.user+1@gmail.com"));
        assert!(on(&pct("2.007"), "User;19008"), "f64 edge");
        assert!(!on(&pct("2"), "User;19008"));
    }

    #[test]
    fn zero_and_hundred_and_garbage() {
        assert!(!on(&pct("0"), "User;19008") && !on(&pct("0.0"), "User;19008"));
        assert!(on(&pct("100"), "User;1") && on(&pct("250"), "User;1"));
        assert!(!on(&pct("ten"), "User;15"));
    }

    #[test]
    fn gates_are_an_or_and_need_an_actor() {
        let only_actor = Feature {
            actors: ["tester@example.com".to_owned()].into(),
            ..Feature::default()
        };
        assert!(on(&only_actor, "tester@example.com"));
        assert!(
            !on(&only_actor, "Tester@example.com"),
            "actors are case-sensitive"
        );
        let f = Feature {
            actors: ["tester@example.com".to_owned()].into(),
            ..pct("10")
        };
        assert!(on(&f, "tester@example.com") && on(&f, "User;15") && !on(&f, "User;1"));
        assert!(
            !f.is_enabled("avs_enabled", None, || 0.0),
            "no actor, no actor gates"
        );
        assert!(
            Feature {
                boolean: true,
                ..Feature::default()
            }
            .is_enabled("x", None, || 0.9)
        );
        let time = Feature {
            percentage_of_time: Percentage::parse("30"),
            ..Feature::default()
        };
        assert!(time.is_enabled("x", None, || 0.29) && !time.is_enabled("x", None, || 0.3));
    }
}
