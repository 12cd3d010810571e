//! Attribute → group rules. An admin writes them as JSON (the `MAPPING_RULES` variable, a
//! template parameter, so a change is a `sam deploy` and no rebuild):
//!
//! ```json
//! {
//!   "default_groups": ["Employees"],
//!   "rules": [
//!     { "name": "engineering", "when": { "department": ["Engineering", "R&D"] }, "groups": ["Engineering"] },
//!     { "name": "contractors", "when": { "employment_type": ["Contractor"] }, "groups": ["Contractors"] }
//!   ]
//! }
//! ```
//!
//! A rule matches when every attribute in `when` equals one of its listed values (compared
//! case-insensitively, surrounding spaces ignored). The groups the rules and defaults name
//! are the *managed* groups: the worker adds and removes only those, never a group a human
//! added that no rule covers.

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

use crate::event::Attributes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Attribute {
    Department,
    Title,
    Location,
    Manager,
    EmploymentStatus,
    EmploymentType,
}

impl Attribute {
    fn value_in(self, attributes: &Attributes) -> Option<&str> {
        match self {
            Attribute::Department => attributes.department.as_deref(),
            Attribute::Title => attributes.title.as_deref(),
            Attribute::Location => attributes.location.as_deref(),
            Attribute::Manager => attributes.manager.as_deref(),
            Attribute::EmploymentStatus => attributes.employment_status.as_deref(),
            Attribute::EmploymentType => attributes.employment_type.as_deref(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub when: BTreeMap<Attribute, Vec<String>>,
    pub groups: Vec<String>,
}

/// Who gets 1Password at all. Empty `include` means everyone; a person matching any
/// `exclude` condition is out (a condition matches as a rule's `when` does: every attribute
/// equals one of its values; an attribute the source did not give matches nothing).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    #[serde(default)]
    pub include: Vec<BTreeMap<Attribute, Vec<String>>>,
    #[serde(default)]
    pub exclude: Vec<BTreeMap<Attribute, Vec<String>>>,
    /// What happens to someone with an account who is, or falls, out of scope.
    #[serde(default)]
    pub when_out_of_scope: OutOfScope,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutOfScope {
    /// Treated like a leaver: the account is suspended (with the mass-leaver brake).
    #[default]
    Suspend,
    /// The account is left alone; a warning and the `out_of_scope_with_account` metric say so.
    Report,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingRules {
    #[serde(default)]
    pub default_groups: Vec<String>,
    #[serde(default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub scope: Scope,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MappingError {
    #[error("mapping rules are not valid JSON for the documented shape: {0}")]
    Parse(String),
    #[error("mapping rule #{index} has no name")]
    UnnamedRule { index: usize },
    #[error("mapping rule {name:?} is defined twice")]
    DuplicateRule { name: String },
    #[error("mapping rule {name:?} has an empty `when`: it would match everyone (use default_groups)")]
    EmptyCondition { name: String },
    #[error("mapping rule {name:?} lists no values for {attribute}")]
    NoValues { name: String, attribute: String },
    #[error("mapping rule {name:?} names no groups")]
    NoGroups { name: String },
    #[error("mapping rule {name:?} names a blank group")]
    BlankGroup { name: String },
    #[error("scope condition #{index} of `{list}` is empty or lists no values for an attribute")]
    EmptyScopeCondition { list: &'static str, index: usize },
}

impl MappingRules {
    /// Parses and validates; every error names the rule at fault.
    pub fn from_json(text: &str) -> Result<Self, MappingError> {
        let rules: MappingRules = serde_json::from_str(text).map_err(|e| MappingError::Parse(e.to_string()))?;
        rules.validate()?;
        Ok(rules)
    }

    pub fn validate(&self) -> Result<(), MappingError> {
        let mut seen = BTreeSet::new();
        if self.default_groups.iter().any(|g| g.trim().is_empty()) {
            return Err(MappingError::BlankGroup { name: "default_groups".into() });
        }
        for (index, rule) in self.rules.iter().enumerate() {
            let name = rule.name.trim();
            if name.is_empty() {
                return Err(MappingError::UnnamedRule { index });
            }
            if !seen.insert(name.to_owned()) {
                return Err(MappingError::DuplicateRule { name: name.to_owned() });
            }
            if rule.when.is_empty() {
                return Err(MappingError::EmptyCondition { name: name.to_owned() });
            }
            if let Some((attribute, _)) = rule.when.iter().find(|(_, values)| values.is_empty()) {
                return Err(MappingError::NoValues { name: name.to_owned(), attribute: format!("{attribute:?}") });
            }
            if rule.groups.is_empty() {
                return Err(MappingError::NoGroups { name: name.to_owned() });
            }
            if rule.groups.iter().any(|g| g.trim().is_empty()) {
                return Err(MappingError::BlankGroup { name: name.to_owned() });
            }
        }
        for (list, conditions) in [("include", &self.scope.include), ("exclude", &self.scope.exclude)] {
            if let Some(index) = conditions.iter().position(|c| c.is_empty() || c.values().any(Vec::is_empty)) {
                return Err(MappingError::EmptyScopeCondition { list, index });
            }
        }
        Ok(())
    }

    /// True when the scope lets this person have 1Password.
    pub fn in_scope(&self, attributes: &Attributes) -> bool {
        let included = self.scope.include.is_empty() || self.scope.include.iter().any(|c| matches(c, attributes));
        included && !self.scope.exclude.iter().any(|c| matches(c, attributes))
    }

    /// Every group the rules may add or remove.
    pub fn managed_groups(&self) -> BTreeSet<String> {
        self.default_groups
            .iter()
            .chain(self.rules.iter().flat_map(|rule| rule.groups.iter()))
            .map(|g| g.trim().to_owned())
            .collect()
    }

    /// True when every attribute some rule looks at is known: only then can the worker
    /// tell that a person no longer belongs in a group.
    pub fn can_decide(&self, attributes: &Attributes) -> bool {
        self.rules.iter().flat_map(|rule| rule.when.keys()).all(|attribute| attribute.value_in(attributes).is_some())
    }

    /// The groups this person should be in.
    pub fn desired_groups(&self, attributes: &Attributes) -> BTreeSet<String> {
        let matching = self.rules.iter().filter(|rule| matches(&rule.when, attributes));
        self.default_groups
            .iter()
            .chain(matching.flat_map(|rule| rule.groups.iter()))
            .map(|g| g.trim().to_owned())
            .collect()
    }
}

/// Every attribute of `condition` equals one of its listed values.
fn matches(condition: &BTreeMap<Attribute, Vec<String>>, attributes: &Attributes) -> bool {
    condition.iter().all(|(attribute, accepted)| {
        attribute
            .value_in(attributes)
            .is_some_and(|actual| accepted.iter().any(|value| value.trim().eq_ignore_ascii_case(actual.trim())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = r#"{
        "default_groups": ["Employees"],
        "rules": [
            {"name": "engineering", "when": {"department": ["Engineering", "R&D"]}, "groups": ["Engineering"]},
            {"name": "london-eng", "when": {"department": ["Engineering"], "location": ["London"]}, "groups": ["London Engineers"]},
            {"name": "contractors", "when": {"employment_type": ["Contractor"]}, "groups": ["Contractors"]}
        ]}"#;

    fn attrs(department: &str, location: &str, employment_type: &str) -> Attributes {
        Attributes {
            department: Some(department.into()),
            location: Some(location.into()),
            employment_type: Some(employment_type.into()),
            ..Default::default()
        }
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn desired_groups_table() {
        let rules = MappingRules::from_json(RULES).unwrap();
        let cases = [
            (attrs("Engineering", "Paris", "Full-Time"), set(&["Employees", "Engineering"])),
            (attrs(" engineering ", "london", "Full-Time"), set(&["Employees", "Engineering", "London Engineers"])),
            (attrs("R&D", "London", "Contractor"), set(&["Employees", "Engineering", "Contractors"])),
            (attrs("Finance", "London", "Full-Time"), set(&["Employees"])),
            (Attributes::default(), set(&["Employees"])),
        ];
        for (attributes, expected) in cases {
            assert_eq!(rules.desired_groups(&attributes), expected, "{attributes:?}");
        }
    }

    #[test]
    fn decisions_need_every_attribute_a_rule_reads() {
        let rules = MappingRules::from_json(RULES).unwrap();
        assert!(rules.can_decide(&attrs("Finance", "Paris", "Full-Time")));
        let no_location = Attributes { location: None, ..attrs("Finance", "Paris", "Full-Time") };
        assert!(!rules.can_decide(&no_location));
        assert!(MappingRules::default().can_decide(&Attributes::default()));
    }

    #[test]
    fn managed_groups_are_every_group_named() {
        let rules = MappingRules::from_json(RULES).unwrap();
        assert_eq!(rules.managed_groups(), set(&["Contractors", "Employees", "Engineering", "London Engineers"]));
    }

    #[test]
    fn validation_errors_name_the_rule() {
        let cases = [
            (
                r#"{"rules":[{"name":"a","when":{"department":["x"]},"groups":["G"]},{"name":"a","when":{"title":["y"]},"groups":["H"]}]}"#,
                MappingError::DuplicateRule { name: "a".into() },
            ),
            (r#"{"rules":[{"name":"b","when":{},"groups":["G"]}]}"#, MappingError::EmptyCondition { name: "b".into() }),
            (
                r#"{"rules":[{"name":"c","when":{"title":[]},"groups":["G"]}]}"#,
                MappingError::NoValues { name: "c".into(), attribute: "Title".into() },
            ),
            (
                r#"{"rules":[{"name":"d","when":{"title":["x"]},"groups":[]}]}"#,
                MappingError::NoGroups { name: "d".into() },
            ),
            (
                r#"{"rules":[{"name":" ","when":{"title":["x"]},"groups":["G"]}]}"#,
                MappingError::UnnamedRule { index: 0 },
            ),
            (
                r#"{"rules":[{"name":"e","when":{"title":["x"]},"groups":[" "]}]}"#,
                MappingError::BlankGroup { name: "e".into() },
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(MappingRules::from_json(json).unwrap_err(), expected, "{json}");
        }
    }

    #[test]
    fn unknown_attribute_is_a_parse_error_naming_it() {
        let err = MappingRules::from_json(r#"{"rules":[{"name":"x","when":{"shoe_size":["9"]},"groups":["G"]}]}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("shoe_size"), "{err}");
    }

    #[test]
    fn scope_includes_and_excludes() {
        let rules = MappingRules::from_json(
            r#"{"scope": {"include": [{"department": ["Engineering", "Finance"]}],
                          "exclude": [{"employment_type": ["Contractor"]}],
                          "when_out_of_scope": "report"}}"#,
        )
        .unwrap();
        assert_eq!(rules.scope.when_out_of_scope, OutOfScope::Report);
        let cases = [
            (attrs("Engineering", "Paris", "Full-Time"), true),
            (attrs("finance ", "Paris", "Full-Time"), true),
            (attrs("Engineering", "Paris", "Contractor"), false),
            (attrs("Sales", "Paris", "Full-Time"), false),
            (Attributes::default(), false),
        ];
        for (attributes, expected) in cases {
            assert_eq!(rules.in_scope(&attributes), expected, "{attributes:?}");
        }
        assert!(MappingRules::default().in_scope(&Attributes::default()), "no scope: everyone is in");
        let error = MappingRules::from_json(r#"{"scope": {"exclude": [{}]}}"#).unwrap_err();
        assert_eq!(error, MappingError::EmptyScopeCondition { list: "exclude", index: 0 });
    }
}
