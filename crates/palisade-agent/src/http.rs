//! One HTTPS request over a fresh TLS 1.3 connection (HTTP/1.1, hyper), trusting only the roots
//! in the given client configuration. What the agent and the simulator need of Palisade's REST
//! API and EST; responses are capped at 1 MiB.

use std::sync::Arc;

use http_body_util::BodyExt as _;
use rustls::pki_types::ServerName;

/// A TLS 1.3 client configuration trusting only the certificates in `ca_pem`, authenticating
/// with `identity` (chain, key) when given. The error says what was wrong.
pub fn client_config(
    ca_pem: &[u8],
    identity: Option<(Vec<rustls::pki_types::CertificateDer<'static>>, rustls::pki_types::PrivateKeyDer<'static>)>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem) {
        roots.add(c.map_err(|e| format!("CA: {e}"))?).map_err(|e| format!("CA: {e}"))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    Ok(Arc::new(match identity {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| e.to_string())?,
        None => builder.with_no_client_auth(),
    }))
}

/// `scheme://host:port/…` → (host, port); `default_port` when the URL names none.
pub fn host_port(url: &str, default_port: u16) -> Option<(String, u16)> {
    let rest = url.split_once("://")?.1.split('/').next()?;
    match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || h.starts_with('[') => {
            Some((h.trim_matches(['[', ']']).to_owned(), p.parse().ok()?))
        }
        _ => Some((rest.trim_matches(['[', ']']).to_owned(), default_port)),
    }
}

/// Sends one request; (status, body). The error says what failed (connect, TLS, HTTP).
pub async fn send(
    tls: Arc<rustls::ClientConfig>,
    method: hyper::Method,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(u16, bytes::Bytes), String> {
    let (host, port) = host_port(url, 443).ok_or("not a URL")?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let path = url.split_once("://").and_then(|(_, r)| r.find('/').and_then(|i| r.get(i..))).unwrap_or("/");
    let mut request =
        hyper::Request::builder().method(method).uri(path).header(hyper::header::HOST, format!("{host}:{port}"));
    for (k, v) in headers {
        request = request.header(*k, v);
    }
    let request = request.body(http_body_util::Full::new(bytes::Bytes::from(body))).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = http_body_util::Limited::new(response.into_body(), 1024 * 1024)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_host_and_port() {
        assert_eq!(host_port("mqtts://palisade.example:8883", 1), Some(("palisade.example".into(), 8883)));
        assert_eq!(host_port("https://127.0.0.1:8444/x/y", 1), Some(("127.0.0.1".into(), 8444)));
        assert_eq!(host_port("mqtts://palisade.example", 8883), Some(("palisade.example".into(), 8883)));
        assert_eq!(host_port("https://[::1]:8444", 1), Some(("::1".into(), 8444)));
        assert_eq!(host_port("no scheme", 1), None);
    }
}
