//! TLS as Broker does it, through OpenSSL: anonymous ECDH by default (encrypted, not
//! authenticated — what a default-configured Zeek speaks), or mutual certificate verification
//! when a CA, certificate and key are configured.

use std::pin::Pin;

use openssl::dh::Dh;
use openssl::pkey::PKey;
use openssl::ssl::{
    Ssl, SslContext, SslContextBuilder, SslMethod, SslOptions, SslVerifyMode, SslVersion,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_openssl::SslStream;

use crate::{Configuration, Error, ErrorCode};

/// The ciphers of the anonymous mode, usable only at security level 0: Broker's own
/// (`AECDH-AES256-SHA`, what a default-configured Zeek offers) and, preferred where both sides
/// have it, anonymous DHE with AES-GCM. An AEAD record costs a small fraction of a CBC record
/// with HMAC-SHA1 and a random IV (OpenSSL 3 spends some 25,000 instructions on each of
/// those), and GCM is the sounder construction.
const ANONYMOUS_CIPHERS: &str = "ADH-AES256-GCM-SHA384:AECDH-AES256-SHA@SECLEVEL=0";
/// The finite-field group for anonymous DHE: RFC 7919's ffdhe3072 (128-bit strength), as
/// `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe3072` prints it.
const FFDHE3072: &str = "\
-----BEGIN DH PARAMETERS-----\n\
MIIBiAKCAYEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n\
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n\
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\n\
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n\
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\n\
ssbzSibBsu/6iGtCOGEfz9zeNVs7ZRkDW7w09N75nAI4YbRvydbmyQd62R0mkff3\n\
7lmMsPrBhtkcrv4TCYUTknC0EwyTvEN5RPT9RFLi103TZPLiHnH1S/9croKrnJ32\n\
nuhtK8UiNjoNq8Uhl5sN6todv5pC1cRITgq80Gv6U93vPBsg7j/VnXwl5B0rZsYu\n\
N///////////AgEC\n\
-----END DH PARAMETERS-----\n";
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
        // No renegotiation, so that a write never has to read: publishers write from their own
        // threads (see `connection::Outbox`), where a read would leave the socket's read
        // readiness with a waker that wakes nobody instead of the connection's reader.
        b.set_options(SslOptions::NO_RENEGOTIATION);
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
            let dh = Dh::params_from_pem(FFDHE3072.as_bytes())
                .map_err(|e| tls_error("DH group ffdhe3072", e))?;
            b.set_tmp_dh(&dh).map_err(|e| tls_error("DH group", e))?;
            b.set_verify(SslVerifyMode::NONE);
        }
        Ok(Some(Tls { context: b.build() }))
    }

    async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        tcp: S,
        accept: bool,
    ) -> Result<SslStream<S>, Error> {
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
    pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        tcp: S,
    ) -> Result<SslStream<S>, Error> {
        self.handshake(tcp, true).await
    }

    /// Runs the client side of the TLS handshake.
    pub(crate) async fn connect<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        tcp: S,
    ) -> Result<SslStream<S>, Error> {
        self.handshake(tcp, false).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::{TcpListener, TcpStream};

    /// A TLS context set up the way a default-configured Zeek (C++ Broker) sets up its own:
    /// anonymous ECDH with AES-256-CBC and SHA-1 only.
    fn zeek_like() -> SslContext {
        let mut b = SslContextBuilder::new(SslMethod::tls()).unwrap();
        b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
        b.set_cipher_list("AECDH-AES256-SHA@SECLEVEL=0").unwrap();
        b.set_groups_list("P-384").unwrap();
        b.set_verify(SslVerifyMode::NONE);
        b.build()
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    async fn handshake_with(ctx: &SslContext, tcp: TcpStream, accept: bool) -> String {
        let mut s = SslStream::new(Ssl::new(ctx).unwrap(), tcp).unwrap();
        if accept {
            Pin::new(&mut s).accept().await.unwrap();
        } else {
            Pin::new(&mut s).connect().await.unwrap();
        }
        s.ssl().current_cipher().unwrap().name().to_owned()
    }

    #[tokio::test]
    async fn two_of_ours_agree_on_gcm_and_a_default_zeek_still_gets_its_cipher() {
        let ours = Tls::new(&Configuration::default()).unwrap().unwrap();

        let (c, s) = pair().await;
        let (client, server) = tokio::join!(ours.connect(c), ours.accept(s));
        let cipher = client.unwrap().ssl().current_cipher().unwrap().name();
        assert_eq!(cipher, "ADH-AES256-GCM-SHA384");
        assert!(server.is_ok());

        // Zeek dials us, and we dial Zeek: both settle on Broker's own anonymous cipher.
        let zeek = zeek_like();
        let (c, s) = pair().await;
        let (theirs, server) = tokio::join!(handshake_with(&zeek, c, false), ours.accept(s));
        assert_eq!(theirs, "AECDH-AES256-SHA");
        assert!(server.is_ok());
        let (c, s) = pair().await;
        let (client, theirs) = tokio::join!(ours.connect(c), handshake_with(&zeek, s, true));
        assert_eq!(theirs, "AECDH-AES256-SHA");
        assert!(client.is_ok());
    }
}
