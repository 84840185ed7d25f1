//! The layers a run config is merged from, and where each value came from.
//!
//! A run config is a TOML file, then `LACONIC__SECTION__KEY=value` environment variables, then
//! `--set section.key=value` pairs, later wins. They are merged here as TOML tables, with no coercion:
//! a value keeps the type it was written with (`8.5` stays a float, `"yes"` a string), so serde rejects
//! a float where an integer belongs or a string where a bool belongs, and the error can name the layer
//! that wrote the value ([`Layered::origin`]).
//!
//! Keys are dotted paths of plain names (letters, digits, `_`, `-`): `rollout[0]`, `..steps` or an empty
//! key are errors, and a key can neither replace a table with a value nor reach into a value.

use std::fmt;
use std::path::Path;

use toml::{Table, Value};

/// The prefix of configuration environment variables (`LACONIC__ROLLOUT__N=16`).
pub const ENV_PREFIX: &str = "LACONIC__";

/// Where a value of a run config was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layer {
    /// The environment variable of that name.
    Env(String),
    /// A `--set` argument, as given.
    Set(String),
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Layer::Env(var) => write!(f, "from the environment variable `{var}`"),
            Layer::Set(arg) => write!(f, "from `--set {}`", excerpt(arg)),
        }
    }
}

/// A config table and the override layer behind each key that an override wrote (keys absent here
/// come from the file).
#[derive(Debug, Clone, Default)]
pub struct Layered {
    /// The merged table.
    pub table: Table,
    overrides: Vec<(Vec<String>, Layer)>,
}

impl Layered {
    /// A table with no overrides yet.
    pub fn new(table: Table) -> Self {
        Self {
            table,
            overrides: Vec::new(),
        }
    }

    /// The file's table.
    ///
    /// # Errors
    /// Unreadable or malformed TOML, as a message.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read it: {e}"))?;
        let table: Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        Ok(Self::new(table))
    }

    /// Applies every `LACONIC__…` variable of `vars`, in name order (the environment has no order of
    /// its own).
    ///
    /// # Errors
    /// A variable whose name is not a dotted key, or whose key clashes with the table's shape.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(), String> {
        let mut vars: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(name, _)| name.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (name, value) in vars {
            let key = name[ENV_PREFIX.len()..]
                .split("__")
                .map(str::to_lowercase)
                .collect::<Vec<_>>()
                .join(".");
            let layer = Layer::Env(name.clone());
            let path =
                parse_key(&key).map_err(|e| format!("environment variable `{name}`: {e}"))?;
            let value = override_value(value.trim())
                .map_err(|e| format!("environment variable `{name}`: {e}"))?;
            self.apply(path, value, layer)?;
        }
        Ok(())
    }

    /// Applies one `--set key=value` argument.
    ///
    /// # Errors
    /// An argument without `=`, a key that is not dotted plain names, or one that clashes with the
    /// table's shape; a value that is not one value ([`override_value`]).
    pub fn apply_set(&mut self, arg: &str) -> Result<(), String> {
        let shown = excerpt(arg);
        let Some((key, value)) = arg.split_once('=') else {
            return Err(format!(
                "`--set {shown}` is not of the form `section.key=value`"
            ));
        };
        let path = parse_key(key.trim()).map_err(|e| format!("`--set {shown}`: {e}"))?;
        let value = override_value(value.trim()).map_err(|e| format!("`--set {shown}`: {e}"))?;
        self.apply(path, value, Layer::Set(arg.to_string()))
    }

    /// The latest override layer that wrote the value at dotted `key`, a table above it or a value
    /// inside it; `None` when only the file did.
    pub fn origin(&self, key: &str) -> Option<&Layer> {
        if key.is_empty() {
            return None;
        }
        let path: Vec<&str> = key.split('.').collect();
        self.overrides
            .iter()
            .rev()
            .find(|(written, _)| written.iter().zip(&path).all(|(a, b)| a == b))
            .map(|(_, layer)| layer)
    }

    /// Removes the key `section.key` (written by the file) and returns whether it was there.
    pub fn remove(&mut self, section: &str, key: &str) -> bool {
        self.table
            .get_mut(section)
            .and_then(Value::as_table_mut)
            .is_some_and(|t| t.remove(key).is_some())
    }

    fn apply(&mut self, path: Vec<String>, value: Value, layer: Layer) -> Result<(), String> {
        let (last, parents) = path
            .split_last()
            .expect("parse_key returns a non-empty path");
        let mut table = &mut self.table;
        for (depth, name) in parents.iter().enumerate() {
            let entry = table
                .entry(name.clone())
                .or_insert_with(|| Value::Table(Table::new()));
            table = entry.as_table_mut().ok_or_else(|| {
                format!(
                    "{layer}: `{}` is a value, not a table",
                    path[..=depth].join(".")
                )
            })?;
        }
        match (table.get_mut(last), value) {
            (Some(Value::Table(existing)), Value::Table(new)) => merge(existing, new),
            (Some(Value::Table(_)), _) => {
                return Err(format!(
                    "{layer}: `{}` is a table; set one of its keys (`{}.KEY=value`)",
                    path.join("."),
                    path.join(".")
                ))
            }
            (_, value) => {
                table.insert(last.clone(), value);
            }
        }
        self.overrides.push((path, layer));
        Ok(())
    }
}

/// Deep-merges `new` into `existing` (tables merge, values replace).
fn merge(existing: &mut Table, new: Table) {
    for (key, value) in new {
        match (existing.get_mut(&key), value) {
            (Some(Value::Table(a)), Value::Table(b)) => merge(a, b),
            (_, value) => {
                existing.insert(key, value);
            }
        }
    }
}

/// The most characters of a value an error message echoes.
pub const ECHO_LIMIT: usize = 80;

/// `text` as an error message echoes it: whole up to [`ECHO_LIMIT`] characters, else its first
/// [`ECHO_LIMIT`] characters and `…` (a 10 MB value is not printed back).
pub fn excerpt(text: &str) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(ECHO_LIMIT) {
        None => text.into(),
        Some((end, _)) => format!("{}…", &text[..end]).into(),
    }
}

/// A dotted key as its parts.
///
/// # Errors
/// An empty key, an empty part (`..steps`, `train.`), or a part with characters other than letters,
/// digits, `_` and `-` (`rollout[0]`).
pub fn parse_key(key: &str) -> Result<Vec<String>, String> {
    if key.is_empty() {
        return Err("the key is empty; write `section.key=value`, e.g. `train.steps=10`".into());
    }
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!(
            "`{key}` has an empty part; write dotted names, e.g. `train.steps`"
        ));
    }
    if let Some(bad) = parts.iter().find(|p| {
        !p.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(format!(
            "`{key}` is not a dotted key: `{bad}` may hold only letters, digits, `_` and `-` (no indices into tables or arrays)"
        ));
    }
    Ok(parts.into_iter().map(str::to_string).collect())
}

/// A `--set` or environment value as a TOML literal (`0.2`, `true`, `[1, 2]`, `"text"`, `{a = 1}`),
/// or the raw text as a string when it is not one (`kimi`).
///
/// # Errors
/// A value holding a line break (`1\nbogus = 2` would set a second key, silently dropped), or an
/// integer beyond TOML's 64-bit signed range (it would otherwise become a string and be reported as
/// the wrong type).
pub fn override_value(text: &str) -> Result<Value, String> {
    if text.contains(['\n', '\r']) {
        return Err(
            "the value holds a line break; give one `section.key=value` per `--set` (a string \
             value may write `\\n`)"
                .into(),
        );
    }
    match format!("v = {text}").parse::<Table>() {
        Ok(mut table) if table.len() == 1 => {
            Ok(table.remove("v").expect("the key was just parsed"))
        }
        Ok(_) => {
            Err("the value sets more than one key; give one `section.key=value` per `--set`".into())
        }
        Err(_) if is_integer(text) => Err(format!(
            "`{}` is out of range: a config integer lies in {}..={}",
            excerpt(text),
            i64::MIN,
            i64::MAX
        )),
        Err(_) => Ok(Value::String(text.to_string())),
    }
}

/// Whether `text` is written as a decimal integer (`-12`, `1_000`), whatever its size.
fn is_integer(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// `message` with every value it quotes in backticks cut to [`ECHO_LIMIT`] characters
/// ([`excerpt`]): a config error never prints back a megabyte-long value.
pub fn cap_quoted(message: &str) -> String {
    message
        .split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                excerpt(part)
            } else {
                part.into()
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layered(text: &str) -> Layered {
        Layered::new(text.parse().unwrap())
    }

    #[test]
    fn values_keep_their_type_and_remember_their_layer() {
        let mut l = layered("[rollout]\nn = 8\ntop_p = 1.0\n[train]\nsteps = 4");
        l.apply_set("rollout.n=8.5").unwrap();
        l.apply_set("train.track_kl=yes").unwrap();
        l.apply_env([
            ("LACONIC__ROLLOUT__TOP_P".to_string(), "0.9".to_string()),
            ("OTHER".to_string(), "1".to_string()),
        ])
        .unwrap();
        assert_eq!(l.table["rollout"]["n"], Value::Float(8.5));
        assert_eq!(l.table["train"]["track_kl"], Value::String("yes".into()));
        assert_eq!(l.table["rollout"]["top_p"], Value::Float(0.9));
        assert_eq!(l.table["train"]["steps"], Value::Integer(4));
        assert_eq!(
            l.origin("rollout.n"),
            Some(&Layer::Set("rollout.n=8.5".into()))
        );
        assert_eq!(
            l.origin("rollout.top_p"),
            Some(&Layer::Env("LACONIC__ROLLOUT__TOP_P".into()))
        );
        assert_eq!(l.origin("train.steps"), None);
    }

    #[test]
    fn malformed_keys_are_errors_that_say_what_to_write() {
        let mut l = layered("[rollout]\nn = 8");
        for (arg, says) in [
            ("=3", "the key is empty"),
            ("..steps=2", "`..steps` has an empty part"),
            ("train.=2", "`train.` has an empty part"),
            ("rollout[0]=3", "`rollout[0]` is not a dotted key"),
            ("rollout=3", "`rollout` is a table; set one of its keys"),
            ("rollout.n.x=3", "`rollout.n` is a value, not a table"),
            ("steps", "is not of the form `section.key=value`"),
        ] {
            let err = l.apply_set(arg).unwrap_err();
            assert!(err.contains(says), "{arg}: {err}");
        }
        // Nothing was half-applied: the table is as it was.
        assert_eq!(l.table, "[rollout]\nn = 8".parse::<Table>().unwrap());
        let err = l
            .apply_env([("LACONIC__ROLLOUT____N".to_string(), "1".to_string())])
            .unwrap_err();
        assert!(err.contains("`LACONIC__ROLLOUT____N`"), "{err}");
    }

    /// Issue 32: `--set $'train.steps=1\nbogus = 2'` set `train.steps` and silently dropped `bogus`;
    /// `train.steps=18446744073709551615` became a string, reported as "invalid type: string".
    #[test]
    fn a_set_value_is_one_value_in_range() {
        let mut l = layered("[train]\nsteps = 4");
        let err = l.apply_set("train.steps=1\nbogus = 2").unwrap_err();
        assert!(err.contains("line break"), "{err}");
        let err = l
            .apply_env([(
                "LACONIC__TRAIN__STEPS".to_string(),
                "1\r\nx = 1".to_string(),
            )])
            .unwrap_err();
        assert!(
            err.contains("`LACONIC__TRAIN__STEPS`") && err.contains("line break"),
            "{err}"
        );
        let err = l.apply_set("train.steps=18446744073709551615").unwrap_err();
        assert!(
            err.contains("`18446744073709551615` is out of range")
                && err.contains("`--set train.steps=18446744073709551615`"),
            "{err}"
        );
        assert!(l.apply_set("train.steps=-99999999999999999999").is_err());
        assert_eq!(
            l.table["train"]["steps"],
            Value::Integer(4),
            "nothing applied"
        );
        l.apply_set("train.steps=9_223_372_036_854_775_807")
            .unwrap();
        assert_eq!(l.table["train"]["steps"], Value::Integer(i64::MAX));
        l.apply_set("train.name=\"a\\nb\"").unwrap();
        assert_eq!(l.table["train"]["name"], Value::String("a\nb".into()));
        l.apply_set("train.tag=12abc").unwrap();
        assert_eq!(l.table["train"]["tag"], Value::String("12abc".into()));
    }

    /// Issue 32: an unknown value is echoed cut short, not a 10 MB value back to stderr.
    #[test]
    fn echoed_values_are_cut_short() {
        let long = "x".repeat(10_000_000);
        let shown = excerpt(&long);
        assert_eq!(shown.chars().count(), ECHO_LIMIT + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(excerpt("kimi"), "kimi");
        let message = format!("`reward.kind`: unknown reward `{long}`, expected one of `kimi`");
        let capped = cap_quoted(&message);
        assert!(capped.len() < 400, "{} bytes", capped.len());
        assert!(
            capped.starts_with("`reward.kind`: unknown reward `xxx") && capped.ends_with("`kimi`")
        );
        let layer = Layer::Set(format!("reward.kind={long}")).to_string();
        assert!(layer.len() < 400, "{} bytes", layer.len());
    }

    #[test]
    fn inline_tables_merge_into_sections() {
        let mut l = layered("[rollout]\nn = 8\ntop_p = 1.0");
        l.apply_set("rollout={n = 3}").unwrap();
        assert_eq!(l.table["rollout"]["n"], Value::Integer(3));
        assert_eq!(l.table["rollout"]["top_p"], Value::Float(1.0));
        assert!(l.origin("rollout.n").is_some());
        assert!(l.origin("rollout.top_p").is_some(), "the table was written");
    }
}
