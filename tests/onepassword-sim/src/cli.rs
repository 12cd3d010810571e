//! Command line and environment for the `op-sim` binary. Every switch is a `--flag VALUE`
//! (or `--flag=VALUE`) and an `OP_SIM_FLAG` environment variable; the flag wins.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::config::{
    ConflictMode, CreateStatus, DuplicateGroupName, FilterMode, GroupMembers, ProtectedGroupError, SimConfig,
    SuspendedEmailChange, UserGroups,
};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CliError {
    #[error("unknown option {0} (see --help)")]
    UnknownOption(String),
    #[error("option --{0} needs a value")]
    MissingValue(String),
    #[error("invalid value {value:?} for --{option}: {reason}")]
    InvalidValue { option: String, value: String, reason: String },
}

#[derive(Debug, Clone)]
pub enum Command {
    Run { addr: SocketAddr, config: SimConfig },
    Help,
}

/// (flag, value hint, description). The environment variable is `OP_SIM_` + the flag in
/// upper case with `-` → `_`.
pub const OPTIONS: &[(&str, &str, &str)] = &[
    ("addr", "IP:PORT", "address to listen on; port 0 picks a free port [127.0.0.1:8080]"),
    ("scim-token", "TOKEN", "SCIM bearer token [sim-scim-token]"),
    ("events-token", "TOKEN|none", "Events API bearer token; none turns the Events API off [sim-events-token]"),
    ("control-api", "BOOL", "serve the /_sim/ control API [true]"),
    ("create-status", "200|201", "status of a successful POST [200]"),
    ("conflict", "409|link-existing", "POST /Users with a taken userName [409]"),
    ("suspended-email-change", "record|reject", "e-mail change of a suspended user [record]"),
    ("protected-group-error", "403|400", "status when a protected group is changed [403]"),
    ("protected-groups", "A,B", "more protected group names (comma-separated)"),
    ("invite-ttl", "DURATION", "invitation lifetime, e.g. 5d, 36h, 90m, 30s [5d]"),
    ("reactivate-resends-invite", "BOOL", "active=false then true re-sends a pending invitation [true]"),
    (
        "filters",
        "supported|ignored|rejected",
        "filter on GET /Users and /Groups: evaluated, ignored (unfiltered page), 400 invalidFilter [supported]",
    ),
    ("store-external-id", "BOOL", "keep and return externalId [true]"),
    (
        "duplicate-group-name",
        "409|allow|return-existing",
        "POST /Groups with a name in use: 409 uniqueness, a second group, or the existing group [return-existing]",
    ),
    (
        "group-members",
        "always|never|only-by-id",
        "members in group responses: always, never, only GET /Groups/{id}; true/false = always/never [always]",
    ),
    (
        "user-groups",
        "off|ref|dollar-ref",
        "users' groups: absent, {value, ref}, or {value, display} (+$ref with --meta-location) [dollar-ref]",
    ),
    ("display-name-rewrites-name", "BOOL", "displayName changes re-split given/family name [true]"),
    ("observed-discovery-quirks", "BOOL", "ResourceTypes as recorded (/scim/v2/User, startIndex 0) [true]"),
    ("meta-location", "BOOL", "add meta.location and $ref (absent in recorded traffic) [false]"),
    ("put-supported", "BOOL", "accept PUT on users and groups [true]"),
    ("confirmation-delay", "DURATION", "acceptance to confirmed account, e.g. 300s [0s]"),
    ("default-page-size", "N|none", "page size without count [none = everything]"),
    ("max-results", "N", "largest page (filter.maxResults) [10000]"),
    ("clock-start", "RFC3339", "freeze the clock at this time (moves only when advanced)"),
    ("op-log-capacity", "N", "operations log entries kept [100000]"),
];

pub fn usage() -> String {
    let mut text = String::from(
        "op-sim: 1Password SCIM bridge + Events API simulator\n\nUSAGE: op-sim [--flag VALUE]...\n\nOPTIONS (env OP_SIM_<FLAG>):\n",
    );
    for (flag, hint, help) in OPTIONS {
        text.push_str(&format!("  --{flag} {hint}\n      {help}\n"));
    }
    text.push_str("  --help\n");
    text
}

fn env_name(flag: &str) -> String {
    format!("OP_SIM_{}", flag.to_ascii_uppercase().replace('-', "_"))
}

/// Parses arguments (without the program name) and the environment.
pub fn parse(args: &[String], env: &HashMap<String, String>) -> Result<Command, CliError> {
    let mut given: HashMap<&str, String> = HashMap::new();
    let mut iter = args.iter();
    while let Some(arg) = iter.next() {
        if arg == "--help" || arg == "-h" {
            return Ok(Command::Help);
        }
        let Some(flag) = arg.strip_prefix("--") else {
            return Err(CliError::UnknownOption(arg.clone()));
        };
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        let Some((known, _, _)) = OPTIONS.iter().find(|(f, _, _)| *f == name) else {
            return Err(CliError::UnknownOption(arg.clone()));
        };
        let value = match inline {
            Some(v) => v,
            None => iter.next().cloned().ok_or_else(|| CliError::MissingValue(name.to_owned()))?,
        };
        given.insert(known, value);
    }
    let value = |flag: &str| given.get(flag).cloned().or_else(|| env.get(&env_name(flag)).cloned());
    let invalid = |option: &str, value: &str, reason: &str| CliError::InvalidValue {
        option: option.to_owned(),
        value: value.to_owned(),
        reason: reason.to_owned(),
    };
    let boolean = |flag: &str, default: bool| -> Result<bool, CliError> {
        match value(flag) {
            None => Ok(default),
            Some(v) => match v.to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => Ok(true),
                "0" | "false" | "no" | "off" => Ok(false),
                _ => Err(invalid(flag, &v, "expected true or false")),
            },
        }
    };
    let number = |flag: &str, default: usize| -> Result<usize, CliError> {
        value(flag).map_or(Ok(default), |v| v.parse().map_err(|_| invalid(flag, &v, "expected a number")))
    };
    let duration = |flag: &str, default: Duration| -> Result<Duration, CliError> {
        value(flag).map_or(Ok(default), |v| {
            parse_duration(&v).ok_or_else(|| invalid(flag, &v, "expected e.g. 5d, 36h, 90m, 30s"))
        })
    };

    let defaults = SimConfig::default();
    let addr_text = value("addr").unwrap_or_else(|| "127.0.0.1:8080".into());
    let addr = addr_text.parse().map_err(|_| invalid("addr", &addr_text, "expected IP:PORT"))?;
    let config = SimConfig {
        scim_token: value("scim-token").unwrap_or(defaults.scim_token),
        events_token: match value("events-token") {
            Some(t) if t.is_empty() || t.eq_ignore_ascii_case("none") => None,
            Some(t) => Some(t),
            None => defaults.events_token,
        },
        control_api: boolean("control-api", defaults.control_api)?,
        create_status: match value("create-status").as_deref() {
            None => defaults.create_status,
            Some("200") => CreateStatus::Ok200,
            Some("201") => CreateStatus::Created201,
            Some(v) => return Err(invalid("create-status", v, "expected 200 or 201")),
        },
        conflict: match value("conflict").as_deref() {
            None => defaults.conflict,
            Some("409" | "reject") => ConflictMode::Reject409,
            Some("link-existing" | "link_existing") => ConflictMode::LinkExisting,
            Some(v) => return Err(invalid("conflict", v, "expected 409 or link-existing")),
        },
        suspended_email_change: match value("suspended-email-change").as_deref() {
            None => defaults.suspended_email_change,
            Some("record") => SuspendedEmailChange::Record,
            Some("reject") => SuspendedEmailChange::Reject,
            Some(v) => {
                return Err(invalid("suspended-email-change", v, "expected record or reject"));
            }
        },
        protected_group_error: match value("protected-group-error").as_deref() {
            None => defaults.protected_group_error,
            Some("403") => ProtectedGroupError::Forbidden403,
            Some("400") => ProtectedGroupError::BadRequest400,
            Some(v) => return Err(invalid("protected-group-error", v, "expected 403 or 400")),
        },
        extra_protected_groups: value("protected-groups")
            .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default(),
        invite_ttl: duration("invite-ttl", defaults.invite_ttl)?,
        reactivate_resends_invite: boolean("reactivate-resends-invite", defaults.reactivate_resends_invite)?,
        filters: match value("filters").map(|v| v.to_ascii_lowercase()).as_deref() {
            None => defaults.filters,
            Some("supported") => FilterMode::Supported,
            Some("ignored") => FilterMode::Ignored,
            Some("rejected") => FilterMode::Rejected,
            Some(v) => return Err(invalid("filters", v, "expected supported, ignored or rejected")),
        },
        store_external_id: boolean("store-external-id", defaults.store_external_id)?,
        duplicate_group_name: match value("duplicate-group-name").map(|v| v.to_ascii_lowercase()).as_deref() {
            None => defaults.duplicate_group_name,
            Some("409" | "reject" | "reject409" | "reject_409") => DuplicateGroupName::Reject409,
            Some("allow") => DuplicateGroupName::Allow,
            Some("return-existing" | "return_existing") => DuplicateGroupName::ReturnExisting,
            Some(v) => return Err(invalid("duplicate-group-name", v, "expected 409, allow or return-existing")),
        },
        group_members: match value("group-members").map(|v| v.to_ascii_lowercase()).as_deref() {
            None => defaults.group_members,
            Some("always" | "true") => GroupMembers::Always,
            Some("never" | "false") => GroupMembers::Never,
            Some("only-by-id" | "only_by_id") => GroupMembers::OnlyById,
            Some(v) => return Err(invalid("group-members", v, "expected always, never or only-by-id")),
        },
        user_groups: match value("user-groups").map(|v| v.to_ascii_lowercase()).as_deref() {
            None => defaults.user_groups,
            Some("off") => UserGroups::Off,
            Some("ref") => UserGroups::Ref,
            Some("dollar-ref" | "dollar_ref") => UserGroups::DollarRef,
            Some(v) => return Err(invalid("user-groups", v, "expected off, ref or dollar-ref")),
        },
        display_name_rewrites_name: boolean("display-name-rewrites-name", defaults.display_name_rewrites_name)?,
        observed_discovery_quirks: boolean("observed-discovery-quirks", defaults.observed_discovery_quirks)?,
        meta_location: boolean("meta-location", defaults.meta_location)?,
        put_supported: boolean("put-supported", defaults.put_supported)?,
        confirmation_delay: duration("confirmation-delay", defaults.confirmation_delay)?,
        default_page_size: match value("default-page-size") {
            None => defaults.default_page_size,
            Some(v) if v.eq_ignore_ascii_case("none") => None,
            Some(v) => Some(v.parse().map_err(|_| invalid("default-page-size", &v, "expected a number or none"))?),
        },
        max_results: number("max-results", defaults.max_results)?,
        clock_start: match value("clock-start") {
            None => None,
            Some(v) => Some(
                DateTime::parse_from_rfc3339(&v)
                    .map_err(|_| invalid("clock-start", &v, "expected an RFC 3339 time"))?
                    .with_timezone(&Utc),
            ),
        },
        op_log_capacity: number("op-log-capacity", defaults.op_log_capacity)?,
    };
    Ok(Command::Run { addr, config })
}

/// `5d`, `36h`, `90m`, `30s`, `250ms`, or plain seconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => return Some(Duration::from_millis(n)),
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3_600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn flags_override_environment() {
        let env = HashMap::from([
            ("OP_SIM_CREATE_STATUS".to_owned(), "201".to_owned()),
            ("OP_SIM_FILTERS".to_owned(), "rejected".to_owned()),
            ("OP_SIM_GROUP_MEMBERS".to_owned(), "false".to_owned()),
        ]);
        let Command::Run { addr, config } =
            parse(&args(&["--addr", "127.0.0.1:0", "--create-status=200", "--invite-ttl", "36h"]), &env).unwrap()
        else {
            panic!("expected run")
        };
        assert_eq!(addr.port(), 0);
        assert_eq!(config.create_status, CreateStatus::Ok200);
        assert_eq!(config.filters, FilterMode::Rejected);
        assert_eq!(config.group_members, GroupMembers::Never, "true/false stay accepted");
        assert_eq!(config.invite_ttl, Duration::from_secs(36 * 3600));
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        let env = HashMap::new();
        assert_eq!(parse(&args(&["--nope"]), &env).unwrap_err(), CliError::UnknownOption("--nope".into()));
        assert!(matches!(parse(&args(&["--conflict", "maybe"]), &env), Err(CliError::InvalidValue { .. })));
        assert_eq!(parse(&args(&["--addr"]), &env).unwrap_err(), CliError::MissingValue("addr".into()));
        assert!(parse_duration("5x").is_none());
        assert_eq!(parse_duration("5d"), Some(Duration::from_secs(432_000)));
    }

    #[test]
    fn group_and_filter_switches_parse_every_value() {
        let env = HashMap::new();
        let parsed = |list: &[&str]| match parse(&args(list), &env).unwrap() {
            Command::Run { config, .. } => config,
            Command::Help => panic!("expected run"),
        };
        let defaults = parsed(&[]);
        assert_eq!(
            (defaults.filters, defaults.duplicate_group_name, defaults.group_members, defaults.user_groups),
            (FilterMode::Supported, DuplicateGroupName::ReturnExisting, GroupMembers::Always, UserGroups::DollarRef)
        );
        for (text, mode) in
            [("supported", FilterMode::Supported), ("ignored", FilterMode::Ignored), ("rejected", FilterMode::Rejected)]
        {
            assert_eq!(parsed(&["--filters", text]).filters, mode);
        }
        for (text, mode) in [
            ("409", DuplicateGroupName::Reject409),
            ("allow", DuplicateGroupName::Allow),
            ("return-existing", DuplicateGroupName::ReturnExisting),
        ] {
            assert_eq!(parsed(&["--duplicate-group-name", text]).duplicate_group_name, mode);
        }
        for (text, mode) in
            [("always", GroupMembers::Always), ("never", GroupMembers::Never), ("only-by-id", GroupMembers::OnlyById)]
        {
            assert_eq!(parsed(&["--group-members", text]).group_members, mode);
        }
        for (text, mode) in [("off", UserGroups::Off), ("ref", UserGroups::Ref), ("dollar-ref", UserGroups::DollarRef)]
        {
            assert_eq!(parsed(&["--user-groups", text]).user_groups, mode);
        }
        for flag in ["--filters", "--duplicate-group-name", "--group-members", "--user-groups"] {
            assert!(matches!(parse(&args(&[flag, "sometimes"]), &env), Err(CliError::InvalidValue { .. })), "{flag}");
        }
    }

    #[test]
    fn events_token_none_disables_the_events_api() {
        let Command::Run { config, .. } = parse(&args(&["--events-token", "none"]), &HashMap::new()).unwrap() else {
            panic!("expected run")
        };
        assert_eq!(config.events_token, None);
    }
}
