//! The measurements: cold starts (a fresh process per event) and warm
//! invocations (one long-lived process per function), each answer checked
//! before its timing counts.

use crate::event::EventTemplate;
use crate::process::{Invoked, Process};
use crate::report::{ColdRun, StoreLog, Warm};
use crate::store::{self, StoreProxy};
use crate::{BenchError, MAX_COLD_RUNS};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use telegram_stand_in::StandIn;

/// Invocations before the warm measurement starts, not counted: the first
/// one is a cold start, the next few settle allocator and connection pool.
pub const WARM_UP_INVOCATIONS: usize = 20;
/// Warm invocations in a row for one function before the other's turn.
pub const WARM_BLOCK: usize = 50;

/// A function under test.
pub struct Function {
    pub name: &'static str,
    pub binary: PathBuf,
    /// The webhook must have sent its reply to the stand-in; the baseline
    /// only answers.
    pub sends_reply: bool,
    /// Its own variables, on top of the shared ones.
    pub env: Vec<(String, String)>,
    /// Whether it uses the bench's store, whose requests are then counted.
    pub uses_store: bool,
}

/// What every function process is started with.
pub struct Bench<'a> {
    pub stand_in: &'a StandIn,
    pub template: &'a EventTemplate,
    pub env: &'a [(String, String)],
    pub api: &'a lambda_runtime_api::Options,
    /// moto behind the counting proxy, unless the run goes without.
    pub store: Option<&'a StoreProxy>,
}

impl Bench<'_> {
    async fn spawn(&self, function: &Function) -> Result<Process, BenchError> {
        let env: Vec<(String, String)> = self.env.iter().chain(&function.env).cloned().collect();
        Process::spawn(function.name, &function.binary, &env, self.api).await
    }

    /// Starts a fresh process, gives it one event and stops it.
    pub async fn cold_run(&self, function: &Function, run: usize) -> Result<ColdRun, BenchError> {
        let mut process = self.spawn(function).await?;
        let spawned = process.spawned;
        // Each process gets its own range of update ids; not needed (a new
        // process remembers nothing) but it keeps every update unique.
        let invoked = self.invoke(&mut process, function, run * 10).await;
        process.stop().await;
        let invoked = invoked?;
        let init_end = invoked.first_next.ok_or_else(|| BenchError::Function {
            name: function.name,
            problem: "answered without asking for an event".to_owned(),
            output: String::new(),
        })?;
        Ok(ColdRun {
            init: init_end.saturating_duration_since(spawned),
            total: invoked.responded.saturating_duration_since(spawned),
        })
    }

    /// One process per function, all alive at once: warm-up invocations,
    /// then `count` measured ones each, in alternating blocks so that a
    /// change in the machine's state during the run (other work, a host
    /// that slows an idle vCPU's wake-ups) reaches every function alike.
    /// Returns each function's figures and peak resident memory.
    pub async fn warm_runs(
        &self,
        functions: &[Function],
        count: usize,
    ) -> Result<Vec<(Warm, u64)>, BenchError> {
        let mut processes = Vec::with_capacity(functions.len());
        let mut spawned = Ok(());
        for function in functions {
            match self.spawn(function).await {
                Ok(process) => processes.push(process),
                Err(error) => {
                    spawned = Err(error);
                    break;
                }
            }
        }
        let result = match spawned {
            Ok(()) => {
                self.warm_invocations(functions, &mut processes, count)
                    .await
            }
            Err(error) => Err(error),
        };
        for process in processes {
            process.stop().await;
        }
        result
    }

    async fn warm_invocations(
        &self,
        functions: &[Function],
        processes: &mut [Process],
        count: usize,
    ) -> Result<Vec<(Warm, u64)>, BenchError> {
        // Ids after all the cold runs' ranges.
        let first_offset = (MAX_COLD_RUNS + 1) * 10;
        for (function, process) in functions.iter().zip(processes.iter_mut()) {
            for index in 0..WARM_UP_INVOCATIONS {
                self.invoke(process, function, first_offset + index).await?;
            }
        }
        let mut before = Vec::with_capacity(processes.len());
        for process in processes.iter() {
            before.push((process.cpu_ticks()?, process.anon_rss_kib()?));
        }
        let mut latencies: Vec<Vec<Duration>> = functions
            .iter()
            .map(|_| Vec::with_capacity(count))
            .collect();
        let mut handshakes = vec![0; functions.len()];
        let mut store_log = StoreLog::default();
        let store_connections = self.store.map(StoreProxy::connections);
        let mut done = 0;
        while done < count {
            let block = WARM_BLOCK.min(count - done);
            for (((function, process), latencies), handshakes) in functions
                .iter()
                .zip(processes.iter_mut())
                .zip(latencies.iter_mut())
                .zip(handshakes.iter_mut())
            {
                // One function at a time talks to the stand-in, so the new
                // connections of its block are its own.
                let handshakes_before = self.stand_in.tls_handshakes();
                for index in done..done + block {
                    let offset = first_offset + WARM_UP_INVOCATIONS + index;
                    let mark = self.store_mark(function);
                    let invoked = self.invoke(process, function, offset).await?;
                    latencies.push(
                        invoked
                            .responded
                            .saturating_duration_since(invoked.handed_out),
                    );
                    if let (Some(store), Some(mark)) = (self.store, mark) {
                        self.record_store_cost(store, mark, &mut store_log)?;
                    }
                }
                *handshakes += self
                    .stand_in
                    .tls_handshakes()
                    .saturating_sub(handshakes_before);
            }
            done += block;
        }
        if let (Some(store), Some(before)) = (self.store, store_connections) {
            store_log.connections = store.connections().saturating_sub(before);
        }
        let ticks_per_second = clock_ticks_per_second();
        let mut results = Vec::with_capacity(processes.len());
        for ((((function, process), latencies), (cpu_before, anon_before)), handshakes) in functions
            .iter()
            .zip(processes.iter())
            .zip(latencies)
            .zip(before)
            .zip(handshakes)
        {
            let warm = Warm {
                latencies,
                cpu_ticks: process.cpu_ticks()?.saturating_sub(cpu_before),
                clock_ticks_per_second: ticks_per_second,
                tls_handshakes: handshakes,
                anon_growth_kib: process.anon_rss_kib()?.saturating_sub(anon_before),
                store: function.uses_store.then(|| std::mem::take(&mut store_log)),
            };
            results.push((warm, process.peak_rss_kib()?));
        }
        Ok(results)
    }

    /// Where the store's request log stands, for a function that uses it.
    fn store_mark(&self, function: &Function) -> Option<usize> {
        let store = self.store.filter(|_| function.uses_store)?;
        Some(store.mark())
    }

    /// Adds what the update just answered cost in the store: its requests
    /// since `mark`, and the window from its sendMessage to the answer to
    /// its last store request.
    fn record_store_cost(
        &self,
        store: &StoreProxy,
        mark: usize,
        log: &mut StoreLog,
    ) -> Result<(), BenchError> {
        let requests = store.since(mark);
        let sent_at: Option<Instant> = self
            .stand_in
            .calls()
            .iter()
            .find_map(|call| call.performed_at);
        let sent_at = sent_at.ok_or_else(|| {
            BenchError::Other("webhook+store: the stand-in has no time for its sendMessage".into())
        })?;
        let (count, window) = store::update_cost(sent_at, &requests)?;
        log.requests.push(count);
        log.windows.push(window);
        for request in &requests {
            *log.operations.entry(request.operation.clone()).or_default() += 1;
        }
        Ok(())
    }

    /// Gives the process the sample update with a fresh id, waits for the
    /// answer and checks it: status 200, and for the webhook, exactly one
    /// accepted sendMessage to the update's chat.
    async fn invoke(
        &self,
        process: &mut Process,
        function: &Function,
        offset: usize,
    ) -> Result<Invoked, BenchError> {
        let (event, update) = self.template.render(offset)?;
        // Telegram knows a chat before it delivers the chat's updates.
        self.stand_in.observe_update(&update);
        self.stand_in.reset();
        let request_id = format!("8f5e1c2a-0000-4000-8000-{offset:012x}");
        let invoked = process.invoke(request_id, event).await?;
        let failed = |problem: String| BenchError::Function {
            name: function.name,
            problem,
            output: String::new(),
        };
        let answer: Value = serde_json::from_slice(&invoked.body).unwrap_or(Value::Null);
        if answer.get("statusCode").and_then(Value::as_i64) != Some(200) {
            let body = String::from_utf8_lossy(&invoked.body);
            return Err(failed(format!("answered {body} instead of statusCode 200")));
        }
        if function.sends_reply && self.template.press {
            // A press is answered first, whatever follows it.
            let calls = self.stand_in.calls();
            let answered = calls.first().is_some_and(|call| {
                call.method == "answerCallbackQuery"
                    && call.params.get("callback_query_id").and_then(Value::as_str)
                        == Some(format!("bench-{offset}").as_str())
            });
            if !answered {
                let seen: String = format!("{calls:?}").chars().take(600).collect();
                return Err(failed(format!(
                    "expected answerCallbackQuery first, the stand-in saw {seen}"
                )));
            }
        } else if function.sends_reply {
            let calls = self.stand_in.calls();
            let replied = matches!(calls.as_slice(), [call]
                if call.method == "sendMessage"
                    && call.status == 200
                    && call.params.get("chat_id").and_then(Value::as_i64) == Some(self.template.chat_id));
            if !replied {
                // By characters: `String::truncate` panics inside one.
                let seen: String = format!("{calls:?}").chars().take(600).collect();
                return Err(failed(format!(
                    "expected one accepted sendMessage to chat {}, the stand-in saw {seen}",
                    self.template.chat_id
                )));
            }
        }
        Ok(invoked)
    }
}

/// `USER_HZ`, the unit of /proc/<pid>/stat's CPU times: 100 on every
/// common Linux, asked of `getconf` rather than assumed.
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|ticks| *ticks > 0)
        .unwrap_or(100)
}
