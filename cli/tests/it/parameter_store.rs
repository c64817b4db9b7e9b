//! The command-line tool reads the token from Parameter Store, as the
//! function does, against moto's server on loopback.

use telegram_stand_in::{Options, StandIn, DEFAULT_TOKEN};
use testkit::{stderr, Moto};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_reads_the_token_from_parameter_store_through_the_environment() {
    let moto = Moto::start().await;
    moto.put_secure_string("/echo-bot/token", DEFAULT_TOKEN)
        .await;
    let stand_in = StandIn::start(Options::default()).await.unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_bot"))
        .env_clear()
        .envs(moto.env())
        .env("TELEGRAM_BOT_TOKEN_PARAMETER", "/echo-bot/token")
        .env("TELEGRAM_API_BASE_URL", stand_in.base_url())
        .args(["webhook", "info"])
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stand_in.calls_to("getWebhookInfo").len(), 1);
}
