//! TLS with rustls, as mongod's `net.tls` options describe it.
//!
//! `--tlsMode disabled` (the default) serves plain TCP; `requireTLS` only TLS;
//! `allowTLS` and `preferTLS` both, told apart by the first bytes a client sends: a TLS
//! handshake record starts `16 03 0x` (type, then the protocol version), a MongoDB
//! message with its little-endian length, whose third byte is 0 for any first message
//! under 64 KiB. `--tlsCertificateKeyFile` is one PEM file holding the
//! server's certificate chain and its private key. With `--tlsCAFile`, client
//! certificates are verified against those CAs and required, unless
//! `--tlsAllowConnectionsWithoutCertificates`.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// `net.tls.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disabled,
    AllowTls,
    PreferTls,
    RequireTls,
}

impl TlsMode {
    pub fn parse(s: &str) -> Option<TlsMode> {
        Some(match s {
            "disabled" => TlsMode::Disabled,
            "allowTLS" => TlsMode::AllowTls,
            "preferTLS" => TlsMode::PreferTls,
            "requireTLS" => TlsMode::RequireTls,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            TlsMode::Disabled => "disabled",
            TlsMode::AllowTls => "allowTLS",
            TlsMode::PreferTls => "preferTLS",
            TlsMode::RequireTls => "requireTLS",
        }
    }
}

/// The TLS settings of a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    pub mode: TlsMode,
    /// PEM: the certificate chain and the private key.
    pub certificate_key_file: PathBuf,
    /// PEM: the CAs that client certificates must chain to.
    pub ca_file: Option<PathBuf>,
    pub allow_connections_without_certificates: bool,
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no {what}")]
    Missing { path: String, what: &'static str },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// The acceptor for `config`: its certificate, key and client verification.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let path = config.certificate_key_file.display().to_string();
    let pem = read(&config.certificate_key_file)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Missing {
            path,
            what: "certificate",
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| TlsError::Missing {
        path: path.clone(),
        what: "private key",
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &config.ca_file {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let ca_path = ca.display().to_string();
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(&read(ca)?) {
                let cert = cert.map_err(|e| TlsError::Invalid {
                    path: ca_path.clone(),
                    message: e.to_string(),
                })?;
                roots.add(cert).map_err(|e| TlsError::Invalid {
                    path: ca_path.clone(),
                    message: e.to_string(),
                })?;
            }
            if roots.is_empty() {
                return Err(TlsError::Missing {
                    path: ca_path,
                    what: "CA certificate",
                });
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if config.allow_connections_without_certificates {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Config(e.to_string()))?,
            )
        }
    };
    let server = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Invalid {
            path: config.certificate_key_file.display().to_string(),
            message: e.to_string(),
        })?;
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// Whether the first bytes of a connection start a TLS handshake record.
fn is_handshake(first: &[u8]) -> bool {
    matches!(first, [0x16, 0x03, 1..=4, ..])
}

/// A client's socket: plain TCP or TLS over it.
pub enum Socket {
    Plain(SharedTcp),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Socket {
    /// The plain TCP stream, for a writer outside the connection's task (a change
    /// stream's answer written by the thread that woke it, `crate::answer`); `None`
    /// under TLS, whose session only the connection's task may drive.
    pub fn shared(&self) -> Option<&Arc<TcpStream>> {
        match self {
            Socket::Plain(s) => Some(&s.0),
            Socket::Tls(_) => None,
        }
    }
}

/// A plain TCP stream that a connection reads and writes, and that another thread may
/// write to between the connection's own writes (see [`Socket::shared`]). Reads and
/// writes go through the stream's readiness, as tokio's own `TcpStream` does.
pub struct SharedTcp(pub Arc<TcpStream>);

impl SharedTcp {
    pub fn new(stream: TcpStream) -> SharedTcp {
        SharedTcp(Arc::new(stream))
    }

    /// The stream itself, when no other writer holds it (between requests).
    pub fn into_inner(self) -> Result<TcpStream, SharedTcp> {
        Arc::try_unwrap(self.0).map_err(SharedTcp)
    }
}

impl tokio::io::AsyncRead for SharedTcp {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        loop {
            std::task::ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match self.0.try_read(unfilled) {
                Ok(n) => {
                    buf.advance(n);
                    return std::task::Poll::Ready(Ok(()));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return std::task::Poll::Ready(Err(e)),
            }
        }
    }
}

impl tokio::io::AsyncWrite for SharedTcp {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        loop {
            std::task::ready!(self.0.poll_write_ready(cx))?;
            match self.0.try_write(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                done => return std::task::Poll::Ready(done),
            }
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let done = rustix::net::shutdown(self.0.as_ref(), rustix::net::Shutdown::Write);
        std::task::Poll::Ready(done.map_err(std::io::Error::from))
    }
}

/// How a new connection begins, under `mode`: TLS when the client starts a handshake
/// (always required under `requireTLS`), plain otherwise.
pub async fn establish(
    stream: TcpStream,
    mode: TlsMode,
    acceptor: Option<&TlsAcceptor>,
) -> std::io::Result<Socket> {
    let Some(acceptor) = acceptor.filter(|_| mode != TlsMode::Disabled) else {
        return Ok(Socket::Plain(SharedTcp::new(stream)));
    };
    // The client speaks first in both protocols; wait (briefly) for three bytes.
    let mut first = [0u8; 3];
    let mut n = stream.peek(&mut first).await?;
    for _ in 0..100 {
        if n == 0 || n == first.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        n = stream.peek(&mut first).await?;
    }
    let handshake = is_handshake(&first[..n]);
    match (handshake, mode) {
        (true, _) => Ok(Socket::Tls(Box::new(acceptor.accept(stream).await?))),
        (false, TlsMode::RequireTls) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "a plain connection to a server that requires TLS",
        )),
        (false, _) => Ok(Socket::Plain(SharedTcp::new(stream))),
    }
}

impl tokio::io::AsyncRead for Socket {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Socket::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl tokio::io::AsyncWrite for Socket {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Socket::Plain(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Socket::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => std::pin::Pin::new(s).poll_flush(cx),
            Socket::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Socket::Plain(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Socket::Tls(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handshakes_are_told_from_mongodb_messages() {
        assert!(is_handshake(&[0x16, 0x03, 0x01]));
        assert!(is_handshake(&[0x16, 0x03, 0x03, 0x00]));
        // A 278-byte hello also starts with 0x16, but its length's third byte is 0.
        assert!(!is_handshake(&278u32.to_le_bytes()));
        assert!(!is_handshake(&[0x16]));
        assert!(!is_handshake(&[]));
        assert_eq!(TlsMode::parse("requireTLS"), Some(TlsMode::RequireTls));
        assert_eq!(TlsMode::parse("sslOnly"), None);
    }
}
