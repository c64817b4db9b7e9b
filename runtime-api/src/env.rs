//! The environment Lambda gives a function: the variables the runtime, the
//! SDK and the function's logging read. `bot chat` and the bench start the
//! function with it, so that it runs as it does on Lambda.

/// Lambda's variables for a function named `name` with `memory_mb` of
/// memory in `region` (`AWS_LAMBDA_RUNTIME_API` is the Runtime API's own).
pub fn lambda_env(name: &str, memory_mb: u32, region: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_LAMBDA_FUNCTION_NAME", name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            "2026/01/01/[$LATEST]0123456789abcdef0123456789abcdef".to_owned(),
        ),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", region.to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
    ]
}
