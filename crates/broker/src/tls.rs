//! TLS as Broker does it, through OpenSSL: anonymous ECDH by default (encrypted, not
//! authenticated — what a default-configured Zeek speaks), or mutual certificate verification
//! when a CA, certificate and key are configured.

use std::pin::Pin;

use openssl::pkey::PKey;
use openssl::ssl::{Ssl, SslContext, SslContextBuilder, SslMethod, SslVerifyMode, SslVersion};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

use crate::{Configuration, Error, ErrorCode};

/// The cipher of Broker's anonymous mode, usable only at security level 0.
const ANONYMOUS_CIPHERS: &str = "AECDH-AES256-SHA@SECLEVEL=0";
/// Broker's ciphers when certificates are configured.
const AUTHENTICATED_CIPHERS: &str = "HIGH:!aNULL:!MD5";

/// The TLS contexts of an endpoint (the same settings serve both directions).
pub(crate) struct Tls {
    context: SslContext,
}

fn tls_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorCode::InvalidPeeringRequest,
        format!("TLS setup: {what}: {e}"),
    )
}

impl Tls {
    /// The contexts for `config`, or `None` with `disable_ssl`.
    pub(crate) fn new(config: &Configuration) -> Result<Option<Tls>, Error> {
        if config.disable_ssl {
            return Ok(None);
        }
        let mut b =
            SslContextBuilder::new(SslMethod::tls()).map_err(|e| tls_error("context", e))?;
        b.set_min_proto_version(Some(SslVersion::TLS1_2))
            .map_err(|e| tls_error("protocol version", e))?;
        // Read whatever the socket holds at once instead of a record's header and then its
        // body: one system call per read instead of two per record.
        b.set_read_ahead(true);
        let authenticated = config.ssl_certificate.is_some()
            || config.ssl_key.is_some()
            || config.ssl_cafile.is_some()
            || config.ssl_capath.is_some();
        if authenticated {
            let (Some(cert), Some(key)) = (&config.ssl_certificate, &config.ssl_key) else {
                return Err(tls_error(
                    "configuration",
                    "a certificate needs both ssl_certificate and ssl_key",
                ));
            };
            if config.ssl_cafile.is_none() && config.ssl_capath.is_none() {
                return Err(tls_error(
                    "configuration",
                    "verifying peers needs ssl_cafile or ssl_capath",
                ));
            }
            b.set_cipher_list(AUTHENTICATED_CIPHERS)
                .map_err(|e| tls_error("ciphers", e))?;
            b.set_certificate_chain_file(cert)
                .map_err(|e| tls_error(&format!("certificate {}", cert.display()), e))?;
            let pem =
                std::fs::read(key).map_err(|e| tls_error(&format!("key {}", key.display()), e))?;
            let pkey = match &config.ssl_passphrase {
                Some(pass) => PKey::private_key_from_pem_passphrase(&pem, pass.as_bytes()),
                None => PKey::private_key_from_pem(&pem),
            }
            .map_err(|e| tls_error(&format!("key {} (wrong passphrase?)", key.display()), e))?;
            b.set_private_key(&pkey).map_err(|e| tls_error("key", e))?;
            b.check_private_key()
                .map_err(|e| tls_error("key does not match certificate", e))?;
            if let Some(ca) = &config.ssl_cafile {
                b.set_ca_file(ca)
                    .map_err(|e| tls_error(&format!("CA file {}", ca.display()), e))?;
            }
            if let Some(dir) = &config.ssl_capath {
                b.load_verify_locations(None, Some(dir))
                    .map_err(|e| tls_error(&format!("CA path {}", dir.display()), e))?;
            }
            b.set_verify(SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT);
        } else {
            // Anonymous ECDH has no TLS 1.3 cipher suite: stay at TLS 1.2, as Broker does.
            b.set_max_proto_version(Some(SslVersion::TLS1_2))
                .map_err(|e| tls_error("protocol version", e))?;
            b.set_cipher_list(ANONYMOUS_CIPHERS).map_err(|e| {
                tls_error(
                    "anonymous cipher (needs OpenSSL with AECDH at security level 0)",
                    e,
                )
            })?;
            b.set_groups_list("P-384")
                .map_err(|e| tls_error("curve P-384", e))?;
            b.set_verify(SslVerifyMode::NONE);
        }
        Ok(Some(Tls { context: b.build() }))
    }

    async fn handshake(&self, tcp: TcpStream, accept: bool) -> Result<SslStream<TcpStream>, Error> {
        let ssl = Ssl::new(&self.context).map_err(|e| tls_error("session", e))?;
        let mut stream = SslStream::new(ssl, tcp).map_err(|e| tls_error("stream", e))?;
        let result = if accept {
            Pin::new(&mut stream).accept().await
        } else {
            Pin::new(&mut stream).connect().await
        };
        result.map_err(|e| {
            let detail = e
                .ssl_error()
                .map_or_else(|| e.to_string(), |s| s.to_string());
            Error::new(
                ErrorCode::PeerInvalid,
                format!(
                    "TLS handshake failed (certificate or TLS settings do not match): {detail}"
                ),
            )
        })?;
        Ok(stream)
    }

    /// Runs the server side of the TLS handshake.
    pub(crate) async fn accept(&self, tcp: TcpStream) -> Result<SslStream<TcpStream>, Error> {
        self.handshake(tcp, true).await
    }

    /// Runs the client side of the TLS handshake.
    pub(crate) async fn connect(&self, tcp: TcpStream) -> Result<SslStream<TcpStream>, Error> {
        self.handshake(tcp, false).await
    }
}
