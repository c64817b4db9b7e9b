//! HTTPS for the stand-in, so a client can be run exactly as in production:
//! TLS on, certificates verified. At start it makes a throw-away certificate
//! authority and a leaf certificate for `127.0.0.1` and `localhost` signed by
//! it; neither key is ever written anywhere. The client trusts the stand-in
//! by adding the CA's PEM to its roots (the bot reads it from
//! `SSL_CERT_FILE`), never by turning verification off.

use crate::{Options, StandIn};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that connects and never finishes its handshake is dropped after
/// this, so it cannot hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Names the leaf certificate is valid for: what a loopback base URL can use.
const LEAF_NAMES: [&str; 2] = ["127.0.0.1", "localhost"];

/// The server side of the stand-in's TLS: presents the leaf certificate,
/// and counts the handshakes that succeeded.
#[derive(Clone)]
pub(crate) struct Acceptor {
    inner: TlsAcceptor,
    handshakes: Arc<AtomicU64>,
}

impl fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acceptor")
            .field("handshakes", &self.handshakes)
            .finish_non_exhaustive()
    }
}

impl Acceptor {
    /// Runs the server half of the handshake on a freshly accepted connection.
    pub(crate) async fn accept(&self, stream: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        // As real front ends do (nginx's tcp_nodelay is on by default). With
        // Nagle's algorithm on, an answer that follows the session tickets in
        // a second segment can wait for the client's delayed ACK: about 40 ms
        // on Linux, once every twenty or so new connections in the bench.
        let _ = stream.set_nodelay(true);
        let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.inner.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        self.handshakes.fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }
}

impl StandIn {
    /// Starts on an ephemeral loopback port, answering over HTTPS only.
    /// Returns the stand-in and its CA certificate (PEM) for the client to
    /// trust; [`StandIn::base_url`] is then `https://127.0.0.1:<port>`.
    pub async fn start_tls(options: Options) -> io::Result<(StandIn, String)> {
        Self::start_tls_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// As [`StandIn::start_tls`], on `addr`.
    pub async fn start_tls_on(addr: SocketAddr, options: Options) -> io::Result<(StandIn, String)> {
        let (acceptor, ca_pem) = throw_away_pki()?;
        let stand_in = StandIn::start_with(addr, options, Some(acceptor)).await?;
        Ok((stand_in, ca_pem))
    }

    /// How many TLS handshakes completed so far: one per new connection, so
    /// a client that reuses its connections adds none per request. Always 0
    /// over plain HTTP.
    pub fn tls_handshakes(&self) -> u64 {
        self.tls
            .as_ref()
            .map_or(0, |tls| tls.handshakes.load(Ordering::Relaxed))
    }
}

/// Makes the CA and the leaf, and the acceptor that presents the leaf.
/// Returns the CA certificate as PEM.
fn throw_away_pki() -> io::Result<(Acceptor, String)> {
    let ca_key = KeyPair::generate().map_err(io::Error::other)?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "telegram-stand-in throw-away CA");
    // Path length 0: this CA can sign the leaf and nothing that signs further.
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(io::Error::other)?;
    let ca_pem = ca_cert.pem();
    let issuer = Issuer::new(ca_params, ca_key);

    let names: Vec<String> = LEAF_NAMES.iter().map(|name| (*name).to_owned()).collect();
    let mut leaf_params = CertificateParams::new(names).map_err(io::Error::other)?;
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "telegram-stand-in");
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf_params.use_authority_key_identifier_extension = true;
    let leaf_key = KeyPair::generate().map_err(io::Error::other)?;
    let leaf_cert = leaf_params
        .signed_by(&leaf_key, &issuer)
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));

    // The provider is named rather than taken from the process default: in a
    // build where another crate also enables aws-lc-rs, rustls cannot pick a
    // default and would panic.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        // Only the leaf, as real servers do: the CA is the client's trust
        // anchor and sending it would prove nothing.
        .with_single_cert(vec![leaf_cert.der().clone()], key)
        .map_err(io::Error::other)?;
    // The stand-in speaks HTTP/1.1 only; saying so stops an h2-capable client
    // from trying HTTP/2 on the connection.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = Acceptor {
        inner: TlsAcceptor::from(Arc::new(config)),
        handshakes: Arc::new(AtomicU64::new(0)),
    };
    Ok((acceptor, ca_pem))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
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
        for name in LEAF_NAMES {
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
}
