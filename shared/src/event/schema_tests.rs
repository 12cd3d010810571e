//! The JSON Schema and the Rust type describe the same wire format: every valid fixture is
//! accepted by both, every invalid one rejected by both, and what Rust writes validates.

use super::LifecycleEvent;
use std::path::{Path, PathBuf};

fn schema() -> jsonschema::Validator {
    let text = include_str!("../../schemas/lifecycle-event.v1.json");
    let schema: serde_json::Value = serde_json::from_str(text).expect("schema is JSON");
    jsonschema::options().should_validate_formats(true).build(&schema).expect("schema compiles")
}

fn fixtures(dir: &str) -> Vec<(PathBuf, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures").join(dir);
    let mut found: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let value = serde_json::from_str(&std::fs::read_to_string(&path).expect("readable"))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, value)
        })
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert!(!found.is_empty(), "no fixtures in {}", dir.display());
    found
}

#[test]
fn every_event_fixture_validates_and_parses() {
    let validator = schema();
    for (path, value) in fixtures("events") {
        let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", path.display());
        let event: LifecycleEvent = serde_json::from_value(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let written = serde_json::to_value(&event).expect("serializes");
        assert!(validator.is_valid(&written), "{}: re-serialized form invalid", path.display());
    }
}

#[test]
fn every_invalid_fixture_is_rejected_by_schema_and_type() {
    let validator = schema();
    for (path, value) in fixtures("events-invalid") {
        assert!(!validator.is_valid(&value), "{}: schema accepted it", path.display());
        assert!(serde_json::from_value::<LifecycleEvent>(value).is_err(), "{}: serde accepted it", path.display());
    }
}
