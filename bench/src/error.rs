//! Why a bench run stops: every failure ends the run, since figures from a
//! function that misbehaved would mean nothing.

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Something the person running the bench can fix: a missing binary, a
    /// bad sample event.
    #[error("{0}")]
    Usage(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    #[error("starting the Runtime API: {0}")]
    RuntimeApi(#[from] lambda_runtime_api::StartError),
    /// A function misbehaved; its last output lines say why, if it wrote any.
    #[error("{name}: {problem}{}", if output.is_empty() { String::new() } else { format!("\n  its last output:{output}") })]
    Function {
        name: &'static str,
        problem: String,
        output: String,
    },
    #[error("{0}")]
    Other(String),
}

impl BenchError {
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        BenchError::Io {
            context: context.into(),
            source,
        }
    }
}
