//! `lambda-bench --assistant`: the webhook answering a question from the
//! stand-in's fake model, which streams a fixed answer over 2 s: how soon
//! the user sees a draft, how soon the answer, and what Lambda bills, cold
//! and warm. The model's 2 s are the same in every run, so what varies is
//! the function's own part.

use crate::event::EventTemplate;
use crate::process::Process;
use crate::BenchError;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use telegram_stand_in::{FakeModel, ModelOptions, StandIn, FAKE_MODEL_KEY};

/// The fake model's answer: 20 words, one every 100 ms.
const WORDS: usize = 20;
const WORD_INTERVAL: Duration = Duration::from_millis(100);
/// Each answer takes 2 s: warm runs are capped so a default run stays short.
pub const MAX_WARM: usize = 30;

/// What one question cost, from the event being handed out.
#[derive(Debug, Clone, Copy)]
struct Timing {
    /// Process start to its first `/next` (cold runs only).
    init: Option<Duration>,
    first_draft: Duration,
    answer: Duration,
    /// From the event to the function's response: what Lambda bills (plus
    /// init on a cold start), rounded up to the millisecond.
    billed: Duration,
}

pub fn answer_text() -> String {
    (1..=WORDS)
        .map(|n| format!("word{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The model the function is pointed at, and the variables that do it.
pub async fn start_model() -> Result<(FakeModel, Vec<(String, String)>), BenchError> {
    let model = FakeModel::start(ModelOptions {
        answer: Some(answer_text()),
        piece_interval: WORD_INTERVAL,
        ..ModelOptions::default()
    })
    .await
    .map_err(|e| BenchError::io("starting the fake model", e))?;
    let env = vec![
        ("ASSISTANT_MODEL".to_owned(), "stand-in-fake".to_owned()),
        ("ASSISTANT_BASE_URL".to_owned(), model.base_url()),
        ("ASSISTANT_API_KEY".to_owned(), FAKE_MODEL_KEY.to_owned()),
    ];
    Ok((model, env))
}

/// Gives `process` the question and checks the answer it sent.
async fn ask(
    process: &mut Process,
    stand_in: &StandIn,
    template: &EventTemplate,
    offset: usize,
) -> Result<(Timing, Option<Instant>), BenchError> {
    let (event, update) = template.render(offset)?;
    stand_in.observe_update(&update);
    stand_in.reset();
    let invoked = process
        .invoke(format!("a55e1c2a-0000-4000-8000-{offset:012x}"), event)
        .await?;
    let failed = |problem: String| BenchError::Function {
        name: "webhook+assistant",
        problem,
        output: String::new(),
    };
    let answer: Value = serde_json::from_slice(&invoked.body).unwrap_or(Value::Null);
    if answer.get("statusCode").and_then(Value::as_i64) != Some(200) {
        return Err(failed(format!(
            "answered {} instead of statusCode 200",
            String::from_utf8_lossy(&invoked.body)
        )));
    }
    let calls = stand_in.calls();
    let at = |method: &str| {
        calls
            .iter()
            .find(|c| c.method == method && c.performed)
            .and_then(|c| c.performed_at)
    };
    let sent: Vec<_> = calls.iter().filter(|c| c.method == "sendMessage").collect();
    if sent.len() != 1 || sent[0].params["text"] != answer_text() {
        return Err(failed(format!("expected the answer once, got {sent:?}")));
    }
    let (Some(first_draft), Some(answered)) = (at("sendMessageDraft"), at("sendMessage")) else {
        return Err(failed("no draft was shown before the answer".to_owned()));
    };
    let since = |t: Instant| t.saturating_duration_since(invoked.handed_out);
    let billed = since(invoked.responded);
    Ok((
        Timing {
            init: None,
            first_draft: since(first_draft),
            answer: since(answered),
            billed: Duration::from_millis(billed.as_nanos().div_ceil(1_000_000) as u64),
        },
        invoked.first_next,
    ))
}

/// `cold` fresh processes and `warm` questions to one process, one after
/// the other; prints the table and returns the figures as JSON.
pub async fn measure(
    spawn: impl AsyncFn() -> Result<Process, BenchError>,
    stand_in: &StandIn,
    template: &EventTemplate,
    cold: usize,
    warm: usize,
) -> Result<Value, BenchError> {
    let mut colds = Vec::with_capacity(cold);
    for run in 0..=cold {
        let mut process = spawn().await?;
        let spawned = process.spawned;
        let asked = ask(&mut process, stand_in, template, run * 10).await;
        process.stop().await;
        let (mut timing, first_next) = asked?;
        timing.init = first_next.map(|t| t.saturating_duration_since(spawned));
        // The first run brings the binary into the page cache: not counted.
        if run > 0 {
            colds.push(timing);
        }
    }
    let mut warms = Vec::with_capacity(warm);
    let mut process = spawn().await?;
    let mut result = Ok(());
    for index in 0..=warm {
        match ask(&mut process, stand_in, template, 100_000 + index).await {
            // The first answer is the process's cold start.
            Ok((timing, _)) if index > 0 => warms.push(timing),
            Ok(_) => {}
            Err(error) => {
                result = Err(error);
                break;
            }
        }
    }
    process.stop().await;
    result?;
    let table = [("cold", &colds), ("warm", &warms)];
    println!(
        "\n/ask against the fake model ({WORDS} words over {} ms), ms: median (p90)",
        WORDS as u128 * WORD_INTERVAL.as_millis()
    );
    println!(
        "{:<6} {:>5} {:>16} {:>16} {:>16} {:>16}",
        "", "runs", "init", "first draft", "answer sent", "billed"
    );
    let mut json = serde_json::Map::new();
    for (name, timings) in table {
        let figure = |pick: fn(&Timing) -> Option<Duration>| {
            let mut values: Vec<f64> = timings
                .iter()
                .filter_map(pick)
                .map(|d| d.as_secs_f64() * 1000.0)
                .collect();
            values.sort_by(f64::total_cmp);
            let at = |q: f64| {
                values
                    .get(((values.len() as f64 - 1.0) * q).round() as usize)
                    .copied()
            };
            (at(0.5), at(0.9))
        };
        let shown = |(median, p90): (Option<f64>, Option<f64>)| match (median, p90) {
            (Some(m), Some(p)) => format!("{m:.1} ({p:.1})"),
            _ => "-".to_owned(),
        };
        let init = figure(|t| t.init);
        let draft = figure(|t| Some(t.first_draft));
        let answer = figure(|t| Some(t.answer));
        let billed = figure(|t| Some(t.billed + t.init.unwrap_or_default()));
        println!(
            "{name:<6} {:>5} {:>16} {:>16} {:>16} {:>16}",
            timings.len(),
            shown(init),
            shown(draft),
            shown(answer),
            shown(billed)
        );
        json.insert(
            name.to_owned(),
            json!({
                "runs": timings.len(),
                "init_ms": {"median": init.0, "p90": init.1},
                "first_draft_ms": {"median": draft.0, "p90": draft.1},
                "answer_sent_ms": {"median": answer.0, "p90": answer.1},
                "billed_ms": {"median": billed.0, "p90": billed.1},
            }),
        );
    }
    // At 128 MB on arm64: $0.0000133334 per GB-second.
    let mut billed: Vec<f64> = warms.iter().map(|t| t.billed.as_secs_f64()).collect();
    billed.sort_by(f64::total_cmp);
    if let Some(billed) = billed.get(billed.len() / 2).copied() {
        let dollars = billed * 0.125 * 0.000_013_333_4 * 1e6;
        println!("Lambda's duration for a million warm answers like these: ${dollars:.2} (128 MB, arm64)");
        json.insert("warm_duration_usd_per_million".to_owned(), json!(dollars));
    }
    Ok(Value::Object(json))
}
