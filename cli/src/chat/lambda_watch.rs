//! bot chat --watch: the function under `cargo lambda watch`, rebuilt on every
//! change, started on a free port and stopped with its process group.

use super::*;

pub(super) struct WatchProcess {
    pub(super) child: tokio::process::Child,
    pub(super) port: u16,
    pub(super) log: PathBuf,
}

/// The function's package: the workspace root, one level above this one.
pub(super) fn project_dir() -> PathBuf {
    let built_in = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if built_in.join("template.yaml").exists() {
        built_in
    } else {
        PathBuf::from(".")
    }
}

pub(super) async fn start_watch(vars: &[(&str, String)]) -> Result<WatchProcess, ChatError> {
    let present = tokio::process::Command::new("cargo")
        .args(["lambda", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .is_ok_and(|s| s.success());
    if !present {
        return Err(ChatError::NoCargoLambda);
    }
    let port = free_port().map_err(|e| ChatError::Watch(e.to_string()))?;
    // The log lives outside the source tree: watch rebuilds on any change in it.
    let log = std::env::temp_dir().join(format!("bot-chat-watch-{}.log", std::process::id()));
    let log_file = std::fs::File::create(&log).map_err(|e| ChatError::Watch(e.to_string()))?;
    let err_file = log_file
        .try_clone()
        .map_err(|e| ChatError::Watch(e.to_string()))?;
    let mut command = tokio::process::Command::new("cargo");
    command
        .args([
            "lambda",
            "watch",
            "--invoke-address",
            "127.0.0.1",
            "--invoke-port",
        ])
        .arg(port.to_string())
        .current_dir(project_dir())
        // The assistant is on only as --assistant says: none of this
        // shell's ASSISTANT_* reaches the function otherwise.
        .env_remove(ASSISTANT_MODEL)
        .env_remove(ASSISTANT_BASE_URL)
        .env_remove(ASSISTANT_API_KEY)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .env("CARGO_LAMBDA_COMPILER", "cargo")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(err_file))
        .kill_on_drop(true);
    let mut child = command
        .spawn()
        .map_err(|e| ChatError::Watch(format!("cannot start: {e}")))?;
    // A TCP connect, not an HTTP request: any path on watch is an invocation.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(ChatError::Watch(format!(
                "exited ({status}); see {}",
                log.display()
            )));
        }
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill().await;
            return Err(ChatError::Watch(format!(
                "not listening after 60 s; see {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(WatchProcess { child, port, log })
}

/// TERM lets watch stop the function it started; KILL only if it lingers.
pub(super) async fn stop_watch(mut process: WatchProcess) {
    if let Some(pid) = process.child.id() {
        let _ = tokio::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await;
    }
    if tokio::time::timeout(Duration::from_secs(5), process.child.wait())
        .await
        .is_err()
    {
        let _ = process.child.kill().await;
    }
    let _ = std::fs::remove_file(&process.log);
}

pub(super) fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
