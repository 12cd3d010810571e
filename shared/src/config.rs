//! Typed configuration from environment variables. Every error names the variable, so a
//! misconfigured deployment says exactly what to fix on its first cold start.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {var} is required but not set")]
    Missing { var: String },
    #[error("environment variable {var} is malformed: {reason}")]
    Malformed { var: String, reason: String },
}

/// Where variables come from: the process environment in Lambda, a map in tests (so tests
/// never mutate global state).
pub struct Env {
    lookup: Lookup,
}

type Lookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

impl Env {
    pub fn from_process() -> Self {
        Env { lookup: Box::new(|name| std::env::var(name).ok()) }
    }

    pub fn from_map(map: HashMap<String, String>) -> Self {
        Env { lookup: Box::new(move |name| map.get(name).cloned()) }
    }

    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self::from_map(pairs.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect())
    }

    /// The raw value; an empty string counts as unset.
    pub fn get(&self, var: &str) -> Option<String> {
        (self.lookup)(var).filter(|v| !v.trim().is_empty())
    }

    pub fn required(&self, var: &str) -> Result<String, ConfigError> {
        self.get(var).ok_or_else(|| ConfigError::Missing { var: var.to_owned() })
    }

    pub fn parsed<T>(&self, var: &str) -> Result<Option<T>, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        self.get(var)
            .map(|raw| {
                raw.trim()
                    .parse::<T>()
                    .map_err(|e| ConfigError::Malformed { var: var.to_owned(), reason: format!("{e} (got {raw:?})") })
            })
            .transpose()
    }

    pub fn parsed_or<T>(&self, var: &str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        Ok(self.parsed(var)?.unwrap_or(default))
    }

    /// `true/false/1/0/yes/no`, case-insensitive.
    pub fn flag(&self, var: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(var).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes" | "on") => Ok(true),
            Some(v) if matches!(v.as_str(), "0" | "false" | "no" | "off") => Ok(false),
            Some(v) => Err(ConfigError::Malformed {
                var: var.to_owned(),
                reason: format!("expected true or false (got {v:?})"),
            }),
        }
    }

    /// Whole seconds, e.g. `300`.
    pub fn seconds_or(&self, var: &str, default: Duration) -> Result<Duration, ConfigError> {
        Ok(self.parsed::<u64>(var)?.map(Duration::from_secs).unwrap_or(default))
    }

    /// A comma-separated list; blanks are dropped.
    pub fn list(&self, var: &str) -> Vec<String> {
        self.get(var)
            .map(|raw| raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variable_is_named() {
        let env = Env::from_pairs([]);
        let err = env.required("QUEUE_URL").unwrap_err();
        assert_eq!(err.to_string(), "environment variable QUEUE_URL is required but not set");
    }

    #[test]
    fn blank_counts_as_missing() {
        let env = Env::from_pairs([("QUEUE_URL", "  ")]);
        assert!(matches!(env.required("QUEUE_URL"), Err(ConfigError::Missing { .. })));
    }

    #[test]
    fn malformed_number_names_variable_and_value() {
        let env = Env::from_pairs([("MAX_ATTEMPTS", "three")]);
        let err = env.parsed_or::<u32>("MAX_ATTEMPTS", 3).unwrap_err().to_string();
        assert!(err.contains("MAX_ATTEMPTS"), "{err}");
        assert!(err.contains("three"), "{err}");
    }

    #[test]
    fn flags_accept_common_spellings_and_reject_others() {
        let env = Env::from_pairs([("A", "Yes"), ("B", "0"), ("C", "maybe")]);
        assert!(env.flag("A", false).unwrap());
        assert!(!env.flag("B", true).unwrap());
        assert!(env.flag("C", false).is_err());
        assert!(env.flag("D", true).unwrap());
    }

    #[test]
    fn lists_drop_blanks() {
        let env = Env::from_pairs([("G", " Owners, ,Security ")]);
        assert_eq!(env.list("G"), vec!["Owners", "Security"]);
    }

    #[test]
    fn durations_are_whole_seconds() {
        let env = Env::from_pairs([("TTL", "90")]);
        assert_eq!(env.seconds_or("TTL", Duration::ZERO).unwrap(), Duration::from_secs(90));
        assert!(Env::from_pairs([("TTL", "1.5")]).seconds_or("TTL", Duration::ZERO).is_err());
    }
}
