//! The primitives every section's `parse` reads its settings with. Each value comes from the
//! environment (or the `--config` file under it), else from the settings table's default, and
//! every problem is collected rather than stopping at the first: an operator fixes them all in
//! one pass.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use url::Url;

use super::Vars;
use super::settings;

pub(crate) struct Parser<'a> {
    vars: &'a Vars,
    pub(super) problems: Vec<String>,
    /// Every name read, so a test can hold the parser to the settings table.
    pub(super) read: RefCell<BTreeSet<&'static str>>,
}

impl<'a> Parser<'a> {
    pub(super) fn new(vars: &'a Vars) -> Parser<'a> {
        Parser {
            vars,
            problems: Vec::new(),
            read: RefCell::default(),
        }
    }

    /// The values as given, for `check-config`.
    pub(super) fn vars(&self) -> &'a Vars {
        self.vars
    }

    /// The value given for `name`, else its default from the settings table.
    pub(super) fn raw(&self, name: &str) -> Option<&'a str> {
        let Some(setting) = settings::setting(name) else {
            debug_assert!(false, "{name} is not in the settings table");
            return None;
        };
        self.read.borrow_mut().insert(setting.name);
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
            .or(setting.default)
    }

    /// Whether `name` was given (not its default); counts as read.
    pub(super) fn given(&self, name: &str) -> bool {
        let Some(setting) = settings::setting(name) else {
            debug_assert!(false, "{name} is not in the settings table");
            return false;
        };
        self.read.borrow_mut().insert(setting.name);
        self.vars.get(name).is_some_and(|v| !v.is_empty())
    }

    pub(super) fn problem(&mut self, name: &str, what: impl std::fmt::Display) {
        self.problems.push(format!("{name}: {what}"));
    }

    /// The setting parsed (its table default when unset); `None` when it has no value, or
    /// a bad one, which is then a problem.
    pub(super) fn parsed<T: std::str::FromStr>(&mut self, name: &str, what: &str) -> Option<T> {
        let raw = self.raw(name)?;
        let value = raw.parse().ok();
        if value.is_none() {
            self.problem(name, format!("{raw:?} is not {what}"));
        }
        value
    }

    /// A whole number of at least 1.
    pub(super) fn count(&mut self, name: &str) -> usize {
        let n: usize = self.parsed(name, "a whole number").unwrap_or(1);
        if n == 0 {
            self.problem(name, "must be above 0");
        }
        n.max(1)
    }

    /// A whole number of bytes (0 allowed).
    pub(super) fn bytes(&mut self, name: &str) -> u64 {
        self.parsed(name, "a whole number of bytes").unwrap_or_default()
    }

    pub(super) fn millis(&mut self, name: &str) -> Duration {
        let ms: u64 = self.parsed(name, "a whole number of milliseconds").unwrap_or(1);
        if ms == 0 {
            self.problem(name, "must be above 0");
        }
        Duration::from_millis(ms)
    }

    pub(super) fn secs(&mut self, name: &str) -> Duration {
        Duration::from_secs(self.parsed(name, "a whole number of seconds").unwrap_or(1))
    }

    /// Seconds, of at least one.
    pub(super) fn positive_secs(&mut self, name: &str) -> Duration {
        let secs = self.secs(name);
        if secs.is_zero() {
            self.problem(name, "must be above 0");
        }
        secs
    }

    pub(super) fn address(&mut self, name: &str) -> SocketAddr {
        self.parsed(name, "a socket address")
            .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    pub(super) fn flag(&mut self, name: &str) -> bool {
        match self.raw(name) {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                self.problem(name, format!("{other:?} is not true or false"));
                false
            }
        }
    }

    /// A path that must name a file, when given.
    pub(super) fn readable_file(&mut self, name: &str) -> Option<std::path::PathBuf> {
        let path = std::path::PathBuf::from(self.raw(name)?);
        if !path.is_file() {
            self.problem(name, format!("{} is not a readable file", path.display()));
        }
        Some(path)
    }

    /// An http(s) URL with a host; in production it must be https.
    pub(super) fn http_url(&mut self, name: &str, raw: &str, production: bool) -> Option<Url> {
        match Url::parse(raw) {
            Ok(url) if production && url.scheme() != "https" => {
                self.problem(name, "must be an https:// URL in production");
                None
            }
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Some(url),
            _ => {
                self.problem(name, format!("{raw:?} is not an http(s) URL"));
                None
            }
        }
    }

    /// A secret given inline (`name`) or in a file (`file_name`), not both.
    pub(super) fn secret(&mut self, name: &str, file_name: &str) -> Option<String> {
        match (self.raw(name), self.raw(file_name)) {
            (Some(_), Some(_)) => {
                self.problem(file_name, format!("set this or {name}, not both"));
                None
            }
            (Some(secret), None) => Some(secret.to_owned()),
            (None, Some(path)) => match std::fs::read_to_string(path) {
                Ok(text) => Some(text.trim().to_owned()),
                Err(e) => {
                    self.problem(file_name, format!("cannot read {path}: {e}"));
                    None
                }
            },
            (None, None) => None,
        }
    }
}
