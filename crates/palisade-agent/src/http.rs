//! One HTTPS request over a fresh TLS 1.3 connection (HTTP/1.1, hyper), trusting only the roots
//! in the given client configuration. What the agent and the simulator need of Palisade's REST
//! API and EST; responses are capped at 1 MiB, except ranged downloads (`get_from`), read chunk by
//! chunk and bounded by their reader.

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

/// Opens a connection to `url`'s host; the request sender and the request's head (path, `Host`).
async fn connect(
    tls: Arc<rustls::ClientConfig>,
    method: hyper::Method,
    url: &str,
) -> Result<
    (hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>, hyper::http::request::Builder),
    String,
> {
    let (host, port) = host_port(url, 443).ok_or("not a URL")?;
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
    let stream = tokio_rustls::TlsConnector::from(tls).connect(name, tcp).await.map_err(|e| e.to_string())?;
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let path = url.split_once("://").and_then(|(_, r)| r.find('/').and_then(|i| r.get(i..))).unwrap_or("/");
    let request =
        hyper::Request::builder().method(method).uri(path).header(hyper::header::HOST, format!("{host}:{port}"));
    Ok((sender, request))
}

/// Sends one request; (status, body). The error says what failed (connect, TLS, HTTP).
pub async fn send(
    tls: Arc<rustls::ClientConfig>,
    method: hyper::Method,
    url: &str,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<(u16, bytes::Bytes), String> {
    let (mut sender, mut request) = connect(tls, method, url).await?;
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

/// A response body received chunk by chunk (no size cap: the reader bounds what it takes).
#[derive(Debug)]
pub struct Streamed {
    pub status: u16,
    /// The offset in the resource of the body's first byte (206: the range asked for; else 0).
    pub start: u64,
    body: hyper::body::Incoming,
}

impl Streamed {
    /// The next chunk of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, String> {
        while let Some(frame) = self.body.frame().await {
            if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

/// A GET of `url` from byte `from` on (`Range: bytes=from-` unless `from` is 0): a 206 must start
/// at `from`, a 200 (the whole resource) is taken only when `from` is 0. Other statuses are
/// returned as they are.
pub async fn get_from(tls: Arc<rustls::ClientConfig>, url: &str, from: u64) -> Result<Streamed, String> {
    let (mut sender, mut request) = connect(tls, hyper::Method::GET, url).await?;
    if from > 0 {
        request = request.header(hyper::header::RANGE, format!("bytes={from}-"));
    }
    let request = request.body(http_body_util::Full::new(bytes::Bytes::new())).map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let start = match status {
        206 => {
            let range = response.headers().get(hyper::header::CONTENT_RANGE).and_then(|v| v.to_str().ok());
            let start = range.and_then(content_range_start).ok_or("206 without a valid Content-Range")?;
            if start != from {
                return Err(format!("asked for bytes from {from}, the server sent from {start}"));
            }
            start
        }
        200 if from > 0 => return Err("the server ignored the range".into()),
        _ => 0,
    };
    Ok(Streamed { status, start, body: response.into_body() })
}

/// The first byte of `Content-Range: bytes N-M/T`.
fn content_range_start(value: &str) -> Option<u64> {
    value.strip_prefix("bytes ")?.split_once('-')?.0.trim().parse().ok()
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

    #[test]
    fn content_range_gives_the_first_byte() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes */200"), None);
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
