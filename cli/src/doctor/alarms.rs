//! The CloudWatch alarms a stack deployed with `Monitoring=On` has: all
//! present and quiet, since one firing is a problem the deploy did not see.

use super::aws::{aws, AwsError};
use super::{Finding, Mark};

/// The alarms template.yaml creates with `Monitoring=On`, after the stack's
/// name and a dash.
pub const ALARMS: &[&str] = &["errors", "pending-updates", "health-check"];

/// The stack's alarms are quiet. `states` holds (name, state) as
/// CloudWatch reports them.
pub fn check_alarms(
    states: &Result<Vec<(String, String)>, AwsError>,
    expected: &[String],
    just_deployed: bool,
) -> Finding {
    let states = match states {
        Ok(states) => states,
        Err(error) => return Finding::new(Mark::Fail, "alarms", error.to_string()),
    };
    let state_of = |name: &String| {
        states
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, state)| state.as_str())
    };
    let missing: Vec<&str> = expected
        .iter()
        .filter(|name| state_of(name).is_none())
        .map(String::as_str)
        .collect();
    let firing: Vec<&str> = expected
        .iter()
        .filter(|name| state_of(name) == Some("ALARM"))
        .map(String::as_str)
        .collect();
    let waiting = expected
        .iter()
        .filter(|name| state_of(name) == Some("INSUFFICIENT_DATA"))
        .count();
    if !firing.is_empty() && just_deployed {
        // An alarm raised by the incident a deploy fixes takes up to 15
        // minutes to clear: not this deploy's failure. (A new alarm waits
        // in INSUFFICIENT_DATA for its first report; it never starts in
        // ALARM.)
        let detail = format!(
            "{} in ALARM; right after a deploy that may be old news: check again in 15 minutes",
            firing.join(", ")
        );
        return Finding::new(Mark::Note, "alarms", detail);
    }
    if !firing.is_empty() {
        let detail = format!(
            "{} in ALARM (README, Operate, says what each means)",
            firing.join(", ")
        );
        return Finding::new(Mark::Fail, "alarms", detail);
    }
    if !missing.is_empty() {
        let detail = format!(
            "{} not found (deploy again with --monitoring On)",
            missing.join(", ")
        );
        return Finding::new(Mark::Fail, "alarms", detail);
    }
    if waiting > 0 {
        // A new stack's alarms wait for their first data points.
        let detail = format!(
            "{} OK, {waiting} waiting for data",
            expected.len() - waiting
        );
        return Finding::new(Mark::Note, "alarms", detail);
    }
    Finding::new(Mark::Ok, "alarms", format!("{} OK", expected.len()))
}

pub(super) async fn read_alarms(
    names: &[String],
    region: Option<&str>,
) -> Result<Vec<(String, String)>, AwsError> {
    let mut args = vec!["cloudwatch", "describe-alarms", "--alarm-names"];
    args.extend(names.iter().map(String::as_str));
    args.extend([
        "--query",
        "MetricAlarms[].[AlarmName,StateValue]",
        "--output",
        "json",
    ]);
    let json = aws("cloudwatch describe-alarms", &args, region).await?;
    serde_json::from_slice(&json).map_err(|_| AwsError::Failed {
        call: "cloudwatch describe-alarms",
        reason: "the answer is not a list of alarms".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ALARMS.iter().map(|a| format!("bot-{a}")).collect()
    }

    fn states(states: &[&str]) -> Result<Vec<(String, String)>, AwsError> {
        Ok(names()
            .into_iter()
            .zip(states.iter().map(|s| s.to_string()))
            .collect())
    }

    #[test]
    fn an_alarm_firing_fails_naming_it_and_a_new_one_is_a_note() {
        assert_eq!(
            check_alarms(&states(&["OK", "OK", "OK"]), &names(), false),
            Finding::new(Mark::Ok, "alarms", "3 OK")
        );
        let firing = check_alarms(
            &states(&["OK", "ALARM", "INSUFFICIENT_DATA"]),
            &names(),
            false,
        );
        assert_eq!(firing.mark, Mark::Fail);
        assert!(
            firing.detail.starts_with("bot-pending-updates in ALARM"),
            "{}",
            firing.detail
        );
        let new = check_alarms(
            &states(&["OK", "INSUFFICIENT_DATA", "INSUFFICIENT_DATA"]),
            &names(),
            false,
        );
        assert_eq!(
            new,
            Finding::new(Mark::Note, "alarms", "1 OK, 2 waiting for data")
        );
        let missing = check_alarms(&states(&["OK", "OK"]), &names(), false);
        // Right after a deploy, an alarm still firing is a note.
        let deployed = check_alarms(&states(&["ALARM", "OK", "OK"]), &names(), true);
        assert_eq!(deployed.mark, Mark::Note);
        assert_eq!(missing.mark, Mark::Fail);
        assert!(missing.detail.starts_with("bot-health-check not found"));
        let denied = check_alarms(
            &Err(AwsError::Failed {
                call: "cloudwatch describe-alarms",
                reason: "An error occurred (AccessDenied)".to_owned(),
            }),
            &names(),
            false,
        );
        assert_eq!(denied.mark, Mark::Fail);
    }
}
