//! HTTPS: a client that trusts the stand-in's throw-away CA gets answers,
//! by IP and by name; any other client, or plain HTTP, gets nothing.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::io;
use std::sync::Arc;
use telegram_stand_in::{Options, StandIn};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn connector(roots: rustls::RootCertStore) -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

fn trusting(ca_pem: &str) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(certificate.unwrap()).unwrap();
    }
    connector(roots)
}

/// Sends one HTTP/1.1 request over a verified connection to `name`.
async fn get(
    connector: &TlsConnector,
    stand_in: &StandIn,
    name: &str,
    path: &str,
) -> io::Result<String> {
    let tcp = TcpStream::connect(stand_in.addr()).await?;
    let name = ServerName::try_from(name.to_owned()).map_err(io::Error::other)?;
    let mut tls = connector.connect(name, tcp).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    tls.read_to_string(&mut answer).await?;
    Ok(answer)
}

#[tokio::test]
async fn a_client_trusting_the_ca_gets_answers_by_ip_and_by_name() {
    let (stand_in, ca_pem) = StandIn::start_tls(Options::default()).await.unwrap();
    assert!(stand_in.base_url().starts_with("https://127.0.0.1:"));
    let client = trusting(&ca_pem);
    let path = format!("/bot{}/getMe", stand_in.token());
    // The names the leaf certificate is made for.
    for name in ["127.0.0.1", "localhost"] {
        let answer = get(&client, &stand_in, name, &path).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{name}: {answer}");
        assert!(answer.contains(r#""username":"EchoLambdaBot""#), "{answer}");
    }
    assert_eq!(stand_in.calls_to("getMe").len(), 2);
    assert_eq!(stand_in.tls_handshakes(), 2, "one per connection");
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_ca_is_refused() {
    let (stand_in, _) = StandIn::start_tls(Options::default()).await.unwrap();
    // Another stand-in's CA: right shape, wrong key.
    let (_, other_ca) = StandIn::start_tls(Options::default()).await.unwrap();
    let path = format!("/bot{}/getMe", stand_in.token());
    for client in [
        trusting(&other_ca),
        connector(rustls::RootCertStore::empty()),
    ] {
        let error = get(&client, &stand_in, "127.0.0.1", &path)
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("invalid peer certificate"),
            "{error}"
        );
    }
    assert!(stand_in.calls().is_empty());
    assert_eq!(stand_in.tls_handshakes(), 0);
}

#[tokio::test]
async fn a_name_the_certificate_does_not_cover_is_refused() {
    let (stand_in, ca_pem) = StandIn::start_tls(Options::default()).await.unwrap();
    let path = format!("/bot{}/getMe", stand_in.token());
    let error = get(&trusting(&ca_pem), &stand_in, "api.telegram.org", &path)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("invalid peer certificate"),
        "{error}"
    );
}

#[tokio::test]
async fn plain_http_is_not_answered_on_the_tls_port() {
    let (stand_in, _) = StandIn::start_tls(Options::default()).await.unwrap();
    let mut tcp = TcpStream::connect(stand_in.addr()).await.unwrap();
    tcp.write_all(b"GET /botx/getMe HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    // The handshake fails and the connection closes; a TLS alert at most.
    let _ = tcp.read_to_end(&mut answer).await;
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1"));
    assert!(stand_in.calls().is_empty());
}
