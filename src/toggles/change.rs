//! Writes to toggles, with Flipper's rules, as pure functions over a feature.

use super::{Feature, Percentage};

/// One admin write. Every write creates the feature if it does not exist yet, as Flipper does.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    AddFeature,
    /// Fully on: Flipper deletes the feature's other gates first.
    EnableBoolean,
    /// Fully off (the rollback): Flipper deletes all of the feature's gates.
    DisableBoolean,
    /// Replaces the percentage; disabling stores 0.
    PercentageOfActors(Percentage),
    PercentageOfTime(Percentage),
    AddActor(String),
    RemoveActor(String),
    /// The rollout guard's automatic rollback: a percentage of actors and nothing wider (the
    /// boolean and the percentage of time cleared), the actors kept; one write.
    NarrowTo(Percentage),
}

impl Change {
    pub fn apply(&self, feature: &mut Feature) {
        match self {
            Change::AddFeature => {}
            Change::EnableBoolean => {
                *feature = Feature {
                    boolean: true,
                    ..Feature::default()
                }
            }
            Change::DisableBoolean => *feature = Feature::default(),
            Change::PercentageOfActors(p) => feature.percentage_of_actors = Some(*p),
            Change::PercentageOfTime(p) => feature.percentage_of_time = Some(*p),
            Change::AddActor(id) => {
                feature.actors.insert(id.clone());
            }
            Change::RemoveActor(id) => {
                feature.actors.remove(id);
            }
            Change::NarrowTo(p) => {
                feature.boolean = false;
                feature.percentage_of_time = None;
                feature.percentage_of_actors = Some(*p);
            }
        }
    }

    /// A short description for the log (actor ids are not logged).
    pub fn describe(&self) -> String {
        match self {
            Change::AddFeature => "add feature".into(),
            Change::EnableBoolean => "enable boolean".into(),
            Change::DisableBoolean => "disable (all gates cleared)".into(),
            Change::PercentageOfActors(p) => format!("percentage_of_actors = {p}"),
            Change::PercentageOfTime(p) => format!("percentage_of_time = {p}"),
            Change::AddActor(_) => "add actor".into(),
            Change::RemoveActor(_) => "remove actor".into(),
            Change::NarrowTo(p) => format!("narrow to percentage_of_actors = {p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flipper_write_rules() {
        let mut f = Feature::default();
        Change::AddActor("a".into()).apply(&mut f);
        Change::PercentageOfActors(Percentage::Integer(10)).apply(&mut f);
        assert!(f.actors.contains("a") && f.percentage_of_actors == Some(Percentage::Integer(10)));
        Change::EnableBoolean.apply(&mut f);
        assert_eq!(
            f,
            Feature {
                boolean: true,
                ..Feature::default()
            },
            "enable clears the other gates"
        );
        Change::PercentageOfActors(Percentage::Integer(50)).apply(&mut f);
        Change::DisableBoolean.apply(&mut f);
        assert_eq!(f, Feature::default(), "disable clears everything");
        Change::AddActor("a".into()).apply(&mut f);
        Change::RemoveActor("a".into()).apply(&mut f);
        assert!(f.actors.is_empty());
    }
}
