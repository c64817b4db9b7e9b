//! The endpoint Telegram posts to, probed as Telegram would: a request
//! without the webhook secret must be refused (or anyone could make the bot
//! act), and one with it accepted in time. An endpoint not reached at all is
//! told apart, since a new one's name can take minutes to resolve.

use std::time::Duration;
use telegram_lambda_bot::config::{Config, WebhookSecret};
use telegram_lambda_bot::runtime::error::Chain;
use telegram_lambda_bot::webhook::SECRET_HEADER;

use super::secrets::read_secret;
use super::{Finding, Mark, Report, Target};

/// The endpoint's whole answer, cold start included.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);
const PROBE_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The probe: a button press outside any chat, with a query id Telegram
/// knows no query by ("0"). The function takes it the whole way an update
/// goes: it reads its table for the press, answers it through the Bot API
/// with its own token (Telegram refuses the id, which counts as done), and
/// its bot finds nothing to do. Nothing is shown to anyone, nothing is
/// written. A refused token, a base URL that is not the Bot API or a table
/// it may not read make it answer 500.
fn probe_body() -> String {
    // Far above Telegram's ids, and new each run: never taken for a
    // repeat of a real update, or of an earlier probe.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::from(d.subsec_nanos()))
        .unwrap_or(0);
    serde_json::json!({
        "update_id": (1_u64 << 40) + nanos,
        "callback_query": {
            "id": "0",
            "chat_instance": "bot-doctor",
            "from": {"id": 1, "is_bot": false, "first_name": "bot doctor"},
            "data": "bot-doctor:probe"
        }
    })
    .to_string()
}

/// Why a probe got no HTTP answer. Shows no URL, header or body.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("could not connect")]
    Connect(#[source] reqwest::Error),
    #[error("the TLS handshake failed")]
    Tls(#[source] reqwest::Error),
    #[error("the request failed")]
    Request(#[source] reqwest::Error),
    #[error("could not build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl ProbeError {
    /// Not reached at all, as a name that does not resolve yet is not.
    fn unreachable(&self) -> bool {
        matches!(self, ProbeError::Timeout(_) | ProbeError::Connect(_))
    }

    fn from_reqwest(error: reqwest::Error) -> Self {
        let error = error.without_url();
        if error.is_timeout() {
            ProbeError::Timeout(PROBE_TIMEOUT)
        } else if error.is_connect() && is_tls(&error) {
            ProbeError::Tls(error)
        } else if error.is_connect() {
            ProbeError::Connect(error)
        } else {
            ProbeError::Request(error)
        }
    }
}

/// reqwest reports a failed handshake as a connect error: an I/O error
/// (kind Other) around tokio-rustls's `InvalidData` one around the TLS
/// error. A bad certificate is a problem to fix, not an endpoint to wait
/// for.
fn is_tls(error: &reqwest::Error) -> bool {
    fn invalid_data(io: &std::io::Error) -> bool {
        // An I/O error's `source` skips the error it wraps: look inside.
        io.kind() == std::io::ErrorKind::InvalidData
            || io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<std::io::Error>())
                .is_some_and(invalid_data)
    }
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(cause) = source {
        if cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(invalid_data)
        {
            return true;
        }
        source = cause.source();
    }
    false
}

fn probe_failed(error: &ProbeError) -> Finding {
    if error.unreachable() {
        Finding::new(
            Mark::Unreachable,
            "endpoint",
            format!("not reached: {}", Chain(error)),
        )
    } else {
        Finding::new(Mark::Fail, "endpoint", Chain(error).to_string())
    }
}

/// A request without the secret is refused, so nobody else can make the
/// bot act.
pub fn check_refusal(answer: &Result<u16, ProbeError>) -> Finding {
    match answer {
        Ok(401) => Finding::new(
            Mark::Ok,
            "endpoint",
            "refuses a request without the secret (401)",
        ),
        Ok(status @ 200..=299) => Finding::new(
            Mark::Fail,
            "endpoint",
            format!("accepted a request without the secret ({status}): anyone can post updates"),
        ),
        Ok(status) => Finding::new(
            Mark::Fail,
            "endpoint",
            format!("answered {status} to a request without the secret, expected 401"),
        ),
        Err(error) => probe_failed(error),
    }
}

/// The function takes the secret Telegram sends, and its own token, Bot
/// API and table work: the probe press goes the whole way (see
/// [`probe_body`]).
pub fn check_acceptance(answer: &Result<u16, ProbeError>) -> Finding {
    match answer {
        Ok(200) => Finding::new(
            Mark::Ok,
            "endpoint",
            "answers a probe press with its own token, Bot API and table (200; nothing shown to anyone)",
        ),
        Ok(401) => Finding::new(
            Mark::Fail,
            "endpoint",
            "refused the webhook secret (401): the function has another one",
        ),
        Ok(500) => Finding::new(
            Mark::Fail,
            "endpoint",
            "failed a probe press (500): the function's token, Bot API URL or table does not work; its log line says which",
        ),
        Ok(status @ (502 | 503)) => Finding::new(
            Mark::Fail,
            "endpoint",
            format!("answered {status} to a probe press: the function could not reach the Bot API or its table in time"),
        ),
        Ok(status) => Finding::new(
            Mark::Fail,
            "endpoint",
            format!("answered {status} to a probe press, expected 200"),
        ),
        Err(error) => probe_failed(error),
    }
}

/// POSTs to the endpoint as Telegram does: one try, no redirects, a fresh
/// connection each time.
struct Probe {
    http: reqwest::Client,
}

impl Probe {
    fn new(config: &Config) -> Result<Self, ProbeError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(PROBE_CONNECT_TIMEOUT)
            .timeout(PROBE_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(0);
        for certificate in &config.extra_root_certificates {
            builder = builder.add_root_certificate(certificate.clone());
        }
        let http = builder
            .build()
            .map_err(|e| ProbeError::Client(e.without_url()))?;
        Ok(Probe { http })
    }

    async fn post(&self, url: &str, secret: Option<&WebhookSecret>) -> Result<u16, ProbeError> {
        let mut request = self
            .http
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(probe_body());
        if let Some(secret) = secret {
            request = request.header(SECRET_HEADER, secret.expose());
        }
        let response = request.send().await.map_err(ProbeError::from_reqwest)?;
        Ok(response.status().as_u16())
    }
}

pub(super) async fn probe_endpoint(
    config: &Config,
    target: &Target,
    region: Option<&str>,
    report: &mut Report,
) {
    let probe = match Probe::new(config) {
        Ok(probe) => probe,
        Err(error) => {
            report.add(Finding::new(
                Mark::Fail,
                "endpoint",
                Chain(&error).to_string(),
            ));
            return;
        }
    };
    let refused = probe.post(&target.url, None).await;
    let not_reached = matches!(&refused, Err(error) if error.unreachable());
    report.add(check_refusal(&refused));
    if not_reached {
        return; // the second request would only say so again
    }
    let secret = match (&config.webhook_secret, &target.secret_parameter) {
        (Some(secret), _) => Ok(secret.clone()),
        (None, Some(name)) => read_secret(name, region).await,
        (None, None) => {
            report.add(Finding::new(
                Mark::Note,
                "endpoint",
                "authenticated request not tried: set TELEGRAM_WEBHOOK_SECRET",
            ));
            return;
        }
    };
    match secret {
        Ok(secret) => report.add(check_acceptance(
            &probe.post(&target.url, Some(&secret)).await,
        )),
        Err(error) => report.add(Finding::new(
            Mark::Fail,
            "endpoint",
            format!("authenticated request not tried: {}", Chain(&error)),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_endpoint_must_refuse_without_the_secret_and_accept_with_it() {
        assert_eq!(check_refusal(&Ok(401)).mark, Mark::Ok);
        let open = check_refusal(&Ok(200));
        assert_eq!(open.mark, Mark::Fail);
        assert!(open.detail.contains("anyone can post updates"));
        assert_eq!(check_refusal(&Ok(500)).mark, Mark::Fail);
        assert_eq!(check_refusal(&Ok(404)).mark, Mark::Fail);
        assert_eq!(check_acceptance(&Ok(200)).mark, Mark::Ok);
        let wrong_secret = check_acceptance(&Ok(401));
        assert_eq!(wrong_secret.mark, Mark::Fail);
        assert!(wrong_secret.detail.contains("another one"));
        let broken = check_acceptance(&Ok(500));
        assert!(
            broken.detail.contains("token, Bot API URL or table"),
            "{}",
            broken.detail
        );
        assert_eq!(check_acceptance(&Ok(502)).mark, Mark::Fail);
    }

    #[test]
    fn an_endpoint_that_does_not_answer_in_time_is_unreachable_not_wrong() {
        let slow = Err(ProbeError::Timeout(PROBE_TIMEOUT));
        let finding = check_refusal(&slow);
        assert_eq!(finding.mark, Mark::Unreachable);
        assert_eq!(finding.detail, "not reached: no answer within 10s");
        assert_eq!(check_acceptance(&slow).mark, Mark::Unreachable);
    }
}
