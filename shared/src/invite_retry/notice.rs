//! What a human is told. One message per run and kind, naming each person by person key and
//! masked e-mail (never the address itself: Slack channels are wider than the admin team).

use std::fmt::Write;
use std::time::Duration;

use crate::ledger::Invitation;
use crate::telemetry::mask_email;

/// People named per message; the rest are counted (the log has a line for each).
pub const MAX_NAMED: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportReason {
    /// `REISSUE_STRATEGY=report-only`: acceptance is known from the Events API.
    Configured,
    /// No Events API token: acceptance cannot be known.
    NoEventsApi,
}

fn line(invitation: &Invitation) -> String {
    format!(
        "• {} ({}): first invited {}, {} invitation{} sent, last {}",
        mask_email(&invitation.email),
        invitation.person,
        invitation.invited_at.format("%Y-%m-%d"),
        invitation.reissues + 1,
        if invitation.reissues == 0 { "" } else { "s" },
        invitation.last_sent_at.format("%Y-%m-%d"),
    )
}

fn list(out: &mut String, invitations: &[Invitation]) {
    let mut sorted: Vec<&Invitation> = invitations.iter().collect();
    sorted.sort_by_key(|i| (i.invited_at, i.person.to_string()));
    for invitation in sorted.iter().take(MAX_NAMED) {
        let _ = writeln!(out, "{}", line(invitation));
    }
    if sorted.len() > MAX_NAMED {
        let _ = writeln!(out, "…and {} more (see the invite-retry logs).", sorted.len() - MAX_NAMED);
    }
}

pub fn escalation_digest(invitations: &[Invitation], max_reissues: u32) -> String {
    let mut out = format!(
        "1Password provisioning: {} invitation{} never accepted after {} re-issue{} (attempts exhausted). \
         invite-retry has stopped re-sending; please contact the person or resend from 1Password (People → user).\n",
        invitations.len(),
        if invitations.len() == 1 { " was" } else { "s were" },
        max_reissues,
        if max_reissues == 1 { "" } else { "s" },
    );
    list(&mut out, invitations);
    out
}

pub fn report_digest(invitations: &[Invitation], ttl: Duration, reason: ReportReason) -> String {
    let why = match reason {
        ReportReason::Configured => "REISSUE_STRATEGY is report-only",
        ReportReason::NoEventsApi => {
            "no Events API token is configured, so invite-retry cannot tell who has accepted and re-issues nothing \
             (some of these people may have accepted)"
        }
    };
    let mut out = format!(
        "1Password provisioning: {} invitation{} not accepted within {} hours. Not re-sent because {why}; \
         please check and resend from 1Password (People → user) where needed. Each is reported once.\n",
        invitations.len(),
        if invitations.len() == 1 { "" } else { "s" },
        ttl.as_secs() / 3600,
    );
    list(&mut out, invitations);
    out
}

/// The run stopped re-issuing because a deactivated user could not be reactivated.
pub fn reactivation_failed(failed: usize, held_back: usize) -> String {
    format!(
        "1Password provisioning: {failed} user{} deactivated to re-send an invitation could not be reactivated. \
         Reactivate them by hand in 1Password (People → user) unless they are leaving; the invite-retry logs \
         name them. Re-issuing stopped for the rest of this run ({held_back} expired invitation{} left for the \
         next run).",
        if failed == 1 { "" } else { "s" },
        if held_back == 1 { "" } else { "s" },
    )
}

/// The run reached `MAX_REISSUES_PER_RUN`.
pub fn brake_engaged(limit: u32, held_back: usize) -> String {
    format!(
        "1Password provisioning: the re-issue brake engaged. invite-retry started {limit} re-issue{} this run \
         (MAX_REISSUES_PER_RUN) and left {held_back} expired invitation{} for the next run. If so many expire \
         at once, check that the bridge and the ledger look right.",
        if limit == 1 { "" } else { "s" },
        if held_back == 1 { "" } else { "s" },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::PersonKey;
    use crate::ledger::InvitationStatus;
    use chrono::{DateTime, Utc};

    fn invitation(n: usize, reissues: u32) -> Invitation {
        let at: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-03-02T09:00:00Z").unwrap().into();
        Invitation {
            counts_from: None,
            person: PersonKey::new("hr", n.to_string()),
            user_id: crate::scim::ScimUserId::new(format!("U{n}")),
            email: format!("person.{n}@example.com"),
            invited_at: at + chrono::Duration::minutes(n as i64),
            last_sent_at: at + chrono::Duration::days(15),
            reissues,
            status: InvitationStatus::Escalated,
        }
    }

    #[test]
    fn escalation_names_masked_person_attempts_and_first_date() {
        let text = escalation_digest(&[invitation(7, 3)], 3);
        assert!(text.contains("p***@example.com"), "{text}");
        assert!(text.contains("hr:7"), "{text}");
        assert!(text.contains("after 3 re-issues"), "{text}");
        assert!(text.contains("4 invitations sent"), "{text}");
        assert!(text.contains("first invited 2026-03-02"), "{text}");
        assert!(!text.contains("person.7@"), "unmasked e-mail: {text}");
    }

    #[test]
    fn long_lists_are_cut_and_counted() {
        let many: Vec<Invitation> = (0..MAX_NAMED + 5).map(|n| invitation(n, 0)).collect();
        let text = report_digest(&many, Duration::from_secs(120 * 3600), ReportReason::NoEventsApi);
        assert_eq!(text.lines().filter(|l| l.starts_with('•')).count(), MAX_NAMED);
        assert!(text.contains("and 5 more"), "{text}");
        assert!(text.contains("120 hours") && text.contains("no Events API token"), "{text}");
    }
}
