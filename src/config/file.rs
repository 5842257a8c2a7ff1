//! The `--config` TOML: a flat table keyed by variable names without `AVS_`, in lowercase,
//! layered under the environment.

use std::path::Path;

use super::{Vars, is_known};

pub(super) fn read_file_layer(path: &Path) -> Result<Vars, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("--config {}: {e}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).map_err(|e| format!("--config {}: {}", path.display(), e.message()))?;
    let mut vars = Vars::new();
    for (key, value) in table {
        let name = match key.as_str() {
            "rust_log" => "RUST_LOG".to_owned(),
            k if k.starts_with("otel_") => k.to_uppercase(),
            k => format!("AVS_{}", k.to_uppercase()),
        };
        if !is_known(&name) {
            return Err(format!("--config {}: unknown key `{key}`", path.display()));
        }
        let value = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => value.to_string(),
            _ => {
                return Err(format!(
                    "--config {}: `{key}` must be a string or a number",
                    path.display()
                ));
            }
        };
        vars.insert(name, value);
    }
    Ok(vars)
}
