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
    /// Parses stored text; anything that is not a number is no percentage (the gate stays shut).
    pub fn parse(text: &str) -> Option<Percentage> {
        if text.contains('.') {
            text.parse::<f64>()
                .ok()
                .filter(|p| p.is_finite())
                .map(Percentage::Decimal)
        } else {
            text.parse::<i64>().ok().map(Percentage::Integer)
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

impl std::fmt::Display for Percentage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Percentage::Integer(p) => write!(f, "{p}"),
            Percentage::Decimal(p) => write!(f, "{p:?}"),
        }
    }
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
