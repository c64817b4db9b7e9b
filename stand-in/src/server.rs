//! A running stand-in: it listens on loopback over HTTP or HTTPS, reads
//! each request's body (up to Telegram's limit) and hands it to the router,
//! and runs webhook delivery beside the server until dropped.

use crate::answers::{error_response, AnswerBody, Cut, DroppedOnPurpose};
use crate::handle::Handle;
use crate::options::Options;
use crate::routes::route;
use crate::shared::Shared;
use crate::tls;
use crate::webhook;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Telegram refuses request bodies above this (it is the file upload limit).
const MAX_REQUEST_BYTES: usize = 50 * 1024 * 1024;

/// A running stand-in. Stops accepting connections when dropped.
#[derive(Debug)]
pub struct StandIn {
    addr: SocketAddr,
    handle: Handle,
    server: JoinHandle<()>,
    delivery: JoinHandle<()>,
    /// Set when it answers over HTTPS ([`StandIn::start_tls`]).
    tls: Option<tls::Acceptor>,
}

impl StandIn {
    /// Starts on an ephemeral loopback port.
    pub async fn start(options: Options) -> std::io::Result<StandIn> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    pub async fn start_on(addr: SocketAddr, options: Options) -> std::io::Result<StandIn> {
        Self::start_with(addr, options, None).await
    }

    /// Starts on an ephemeral loopback port, answering over HTTPS only.
    /// Returns the stand-in and its CA certificate (PEM) for the client to
    /// trust; [`StandIn::base_url`] is then `https://127.0.0.1:<port>`.
    pub async fn start_tls(options: Options) -> std::io::Result<(StandIn, String)> {
        Self::start_tls_on(SocketAddr::from(([127, 0, 0, 1], 0)), options).await
    }

    /// As [`StandIn::start_tls`], on `addr`.
    pub async fn start_tls_on(
        addr: SocketAddr,
        options: Options,
    ) -> std::io::Result<(StandIn, String)> {
        let (acceptor, ca_pem) = tls::throw_away_pki()?;
        let stand_in = Self::start_with(addr, options, Some(acceptor)).await?;
        Ok((stand_in, ca_pem))
    }

    async fn start_with(
        addr: SocketAddr,
        options: Options,
        tls: Option<tls::Acceptor>,
    ) -> std::io::Result<StandIn> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::new(options));
        let server = tokio::spawn(serve(listener, shared.clone(), tls.clone()));
        // Webhook delivery never follows redirects: Telegram counts one as a
        // failure.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(std::io::Error::other)?;
        let delivery = tokio::spawn(webhook::run(shared.clone(), http));
        Ok(StandIn {
            addr,
            handle: Handle(shared),
            server,
            delivery,
            tls,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The value for `TELEGRAM_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// How many TLS handshakes completed so far: one per new connection, so
    /// a client that reuses its connections adds none per request. Always 0
    /// over plain HTTP.
    pub fn tls_handshakes(&self) -> u64 {
        self.tls.as_ref().map_or(0, tls::Acceptor::handshakes)
    }
}

impl std::ops::Deref for StandIn {
    type Target = Handle;

    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for StandIn {
    fn drop(&mut self) {
        self.server.abort();
        self.delivery.abort();
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, tls: Option<tls::Acceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // Answers are small: without this, delayed ACKs can stall them.
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| answer(shared.clone(), request));
            let http = hyper::server::conn::http1::Builder::new();
            // An error here is a connection the stand-in dropped on purpose,
            // a client that went away, or one that does not trust the CA;
            // none is worth a log line.
            let _ = match tls {
                None => http.serve_connection(TokioIo::new(stream), service).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => http.serve_connection(TokioIo::new(stream), service).await,
                    Err(_) => return,
                },
            };
        });
    }
}

/// Answers one request, or cuts its connection when a fault says so.
async fn answer(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<AnswerBody>, DroppedOnPurpose> {
    let (parts, body) = request.into_parts();
    let body = match Limited::new(body, MAX_REQUEST_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return Ok(error_response(413, "Request Entity Too Large", None).map(AnswerBody::Whole))
        }
    };
    match route(&shared, parts, body).await {
        Ok(response) => Ok(response.map(AnswerBody::Whole)),
        Err(Cut::Drop) => Err(DroppedOnPurpose),
        Err(Cut::MidAnswer(response)) => Ok(response.map(AnswerBody::half_of)),
    }
}
