//! Outbound HTTPS for the whole process: one TLS configuration and one HTTP stack (reqwest, on
//! hyper and rustls), for the Nango client and, through [`aws_http_client`], for the AWS SDK.
//!
//! Why one: the AWS SDK's own connector and reqwest's platform verifier each read and parsed the
//! system's root certificates (the bundle and every file of `/etc/ssl/certs`) at every cold start,
//! and that was most of the init time. Now the trusted roots are Mozilla's, compiled in
//! (`webpki-roots`, kept by the rustls project and updated from Mozilla's CCADB data): nothing is
//! read or parsed at cold start, and the same roots and checks hold on a laptop and on Lambda.
//! The checks are unchanged: rustls's WebPKI verifier (chain to a trusted root, validity dates,
//! key usage, the server's name), TLS 1.2 and 1.3 only. To pick up changes to the root program,
//! update the crate (`cargo update -p webpki-roots`) and redeploy.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::{
    HttpConnector, HttpConnectorFuture, SharedHttpClient, SharedHttpConnector, http_client_fn,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_types::body::SdkBody;

/// The one TLS configuration of the process. Cloning shares its verifier and roots.
#[derive(Clone)]
pub struct Tls(rustls::ClientConfig);

impl Tls {
    pub fn new() -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring's provider supports TLS 1.2 and 1.3")
            .with_root_certificates(roots)
            .with_no_client_auth();
        Tls(config)
    }

    /// A reqwest client builder on this TLS configuration. Redirects are never followed: neither
    /// Nango's API nor AWS's redirect, and following one could carry a credential elsewhere.
    pub fn client_builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .tls_backend_preconfigured(self.0.clone())
            .redirect(reqwest::redirect::Policy::none())
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls::new()
    }
}

/// The AWS SDK's HTTP client: `client` (built from [`Tls::client_builder`], with the SDK's connect
/// timeout) carries every SDK request. The SDK keeps what it does itself (signing, retries,
/// attempt and operation timeouts); this only moves bytes and says which failures are transient.
pub fn aws_http_client(client: reqwest::Client) -> SharedHttpClient {
    let connector = SharedHttpConnector::new(ReqwestConnector(client));
    http_client_fn(move |_settings, _components| connector.clone())
}

/// A fresh reqwest client for the AWS SDK, on `tls`.
pub fn aws_reqwest_client(
    tls: &Tls,
    connect_timeout: Duration,
) -> Result<reqwest::Client, reqwest::Error> {
    tls.client_builder()
        .connect_timeout(connect_timeout)
        .build()
}

#[derive(Debug)]
struct ReqwestConnector(reqwest::Client);

impl HttpConnector for ReqwestConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let client = self.0.clone();
        HttpConnectorFuture::new(async move {
            let request = request
                .try_into_http1x()
                .map_err(|err| ConnectorError::user(err.into()))?;
            let (parts, body) = request.into_parts();
            // DynamoDB and Secrets Manager requests are JSON documents the SDK holds in memory.
            let body = body.bytes().map(<[u8]>::to_vec).ok_or_else(|| {
                ConnectorError::user("a streaming request body is not supported here".into())
            })?;
            let mut response = client
                .request(parts.method, parts.uri.to_string())
                .headers(parts.headers)
                .body(body)
                .send()
                .await
                .map_err(connector_error)?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            // Read whole: the SDK's responses here are small JSON documents, and a body error is
            // then a connector error the SDK's retry policy sees.
            let body = response.bytes().await.map_err(connector_error)?;
            let mut answer = http::Response::new(SdkBody::from(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            HttpResponse::try_from(answer).map_err(|err| ConnectorError::other(err.into(), None))
        })
    }
}

/// Timeouts and broken connections are transient (the SDK retries them); the rest is not.
fn connector_error(err: reqwest::Error) -> ConnectorError {
    if err.is_timeout() {
        ConnectorError::timeout(err.into())
    } else if err.is_connect() || err.is_request() || err.is_body() {
        ConnectorError::io(err.into())
    } else {
        ConnectorError::other(err.into(), None)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use rustls::{CertificateError, ClientConnection, Error, ServerConfig, ServerConnection};

    use super::*;

    const CERT: &[u8] = include_bytes!("../tests/fixtures/self-signed-localhost.cert.pem");
    const KEY: &[u8] = include_bytes!("../tests/fixtures/self-signed-localhost.key.pem");

    /// A TLS handshake in memory between our client configuration and a server presenting `CERT`
    /// (valid for `localhost`, signed by no one we trust). Returns the client's verdict.
    fn handshake(server_name: &'static str) -> Result<(), Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server_config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(CERT).expect("certificate")],
                PrivateKeyDer::from_pem_slice(KEY).expect("key"),
            )
            .expect("server config");
        let mut server = ServerConnection::new(Arc::new(server_config)).expect("server");
        let name = ServerName::try_from(server_name).expect("server name");
        let mut client = ClientConnection::new(Arc::new(Tls::new().0), name).expect("client");
        for _ in 0..10 {
            let mut wire = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut wire).expect("client writes");
            }
            server.read_tls(&mut wire.as_slice()).expect("server reads");
            server
                .process_new_packets()
                .expect("server accepts the client");
            let mut wire = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut wire).expect("server writes");
            }
            client.read_tls(&mut wire.as_slice()).expect("client reads");
            client.process_new_packets()?;
            if !client.is_handshaking() {
                return Ok(());
            }
        }
        panic!("the handshake neither finished nor failed");
    }

    #[test]
    fn a_certificate_from_an_untrusted_issuer_is_refused() {
        // A well-formed server certificate for the right name: its issuer is the only fault.
        let verdict = handshake("localhost");
        assert!(
            matches!(
                verdict,
                Err(Error::InvalidCertificate(CertificateError::UnknownIssuer))
            ),
            "{verdict:?}"
        );
    }

    #[test]
    fn the_trusted_roots_are_mozillas() {
        // Amazon Root CA 1, which signs the AWS endpoints' certificates, is one of them.
        let amazon_root_ca_1 = webpki_roots::TLS_SERVER_ROOTS.iter().any(|anchor| {
            anchor
                .subject
                .as_ref()
                .windows(b"Amazon Root CA 1".len())
                .any(|w| w == b"Amazon Root CA 1")
        });
        assert!(amazon_root_ca_1);
        assert!(webpki_roots::TLS_SERVER_ROOTS.len() > 100);
    }
}
