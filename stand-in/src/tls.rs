//! HTTPS for the stand-in, so a client can be run exactly as in production:
//! TLS on, certificates verified. At start it makes a throw-away certificate
//! authority and a leaf certificate for `127.0.0.1` and `localhost` signed by
//! it; neither key is ever written anywhere. The client trusts the stand-in
//! by adding the CA's PEM to its roots (the bot reads it from
//! `SSL_CERT_FILE`), never by turning verification off.
//!
//! Its tests, which need a running stand-in, are in `tests/it/tls.rs`.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use std::fmt;
use std::io;
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

    /// How many handshakes completed so far.
    pub(crate) fn handshakes(&self) -> u64 {
        self.handshakes.load(Ordering::Relaxed)
    }
}

/// Makes the CA and the leaf, and the acceptor that presents the leaf.
/// Returns the CA certificate as PEM.
pub(crate) fn throw_away_pki() -> io::Result<(Acceptor, String)> {
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
