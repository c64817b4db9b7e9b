//! `bot doctor`: whether the deployed bot works, seen from outside as
//! Telegram and a user see it. The checks are pure functions from what was
//! observed to a [`Finding`], one module per thing checked; [`run`] only
//! gathers the observations (the stack through the `aws` command, Telegram
//! through the Bot API, the endpoint through two POSTs) and prints one line
//! per finding.

mod alarms;
mod aws;
mod endpoint;
mod secrets;
mod stack;
mod table;
mod telegram;

use std::fmt;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};
use telegram_lambda_bot::config::InitError;
use telegram_lambda_bot::runtime::client::BotApi;
use telegram_lambda_bot::runtime::error::Chain;

use alarms::{check_alarms, read_alarms, ALARMS};
use endpoint::probe_endpoint;
use secrets::load_config;
use stack::{read_stack, stack_finding};
use table::{check_table, read_table};
use telegram::{
    check_delivery, check_menu, check_outranking_menus, check_token, check_webhook,
    OUTRANKING_SCOPES,
};

/// Exit status when the only problem is that the endpoint was not reached.
pub const EXIT_UNREACHABLE: u8 = 3;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// The CloudFormation stack scripts/deploy created.
    #[arg(long, default_value = "telegram-bot")]
    stack_name: String,
    /// The stack's region; the AWS CLI's default otherwise.
    #[arg(long)]
    region: Option<String>,
    /// Check this webhook URL instead of reading a stack (the secret then
    /// comes from TELEGRAM_WEBHOOK_SECRET only).
    #[arg(long, conflicts_with = "stack_name")]
    url: Option<String>,
    /// With --url: the bot has no store, so its menu leaves out the
    /// commands that need memory.
    #[arg(long, requires = "url")]
    no_memory: bool,
    /// Count only delivery errors dated at or after this time (Unix
    /// seconds) as failures: scripts/deploy passes its setWebhook's time,
    /// since Telegram keeps an older error across a setWebhook that
    /// changes nothing. Without it, an error of the last 10 minutes fails.
    #[arg(long, value_name = "UNIX_SECONDS")]
    errors_since: Option<i64>,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mark {
    Ok,
    /// Worth knowing, not wrong.
    Note,
    Fail,
    /// The endpoint could not be reached: wrong too, but possibly only not
    /// yet (a new API's name takes a while to resolve everywhere).
    Unreachable,
}

impl Mark {
    fn label(self) -> &'static str {
        match self {
            Mark::Ok => "ok",
            Mark::Note => "note",
            Mark::Fail | Mark::Unreachable => "FAIL",
        }
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub mark: Mark,
    pub check: &'static str,
    pub detail: String,
}

impl Finding {
    fn new(mark: Mark, check: &'static str, detail: impl Into<String>) -> Self {
        Finding {
            mark,
            check,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<4}  {}: {}",
            self.mark.label(),
            self.check,
            self.detail
        )
    }
}

/// 0 when nothing failed, [`EXIT_UNREACHABLE`] when the only failure is an
/// endpoint not reached, 1 otherwise.
pub fn exit_status(findings: &[Finding]) -> u8 {
    if findings.iter().any(|f| f.mark == Mark::Fail) {
        1
    } else if findings.iter().any(|f| f.mark == Mark::Unreachable) {
        EXIT_UNREACHABLE
    } else {
        0
    }
}

/// The findings so far, each printed as it is made: the endpoint's probes
/// can take seconds, and a person watching sees where it is.
#[derive(Default)]
struct Report {
    findings: Vec<Finding>,
}

impl Report {
    fn add(&mut self, finding: Finding) {
        println!("{finding}");
        self.findings.push(finding);
    }
}

/// What is checked against: the stack's outputs, or --url.
struct Target {
    url: String,
    memory: bool,
    /// The stack's table, when it has one; `None` with --url.
    table: Option<String>,
    /// The stack's alarms, when it has them; `None` with --url.
    alarms: Option<Vec<String>>,
    bot_username: Option<String>,
    token_parameter: Option<String>,
    secret_parameter: Option<String>,
    /// When the stack was last deployed (Unix seconds).
    deployed_at: Option<i64>,
}

pub async fn run(args: DoctorArgs) -> ExitCode {
    let mut report = Report::default();
    check(&args, &mut report).await;
    let status = exit_status(&report.findings);
    match status {
        0 => {}
        EXIT_UNREACHABLE => {
            let again = match &args.url {
                Some(url) => format!("bot doctor --url {url}"),
                None => match &args.region {
                    Some(region) => format!(
                        "bot doctor --stack-name {} --region {region}",
                        args.stack_name
                    ),
                    None => format!("bot doctor --stack-name {}", args.stack_name),
                },
            };
            eprintln!(
                "bot: the endpoint could not be reached, and nothing else is wrong; \
                 a new one's name can take minutes to resolve: run `{again}` later"
            );
        }
        _ => {
            let failed = report
                .findings
                .iter()
                .filter(|f| matches!(f.mark, Mark::Fail | Mark::Unreachable))
                .count();
            let s = if failed == 1 { "" } else { "s" };
            eprintln!("bot: {failed} check{s} failed");
        }
    }
    ExitCode::from(status)
}

async fn check(args: &DoctorArgs, report: &mut Report) {
    let region = args.region.as_deref();
    let target = match &args.url {
        Some(url) => Target {
            url: url.clone(),
            memory: !args.no_memory,
            table: None,
            alarms: None,
            bot_username: None,
            token_parameter: None,
            secret_parameter: None,
            deployed_at: None,
        },
        None => match read_stack(&args.stack_name, region).await {
            Ok(stack) => {
                report.add(stack_finding(&args.stack_name, &stack));
                let alarms = ALARMS
                    .iter()
                    .map(|alarm| format!("{}-{alarm}", args.stack_name))
                    .collect();
                Target {
                    url: stack.webhook_url,
                    memory: stack.memory,
                    table: stack.memory_table,
                    alarms: stack.monitoring.then_some(alarms),
                    bot_username: stack.bot_username,
                    token_parameter: stack.token_parameter,
                    secret_parameter: stack.secret_parameter,
                    deployed_at: stack.deployed_at,
                }
            }
            Err(error) => {
                let detail = format!("{}: {}", args.stack_name, Chain(&error));
                report.add(Finding::new(Mark::Fail, "stack", detail));
                return;
            }
        },
    };
    let (loaded, note) = load_config(target.token_parameter.clone(), args.region.clone()).await;
    let ready = match loaded {
        Ok(config) => BotApi::new(&config).map(|api| (config, api)),
        Err(error) => Err(InitError::from(error)),
    };
    let (config, api) = match ready {
        Ok(ready) => ready,
        Err(error) => {
            report.add(Finding::new(Mark::Fail, "token", Chain(&error).to_string()));
            return;
        }
    };

    let me = api.get_me().await;
    report.add(check_token(&me, target.bot_username.as_deref()));
    if let Some(note) = note {
        report.add(Finding::new(Mark::Note, "token", note));
    }

    match api.get_webhook_info().await {
        Ok(info) => {
            report.add(check_webhook(&info, &target.url));
            report.add(check_delivery(&info, unix_now(), args.errors_since));
        }
        Err(error) => report.add(Finding::new(
            Mark::Fail,
            "webhook",
            Chain(&error).to_string(),
        )),
    }

    probe_endpoint(&config, &target, region, report).await;

    if let Some(table) = &target.table {
        let (described, ttl) = read_table(table, region).await;
        report.add(check_table(table, &described, &ttl));
    }

    let wanted = crate::menu::code_menu(target.memory);
    let shown = api.get_my_commands().await;
    report.add(check_menu(&shown, &wanted, target.memory));
    let mut outranking = Vec::new();
    for scope in OUTRANKING_SCOPES {
        outranking.push((scope, api.get_my_commands_in(scope).await));
    }
    if let Some(finding) = check_outranking_menus(&outranking) {
        report.add(finding);
    }

    if args.url.is_none() {
        report.add(match &target.alarms {
            // Right after a deploy (--errors-since), an alarm that went off
            // before it is old news the deploy may fix; one after it is not.
            Some(names) => check_alarms(
                &read_alarms(names, region).await,
                names,
                target.deployed_at.filter(|_| args.errors_since.is_some()),
            ),
            None => Finding::new(
                Mark::Note,
                "alarms",
                "none: monitoring is off (scripts/deploy --monitoring On)",
            ),
        });
    }
}

/// The Unix seconds of an AWS CLI timestamp (`2026-12-07T04:39:51.123000+00:00`,
/// or with `Z`): the date and time, less the offset.
pub fn unix_seconds(iso: &str) -> Option<i64> {
    let number = |range: std::ops::Range<usize>| iso.get(range)?.parse::<i64>().ok();
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if iso.get(4..5)? != "-" || iso.get(10..11)? != "T" || !(1..=12).contains(&month) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let rest = iso
        .get(19..)?
        .trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
    let offset = match rest {
        "" | "Z" => 0,
        _ => {
            let sign = match rest.get(0..1)? {
                "+" => 1,
                "-" => -1,
                _ => return None,
            };
            let (h, m) = (
                rest.get(1..3)?.parse::<i64>().ok()?,
                rest.get(4..6)?.parse::<i64>().ok()?,
            );
            sign * (h * 3600 + m * 60)
        }
    };
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn finding(mark: Mark, check: &'static str, detail: &str) -> Finding {
        Finding::new(mark, check, detail)
    }
    #[test]
    fn a_line_starts_with_its_verdict() {
        let line = finding(Mark::Ok, "token", "@EchoBot (id 42)").to_string();
        assert_eq!(line, "ok    token: @EchoBot (id 42)");
        assert!(finding(Mark::Note, "delivery", "x")
            .to_string()
            .starts_with("note  delivery: "));
        assert!(finding(Mark::Unreachable, "endpoint", "x")
            .to_string()
            .starts_with("FAIL  endpoint: "));
    }

    #[test]
    fn the_exit_status_is_3_only_when_nothing_but_reaching_failed() {
        let ok = finding(Mark::Ok, "token", "");
        let note = finding(Mark::Note, "delivery", "");
        let away = finding(Mark::Unreachable, "endpoint", "");
        let fail = finding(Mark::Fail, "webhook", "");
        assert_eq!(exit_status(&[ok.clone(), note.clone()]), 0);
        assert_eq!(exit_status(&[ok.clone(), away.clone(), note]), 3);
        assert_eq!(exit_status(&[ok, away, fail]), 1);
        assert_eq!(exit_status(&[]), 0);
    }
}
