//! `bot webhook set | info | delete`: the webhook at Telegram, administered
//! with the same client and configuration as the function.

use super::*;

/// HTTPS, as Telegram requires; or plain HTTP to this machine, which only a
/// local Bot API (the stand-in) can deliver to.
pub(super) fn is_webhook_url(url: &str) -> bool {
    url.starts_with("https://")
        || ["http://127.0.0.1:", "http://localhost:", "http://[::1]:"]
            .iter()
            .any(|prefix| url.starts_with(prefix))
}

pub(super) async fn set_webhook(api: &BotApi, args: SetArgs) -> Result<(), CommandError> {
    if !is_webhook_url(&args.url) {
        return Err(CommandError::NotHttps(args.url));
    }
    let secret = WebhookSecret::parse(&args.secret_token)?;
    let request = SetWebhook {
        url: args.url.clone(),
        secret_token: Some(secret.expose().to_owned()),
        allowed_updates: Some(allowed(args.allowed_updates)),
        max_connections: Some(args.max_connections),
        drop_pending_updates: Some(args.drop_pending_updates),
    };
    // setWebhook allows one call a second: a person's retry would be next.
    retry(
        &RetryPolicy::once_more_if_limited(),
        &mut Stop::never(),
        "setWebhook",
        || api.set_webhook(&request),
    )
    .await?;
    println!("Webhook set: {}", args.url);
    Ok(())
}

pub(super) async fn delete_webhook(
    api: &BotApi,
    drop_pending_updates: bool,
) -> Result<(), CommandError> {
    api.delete_webhook(drop_pending_updates).await?;
    println!("Webhook deleted; updates now wait for getUpdates (bot poll).");
    Ok(())
}

pub(super) async fn webhook_info(api: &BotApi, args: InfoArgs) -> Result<(), CommandError> {
    let info = api.get_webhook_info().await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print!("{}", describe(&info, now));
    }
    if let Some(expected) = &args.expect_url {
        if &info.url != expected {
            return Err(CommandError::UnexpectedUrl {
                actual: info.url,
                expected: expected.clone(),
            });
        }
    }
    if let (Some(window), Some(date)) = (args.fail_on_error_within, info.last_error_date) {
        let age = now.saturating_sub(date);
        if age < i64::try_from(window).unwrap_or(i64::MAX) {
            return Err(CommandError::RecentDeliveryError {
                age: human_age(age),
                message: info
                    .last_error_message
                    .unwrap_or_else(|| "(no message)".to_owned()),
            });
        }
    }
    Ok(())
}

/// getWebhookInfo for people: the error's age matters, since Telegram keeps
/// the last error after delivery recovered.
pub(super) fn describe(info: &WebhookInfo, now: i64) -> String {
    let mut text = String::new();
    let mut line = |label: &str, value: String| text.push_str(&format!("{label:<17}{value}\n"));
    if info.url.is_empty() {
        line("URL:", "(none: updates wait for getUpdates)".to_owned());
    } else {
        line("URL:", info.url.clone());
    }
    line("Pending updates:", info.pending_update_count.to_string());
    if let Some(max) = info.max_connections {
        line("Max connections:", max.to_string());
    }
    if let Some(kinds) = &info.allowed_updates {
        let kinds = if kinds.is_empty() {
            "(Telegram's default kinds)".to_owned()
        } else {
            kinds.join(", ")
        };
        line("Allowed updates:", kinds);
    }
    if let Some(ip) = &info.ip_address {
        line("IP address:", ip.clone());
    }
    match (info.last_error_date, &info.last_error_message) {
        (Some(date), message) => line(
            "Last error:",
            format!(
                "{} ago: {}",
                human_age(now.saturating_sub(date)),
                message.as_deref().unwrap_or("(no message)")
            ),
        ),
        (None, _) => line("Last error:", "none".to_owned()),
    }
    text
}

pub(super) fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s if s < 172_800 => format!("{} h", s / 3600),
        s => format!("{} days", s / 86_400),
    }
}
