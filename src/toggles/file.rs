//! The TOML toggle file: parsed, rendered back for admin writes (atomic rename), and watched.
//!
//! ```toml
//! [features.avs_enabled]
//! boolean = false
//! percentage_of_actors = 10          # integer or float
//! actors = ["tester@example.com"]
//! ```

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

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
            FilePercentage::Decimal(p) => Percentage::from_f64(p),
            FilePercentage::Text(t) => {
                Percentage::parse(&t).ok_or_else(|| format!("features.{feature}.{gate}: not a number"))?
            }
        };
        if !pct.in_range() {
            return Err(format!("features.{feature}.{gate}: outside 0..100"));
        }
        Ok(pct)
    }
}

/// The snapshot a toggle file holds. A refusal says where, never what: the parser's own
/// messages quote the file (an actor's email), and they reach logs and the admin page.
pub fn parse_toml(text: &str) -> Result<Snapshot, String> {
    let doc: FileDoc = toml::from_str(text).map_err(|e| match e.span() {
        Some(span) => format!(
            "does not parse as a toggle file at line {}",
            text[..span.start.min(text.len())].matches('\n').count() + 1
        ),
        None => "does not parse as a toggle file".to_owned(),
    })?;
    let mut features = super::Features::with_capacity_and_hasher(doc.features.len(), Default::default());
    for (name, f) in doc.features {
        for group in &f.groups {
            super::note_group(&name, group);
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

/// The snapshot as a toggle file, features in name order.
pub fn render_toml(snapshot: &Snapshot) -> String {
    fn pct(p: Percentage) -> toml::Value {
        match p {
            Percentage::Integer(i) => toml::Value::Integer(i),
            Percentage::Decimal(f) => toml::Value::Float(f),
        }
    }
    let strings =
        |set: &BTreeSet<String>| toml::Value::Array(set.iter().cloned().map(toml::Value::String).collect());
    let mut features = toml::Table::new();
    let mut names: Vec<&String> = snapshot.features.keys().collect();
    names.sort();
    for name in names {
        let f = &snapshot.features[name];
        let mut t = toml::Table::new();
        t.insert("boolean".into(), toml::Value::Boolean(f.boolean));
        if !f.actors.is_empty() {
            t.insert("actors".into(), strings(&f.actors));
        }
        if let Some(p) = f.percentage_of_actors {
            t.insert("percentage_of_actors".into(), pct(p));
        }
        if let Some(p) = f.percentage_of_time {
            t.insert("percentage_of_time".into(), pct(p));
        }
        if !f.groups.is_empty() {
            t.insert("groups".into(), strings(&f.groups));
        }
        features.insert(name.clone(), toml::Value::Table(t));
    }
    let mut doc = toml::Table::new();
    doc.insert("features".into(), toml::Value::Table(features));
    format!("# Written by avs-api's toggle admin; hand edits are picked up within 2 s.\n\n{doc}")
}

pub struct FileSource {
    pub path: PathBuf,
}

impl FileSource {
    /// The file's bytes, or the reason they can't be read.
    pub fn read(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.path).map_err(|e| format!("cannot read {}: {e}", self.path.display()))
    }

    pub fn parse(bytes: &[u8]) -> Result<Snapshot, String> {
        let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_owned())?;
        parse_toml(text)
    }

    /// Replaces the file atomically: write a sibling, then rename over it, so a reader (this
    /// process's watcher, or an editor) never sees half a file.
    pub fn write(&self, text: &str) -> Result<(), String> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("toggles.toml");
        let temp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&temp, text).map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
        std::fs::rename(&temp, &self.path).map_err(|e| format!("cannot replace {}: {e}", self.path.display()))
    }
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

    #[test]
    fn refusals_never_quote_the_file() {
        for text in [
            "[features.a]\nactors = [\"someone@example.com\" \"x\"]",
            "[features.a]\nboolean = \"someone@example.com\"",
            "[features.a]\npercentage_of_actors = \"someone@example.com\"",
            "[features.a]\nsomeone@example.com = 1",
        ] {
            let problem = parse_toml(text).unwrap_err();
            assert!(!problem.contains("someone"), "{problem}");
        }
        assert_eq!(
            parse_toml("[features.a]\nboolean = true\nactors = [1]").unwrap_err(),
            "does not parse as a toggle file at line 3"
        );
    }

    #[test]
    fn render_round_trips() {
        let s = parse_toml(
            "[features.a]\nboolean = false\nactors = [\"x\", \"y\"]\npercentage_of_actors = 2.007\n\
             [features.b]\npercentage_of_actors = 10\npercentage_of_time = 5\n[features.c]\n",
        )
        .unwrap();
        assert_eq!(parse_toml(&render_toml(&s)).unwrap(), s);
    }
}
