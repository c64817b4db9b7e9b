//! The CloudWatch alarms a stack deployed with `Monitoring=On` has: all
//! present and quiet, since one firing is a problem the deploy did not see.

use super::aws::{aws, AwsError};
use super::{Finding, Mark};

/// The alarms template.yaml creates with `Monitoring=On`, after the stack's
/// name and a dash.
pub const ALARMS: &[&str] = &["errors", "pending-updates", "health-check"];

/// An alarm as CloudWatch reports it: its name, its state, and when it
/// last changed (Unix seconds) when that could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    pub state: String,
    pub since: Option<i64>,
}

/// The stack's alarms are quiet. `deployed_at` is given right after a
/// deploy: an alarm that went off before it is old news the deploy may
/// fix (a note; it clears within 15 minutes), one that went off after it
/// is the deploy's failure.
pub fn check_alarms(
    states: &Result<Vec<AlarmState>, AwsError>,
    expected: &[String],
    deployed_at: Option<i64>,
) -> Finding {
    let states = match states {
        Ok(states) => states,
        Err(error) => return Finding::new(Mark::Fail, "alarms", error.to_string()),
    };
    let alarm = |name: &String| states.iter().find(|a| &a.name == name);
    let state_of = |name: &String| alarm(name).map(|a| a.state.as_str());
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
    // An alarm raised by the incident a deploy fixes takes up to 15
    // minutes to clear: not this deploy's failure. (A new alarm waits in
    // INSUFFICIENT_DATA for its first report; it never starts in ALARM.)
    let before_deploy = |name: &&str| match (deployed_at, alarm(&(*name).to_owned())) {
        (
            Some(deployed),
            Some(AlarmState {
                since: Some(since), ..
            }),
        ) => *since < deployed,
        _ => false,
    };
    if !firing.is_empty() && firing.iter().all(before_deploy) {
        let detail = format!(
            "{} in ALARM since before this deploy, which may fix it: check again in 15 minutes",
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
) -> Result<Vec<AlarmState>, AwsError> {
    let mut args = vec!["cloudwatch", "describe-alarms", "--alarm-names"];
    args.extend(names.iter().map(String::as_str));
    args.extend([
        "--query",
        "MetricAlarms[].[AlarmName,StateValue,StateUpdatedTimestamp]",
        "--output",
        "json",
    ]);
    let json = aws("cloudwatch describe-alarms", &args, region).await?;
    let not_alarms = || AwsError::Failed {
        call: "cloudwatch describe-alarms",
        reason: "the answer is not a list of alarms".to_owned(),
    };
    let rows: Vec<Vec<serde_json::Value>> =
        serde_json::from_slice(&json).map_err(|_| not_alarms())?;
    rows.iter()
        .map(|row| {
            let text = |i: usize| row.get(i).and_then(serde_json::Value::as_str);
            Some(AlarmState {
                name: text(0)?.to_owned(),
                state: text(1)?.to_owned(),
                since: text(2).and_then(super::unix_seconds),
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(not_alarms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ALARMS.iter().map(|a| format!("bot-{a}")).collect()
    }

    fn states(states: &[&str]) -> Result<Vec<AlarmState>, AwsError> {
        Ok(names()
            .into_iter()
            .zip(states.iter())
            .map(|(name, state)| AlarmState {
                name,
                state: state.to_string(),
                since: Some(1_000),
            })
            .collect())
    }

    #[test]
    fn an_alarm_firing_fails_naming_it_and_a_new_one_is_a_note() {
        assert_eq!(
            check_alarms(&states(&["OK", "OK", "OK"]), &names(), None),
            Finding::new(Mark::Ok, "alarms", "3 OK")
        );
        let firing = check_alarms(
            &states(&["OK", "ALARM", "INSUFFICIENT_DATA"]),
            &names(),
            None,
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
            None,
        );
        assert_eq!(
            new,
            Finding::new(Mark::Note, "alarms", "1 OK, 2 waiting for data")
        );
        let missing = check_alarms(&states(&["OK", "OK"]), &names(), None);
        // Right after a deploy, an alarm firing since before it is a note;
        // one that went off after it is the deploy's failure.
        let old_news = check_alarms(&states(&["ALARM", "OK", "OK"]), &names(), Some(2_000));
        assert_eq!(old_news.mark, Mark::Note);
        let this_deploys = check_alarms(&states(&["ALARM", "OK", "OK"]), &names(), Some(500));
        assert_eq!(this_deploys.mark, Mark::Fail);
        assert_eq!(missing.mark, Mark::Fail);
        assert!(missing.detail.starts_with("bot-health-check not found"));
        assert_eq!(
            crate::doctor::unix_seconds("2026-12-07T04:39:51.123000+00:00"),
            Some(1_796_618_391)
        );
        assert_eq!(
            crate::doctor::unix_seconds("2026-12-07T05:39:51Z"),
            Some(1_796_618_391 + 3600)
        );
        assert_eq!(
            crate::doctor::unix_seconds("2026-12-07T06:39:51+02:00"),
            Some(1_796_618_391)
        );
        assert_eq!(crate::doctor::unix_seconds("yesterday"), None);
        let denied = check_alarms(
            &Err(AwsError::Failed {
                call: "cloudwatch describe-alarms",
                reason: "An error occurred (AccessDenied)".to_owned(),
            }),
            &names(),
            None,
        );
        assert_eq!(denied.mark, Mark::Fail);
    }
}
