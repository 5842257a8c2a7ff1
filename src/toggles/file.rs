//! The TOML toggle file.
//!
//! ```toml
//! [features.avs_enabled]
//! boolean = false
//! percentage_of_actors = 10          # integer or float
//! actors = ["tester@example.com"]
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::Deserialize;

use super::{Feature, Percentage, Snapshot};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    #[serde(default)]
    features: HashMap<String, FileFeature>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFeature {
    #[serde(default)]
    boolean: bool,
    #[serde(default)]
    actors: BTreeSet<String>,
    percentage_of_actors: Option<FilePercentage>,
    percentage_of_time: Option<FilePercentage>,
    #[serde(default)]
    groups: BTreeSet<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FilePercentage {
    Integer(i64),
    Decimal(f64),
    Text(String),
}

impl FilePercentage {
    fn into_percentage(self, feature: &str, gate: &str) -> Result<Percentage, String> {
        let pct = match self {
            FilePercentage::Integer(p) => Percentage::Integer(p),
            FilePercentage::Decimal(p) => Percentage::Decimal(p),
            FilePercentage::Text(t) => Percentage::parse(&t)
                .ok_or_else(|| format!("features.{feature}.{gate}: {t:?} is not a number"))?,
        };
        let value = match pct {
            Percentage::Integer(p) => p as f64,
            Percentage::Decimal(p) => p,
        };
        if !(0.0..=100.0).contains(&value) {
            return Err(format!("features.{feature}.{gate}: {pct} is outside 0..100"));
        }
        Ok(pct)
    }
}

pub fn load(path: &Path) -> Result<Snapshot, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse_toml(&text)
}

pub fn parse_toml(text: &str) -> Result<Snapshot, String> {
    let doc: FileDoc = toml::from_str(text).map_err(|e| e.message().to_owned())?;
    let mut features = HashMap::with_capacity(doc.features.len());
    for (name, f) in doc.features {
        for group in &f.groups {
            tracing::warn!(feature = %name, group = %group, "Flipper groups are Ruby code and never open here");
        }
        let feature = Feature {
            boolean: f.boolean,
            actors: f.actors,
            percentage_of_actors: f
                .percentage_of_actors
                .map(|p| p.into_percentage(&name, "percentage_of_actors"))
                .transpose()?,
            percentage_of_time: f
                .percentage_of_time
                .map(|p| p.into_percentage(&name, "percentage_of_time"))
                .transpose()?,
            groups: f.groups,
        };
        features.insert(name, feature);
    }
    Ok(Snapshot { features })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_integer_float_and_text_percentages() {
        let s = parse_toml(
            r#"
            [features.a]
            percentage_of_actors = 10
            actors = ["tester@example.com"]
            [features.b]
            boolean = true
            percentage_of_actors = 2.007
            [features.c]
            percentage_of_actors = "2.5"
            "#,
        )
        .unwrap();
        assert_eq!(
            s.features["a"].percentage_of_actors,
            Some(Percentage::Integer(10))
        );
        assert!(s.features["a"].actors.contains("tester@example.com"));
        assert_eq!(
            s.features["b"].percentage_of_actors,
            Some(Percentage::Decimal(2.007))
        );
        assert!(s.features["b"].boolean);
        assert_eq!(
            s.features["c"].percentage_of_actors,
            Some(Percentage::Decimal(2.5))
        );
    }

    #[test]
    fn refuses_typos_and_out_of_range() {
        assert!(parse_toml("[features.a]\nbolean = true").is_err());
        assert!(parse_toml("[features.a]\npercentage_of_actors = 101").is_err());
        assert!(parse_toml("[features.a]\npercentage_of_actors = \"x\"").is_err());
        assert!(parse_toml("not toml [").is_err());
    }
}
