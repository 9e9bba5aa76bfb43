//! Signed firmware updates over HTTP: the console API (online keys, roots and targets signed
//! offline, image upload, the catalogue, per-device assignments) and, on the device listener,
//! the TUF repository, the caller's assignment and the images (with byte ranges, to resume).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};

use axum::Json;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use palisade_core::{DeviceId, LifecycleState, Permission};
use palisade_proto::ErrorBody;
use palisade_store::firmware::Role;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncSeekExt as _, AsyncWriteExt as _};
use utoipa::ToSchema;

use super::error::ApiError;
use super::extract::{ApiJson, Caller, PeerCerts, body_bytes};
use crate::AppState;
use crate::firmware::{self, FirmwareError, MAX_METADATA_BYTES};

impl From<FirmwareError> for ApiError {
    fn from(e: FirmwareError) -> Self {
        match e {
            FirmwareError::Refused { field, reason } => palisade_core::InvalidField::new(field, reason).into(),
            FirmwareError::NotFound(what) => Self::not_found(format!("{what} not found")),
            FirmwareError::Conflict(m) => Self::new(StatusCode::CONFLICT, "conflict", m),
            FirmwareError::Store(e) => e.into(),
            FirmwareError::Keys(m) => {
                tracing::error!(error = %m, "firmware signing failed");
                Self::internal()
            }
        }
    }
}

/// The server's online public keys, to put in a root.
#[derive(Debug, Serialize, ToSchema)]
pub struct OnlineKeysView {
    #[schema(value_type = Object)]
    pub snapshot: Value,
    #[schema(value_type = Object)]
    pub timestamp: Value,
    #[schema(value_type = Object)]
    pub director: Value,
}

/// A metadata version as published.
#[derive(Debug, Serialize, ToSchema)]
pub struct PublishedView {
    pub version: u64,
}

/// An uploaded image.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImageView {
    pub sha256: String,
    pub length: u64,
}

/// A target of the catalogue.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogueView {
    pub name: String,
    pub version: String,
    pub hardware: String,
    pub counter: u64,
    pub sha256: String,
    pub length: u64,
}

/// What to assign to a device.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignRequest {
    /// A target name of the catalogue.
    pub target: String,
}

/// An assignment signed and queued.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssignedView {
    pub issued: u64,
    /// The `update` command queued for the device.
    pub command: String,
    /// The signed assignment.
    #[schema(value_type = Object)]
    pub assignment: Value,
}

/// The agent's last update event.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateReportView {
    pub event: String,
    pub target: Option<String>,
    pub version: Option<String>,
    pub detail: Option<String>,
    /// When the server received it (RFC 3339).
    pub at: String,
}

/// A device's firmware: its current assignment and what its agent reported last.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeviceFirmwareView {
    #[schema(value_type = Option<Object>)]
    pub assignment: Option<Value>,
    pub reported: Option<UpdateReportView>,
}

/// Publishing applies to the whole fleet: a grant limited to some groups or regions is not enough.
fn require_everywhere(caller: &Caller, p: Permission) -> Result<(), ApiError> {
    caller.require(p)?;
    if caller.authority.scopes_for(p).is_none() {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!("{p} must be granted fleet-wide (not in a scope) to publish firmware")))
    }
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    if ct.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json")) {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the signed metadata as Content-Type: application/json",
        ))
    }
}

fn json_bytes(body: Vec<u8>) -> Response {
    let mut r = body.into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

fn public_key_json(k: &palisade_tuf::PublicKey) -> Result<Value, ApiError> {
    serde_json::to_value(k).map_err(|_| ApiError::internal())
}

/// The server's online public keys (snapshot, timestamp, director), generated on first use.
#[utoipa::path(get, path = "/api/v1/firmware/keys", tag = "firmware",
    responses((status = 200, body = OnlineKeysView)))]
pub async fn keys(State(state): State<AppState>, caller: Caller) -> Result<Json<OnlineKeysView>, ApiError> {
    caller.require(Permission::FirmwarePublish)?;
    let k = firmware::online_keys(&state).await?;
    Ok(Json(OnlineKeysView {
        snapshot: public_key_json(&k.snapshot.public())?,
        timestamp: public_key_json(&k.timestamp.public())?,
        director: public_key_json(&k.director.public())?,
    }))
}

/// Publish a root signed offline: self-signed to threshold, the next version, signed by the
/// current root's keys too, naming the server's online keys.
#[utoipa::path(put, path = "/api/v1/firmware/root", tag = "firmware",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = PublishedView), (status = 422, body = ErrorBody)))]
pub async fn put_root(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Json<PublishedView>, ApiError> {
    require_everywhere(&caller, Permission::FirmwarePublish)?;
    let json = require_json(req.headers());
    let body = body_bytes(req, MAX_METADATA_BYTES).await?;
    json?;
    let version = firmware::put_root(&state, &body, caller.audit()).await?;
    Ok(Json(PublishedView { version }))
}

/// The newest signed root (to build the next one from).
#[utoipa::path(get, path = "/api/v1/firmware/root", tag = "firmware",
    responses((status = 200, content_type = "application/json", body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_root(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::FirmwarePublish)?;
    match state.store.tuf_latest(Role::Root).await? {
        Some(m) => Ok(json_bytes(m.body)),
        None => Err(ApiError::not_found("no root is published yet")),
    }
}

/// The current signed targets metadata.
#[utoipa::path(get, path = "/api/v1/firmware/targets", tag = "firmware",
    responses((status = 200, content_type = "application/json", body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_targets(State(state): State<AppState>, caller: Caller) -> Result<Response, ApiError> {
    caller.require(Permission::FirmwarePublish)?;
    match state.store.tuf_latest(Role::Targets).await? {
        Some(m) => Ok(json_bytes(m.body)),
        None => Err(ApiError::not_found("no targets metadata is published yet")),
    }
}

/// Publish a targets metadata signed offline; the server signs a new snapshot and timestamp.
#[utoipa::path(put, path = "/api/v1/firmware/targets", tag = "firmware",
    request_body(content = Object, content_type = "application/json"),
    responses((status = 200, body = PublishedView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn put_targets(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<Json<PublishedView>, ApiError> {
    require_everywhere(&caller, Permission::FirmwarePublish)?;
    let json = require_json(req.headers());
    let body = body_bytes(req, MAX_METADATA_BYTES).await?;
    json?;
    let version = firmware::publish_targets(&state, &body, caller.audit()).await?;
    Ok(Json(PublishedView { version }))
}

/// The catalogue: the targets of the current targets metadata.
#[utoipa::path(get, path = "/api/v1/firmware", tag = "firmware", responses((status = 200, body = Vec<CatalogueView>)))]
pub async fn catalogue(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<CatalogueView>>, ApiError> {
    caller.require(Permission::FirmwarePublish)?;
    let all = state.store.firmware_catalogue().await?;
    Ok(Json(
        all.into_iter()
            .map(|e| CatalogueView {
                name: e.name,
                version: e.version,
                hardware: e.hardware,
                counter: e.counter,
                sha256: e.sha256,
                length: e.length,
            })
            .collect(),
    ))
}

/// A file removed when dropped, unless kept.
struct TempFile(Option<PathBuf>);

impl TempFile {
    fn keep(&mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn io_error(what: &str, path: &Path, e: &std::io::Error) -> ApiError {
    tracing::error!(error = %e, path = %path.display(), "{what}");
    ApiError::internal()
}

/// `DATA_DIR/firmware`, created 0700 if missing.
async fn image_dir(state: &AppState) -> Result<PathBuf, ApiError> {
    let dir = state.config.data_dir().map_err(|_| ApiError::internal())?.join("firmware");
    if tokio::fs::metadata(&dir).await.is_err() {
        let mut b = tokio::fs::DirBuilder::new();
        b.recursive(true).mode(0o700);
        b.create(&dir).await.map_err(|e| io_error("cannot create the firmware directory", &dir, &e))?;
    }
    Ok(dir)
}

fn too_large(max: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("the image exceeds {max} bytes (firmware.max_image_bytes)"),
    )
}

/// Upload an image (the raw bytes). Streamed to a temporary file, fsynced and renamed to its
/// SHA-256; answered once durable and recorded.
#[utoipa::path(post, path = "/api/v1/firmware/images", tag = "firmware",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = ImageView), (status = 413, body = ErrorBody)))]
pub async fn upload_image(
    State(state): State<AppState>,
    caller: Caller,
    req: Request,
) -> Result<(StatusCode, Json<ImageView>), ApiError> {
    use http_body_util::BodyExt as _;
    require_everywhere(&caller, Permission::FirmwarePublish)?;
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    if ct.is_some_and(|ct| ct.split(';').next().is_none_or(|t| t.trim() != "application/octet-stream")) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the image as Content-Type: application/octet-stream",
        ));
    }
    let max = state.config.firmware.max_image_bytes;
    let declared = req.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large(max));
    }
    let dir = image_dir(&state).await?;
    let mut rand = [0u8; 8];
    palisade_store::sealed::random(&mut rand)?;
    let temp_path = dir.join(format!(".upload-{}", hex::encode(rand)));
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp_path)
        .await
        .map_err(|e| io_error("cannot create an upload file", &temp_path, &e))?;
    let mut temp = TempFile(Some(temp_path.clone()));
    let mut hasher = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut length: u64 = 0;
    let mut body = req.into_body();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request("bad_body", format!("cannot read the request body: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        length = length.saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
        if length > max {
            // Read on briefly (bounded) so that the client sees the answer, not a reset.
            let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
            let mut drained: usize = 0;
            while drained < 64 << 20 {
                match tokio::time::timeout_at(deadline, body.frame()).await {
                    Ok(Some(Ok(f))) => drained += f.data_ref().map_or(0, |d| d.len()),
                    _ => break,
                }
            }
            return Err(too_large(max));
        }
        hasher.update(&data);
        file.write_all(&data).await.map_err(|e| io_error("cannot write an upload", &temp_path, &e))?;
    }
    if length == 0 {
        return Err(ApiError::bad_request("empty_body", "the image is empty"));
    }
    file.flush().await.map_err(|e| io_error("cannot write an upload", &temp_path, &e))?;
    file.sync_all().await.map_err(|e| io_error("cannot fsync an upload", &temp_path, &e))?;
    drop(file);
    let sha256 = hex::encode(hasher.finish());
    let path = dir.join(&sha256);
    tokio::fs::rename(&temp_path, &path).await.map_err(|e| io_error("cannot move an upload in place", &path, &e))?;
    temp.keep();
    let d = tokio::fs::File::open(&dir).await.map_err(|e| io_error("cannot open the firmware directory", &dir, &e))?;
    d.sync_all().await.map_err(|e| io_error("cannot fsync the firmware directory", &dir, &e))?;
    let image = state.store.put_firmware_image(sha256, length, caller.audit()).await?;
    Ok((StatusCode::CREATED, Json(ImageView { sha256: image.sha256, length: image.length })))
}

async fn scoped_device(state: &AppState, caller: &Caller, id: &str, p: Permission) -> Result<DeviceId, ApiError> {
    let id: DeviceId =
        id.parse().map_err(|e: palisade_core::InvalidField| ApiError::bad_request("invalid_id", e.to_string()))?;
    let device = state.store.get_device(&id).await?;
    if caller.can_on(p, device.attrs.group.as_deref(), device.attrs.region.as_deref()) {
        Ok(id)
    } else {
        Err(ApiError::not_found(format!("device {id} not found")))
    }
}

/// Assign a catalogue target to a device: signs an assignment and queues the `update` command.
#[utoipa::path(put, path = "/api/v1/devices/{id}/firmware", tag = "firmware", params(("id" = String, Path)),
    request_body = AssignRequest,
    responses((status = 200, body = AssignedView), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
    ApiJson(body): ApiJson<AssignRequest>,
) -> Result<Json<AssignedView>, ApiError> {
    let id = scoped_device(&state, &caller, &id, Permission::RolloutsManage).await?;
    let a = firmware::assign(&state, &id, &body.target, caller.audit()).await?;
    let assignment = serde_json::from_str(&a.signed).map_err(|_| ApiError::internal())?;
    Ok(Json(AssignedView { issued: a.issued, command: a.command_id, assignment }))
}

/// A device's current assignment and its agent's last update report.
#[utoipa::path(get, path = "/api/v1/devices/{id}/firmware", tag = "firmware", params(("id" = String, Path)),
    responses((status = 200, body = DeviceFirmwareView), (status = 404, body = ErrorBody)))]
pub async fn device_firmware(
    State(state): State<AppState>,
    caller: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<Json<DeviceFirmwareView>, ApiError> {
    let id = scoped_device(&state, &caller, &id, Permission::DevicesRead).await?;
    let assignment = match state.store.firmware_assignment(id.as_str()).await? {
        Some(a) => Some(serde_json::from_str(&a.signed).map_err(|_| ApiError::internal())?),
        None => None,
    };
    let reported = state.store.update_report(id.as_str()).await?.map(|r| UpdateReportView {
        event: r.event,
        target: r.target,
        version: r.version,
        detail: r.detail,
        at: super::convert::rfc3339(r.at_ms),
    });
    Ok(Json(DeviceFirmwareView { assignment, reported }))
}

// --- the device listener ----------------------------------------------------------------------

/// The enrolled device presenting the request's client certificate: issued by our device CA,
/// still valid in the store, the device admitted (provisioned, active or quarantined).
async fn calling_device(state: &AppState, certs: Option<&PeerCerts>) -> Result<String, ApiError> {
    let refuse = || ApiError::unauthorized("present the device's certificate (TLS client authentication)");
    let leaf = certs.and_then(|c| c.0.first()).ok_or_else(refuse)?;
    let (device_id, serial) = super::est::operational_identity(state, leaf).ok_or_else(refuse)?;
    match state.store.certificate(&serial).await? {
        Some(c) if c.device_id == device_id && c.status == "valid" => {}
        _ => return Err(ApiError::unauthorized("the certificate is revoked or unknown")),
    }
    let id: DeviceId = device_id.parse().map_err(|_| refuse())?;
    let device = state.store.get_device(&id).await?;
    match device.state {
        LifecycleState::Provisioned | LifecycleState::Active | LifecycleState::Quarantined => Ok(device_id),
        other => Err(ApiError::forbidden(format!("the device is {}", other.as_str()))),
    }
}

/// `GET /tuf/{file}`: `root.json` (newest), `{n}.root.json`, `timestamp.json`,
/// `snapshot.json`, `targets.json`, and `assignment` (the calling device's).
pub async fn tuf(State(state): State<AppState>, UrlPath(file): UrlPath<String>, req: Request) -> Response {
    let certs = req.extensions().get::<PeerCerts>().cloned();
    match tuf_file(&state, &file, certs.as_ref()).await {
        Ok(body) => json_bytes(body),
        Err(e) => e.into_response(),
    }
}

async fn tuf_file(state: &AppState, file: &str, certs: Option<&PeerCerts>) -> Result<Vec<u8>, ApiError> {
    let device = calling_device(state, certs).await?;
    let missing = || ApiError::not_found(format!("{file} is not published"));
    let role = match file {
        "root.json" => Some(Role::Root),
        "targets.json" => Some(Role::Targets),
        "snapshot.json" => Some(Role::Snapshot),
        "timestamp.json" => Some(Role::Timestamp),
        _ => None,
    };
    if let Some(role) = role {
        if matches!(role, Role::Snapshot | Role::Timestamp) {
            firmware::refresh_online(state).await;
        }
        return state.store.tuf_latest(role).await?.map(|m| m.body).ok_or_else(missing);
    }
    match file {
        "assignment" => match state.store.firmware_assignment(&device).await? {
            Some(a) => Ok(a.signed.into_bytes()),
            None => Err(ApiError::not_found(format!("no firmware is assigned to device {device}"))),
        },
        _ => {
            let version = file
                .strip_suffix(".root.json")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse::<u64>().ok())
                .ok_or_else(|| ApiError::not_found("no such metadata"))?;
            state.store.tuf_version(Role::Root, version).await?.map(|m| m.body).ok_or_else(missing)
        }
    }
}

/// What a `Range` header asks of a file of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// No range (or one we may ignore: several ranges, another unit, a malformed one).
    Full,
    /// Bytes `first..=last`.
    Part { first: u64, last: u64 },
    /// A range that lies past the end.
    Unsatisfiable,
}

/// Parses `bytes=N-`, `bytes=N-M` and `bytes=-S` (RFC 9110 §14.1.2).
pub fn byte_range(header: Option<&str>, len: u64) -> ByteRange {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else { return ByteRange::Full };
    if spec.contains(',') {
        return ByteRange::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else { return ByteRange::Full };
    let num = |s: &str| {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|c| c.is_ascii_digit())).then(|| s.parse::<u64>().ok()).flatten()
    };
    match (a.trim().is_empty(), num(a), num(b)) {
        // bytes=-S: the last S bytes
        (true, _, Some(suffix)) => {
            if suffix == 0 || len == 0 {
                ByteRange::Unsatisfiable
            } else {
                ByteRange::Part { first: len - suffix.min(len), last: len - 1 }
            }
        }
        (false, Some(first), None) if b.trim().is_empty() => {
            if first < len {
                ByteRange::Part { first, last: len - 1 }
            } else {
                ByteRange::Unsatisfiable
            }
        }
        (false, Some(first), Some(last)) if first <= last => {
            if first < len {
                ByteRange::Part { first, last: last.min(len - 1) }
            } else {
                ByteRange::Unsatisfiable
            }
        }
        _ => ByteRange::Full,
    }
}

const CHUNK: usize = 256 * 1024;

/// `GET /firmware/{sha256}`: an image, whole or a byte range, streamed from its file.
pub async fn image(State(state): State<AppState>, UrlPath(sha256): UrlPath<String>, req: Request) -> Response {
    let certs = req.extensions().get::<PeerCerts>().cloned();
    let range = req.headers().get(header::RANGE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    match serve_image(&state, &sha256, certs.as_ref(), range.as_deref()).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn serve_image(
    state: &AppState,
    sha256: &str,
    certs: Option<&PeerCerts>,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    calling_device(state, certs).await?;
    let unknown = || ApiError::not_found(format!("no image {sha256:.64}"));
    if !palisade_store::firmware::is_sha256_hex(sha256) {
        return Err(unknown());
    }
    let record = state.store.firmware_image(sha256).await?.ok_or_else(unknown)?;
    let path = image_dir(state).await?.join(sha256);
    let mut file = tokio::fs::File::open(&path).await.map_err(|e| io_error("cannot open an image", &path, &e))?;
    let len = file.metadata().await.map_err(|e| io_error("cannot stat an image", &path, &e))?.len();
    if len != record.length {
        tracing::error!(path = %path.display(), len, expected = record.length, "an image file has the wrong size");
        return Err(ApiError::internal());
    }
    let range = byte_range(range, len);
    let (status, first, count) = match range {
        ByteRange::Full => (StatusCode::OK, 0, len),
        ByteRange::Part { first, last } => (StatusCode::PARTIAL_CONTENT, first, last - first + 1),
        ByteRange::Unsatisfiable => {
            let mut r = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the image has {len} bytes"),
            )
            .into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(r);
        }
    };
    file.seek(SeekFrom::Start(first)).await.map_err(|e| io_error("cannot seek in an image", &path, &e))?;
    let body = super::stream::produce(move |tx| async move {
        let mut left = count;
        let mut buf = vec![0u8; CHUNK];
        while left > 0 {
            let want = usize::try_from(left).map_or(CHUNK, |l| l.min(CHUNK));
            let slot = buf.get_mut(..want).ok_or(super::stream::Gone)?;
            let n = match file.read(slot).await {
                Ok(0) | Err(_) => return Err(super::stream::Gone),
                Ok(n) => n,
            };
            tx.send(slot.get(..n).ok_or(super::stream::Gone)?.to_vec()).await?;
            left -= u64::try_from(n).map_err(|_| super::stream::Gone)?;
        }
        Ok(())
    });
    let mut r = Response::new(body);
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(count));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{}/{len}", first + count - 1))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{sha256}\"")) {
        h.insert(header::ETAG, v);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges() {
        use ByteRange::*;
        let r = |h: &str| byte_range(Some(h), 100);
        assert_eq!(byte_range(None, 100), Full);
        assert_eq!(r("bytes=10-"), Part { first: 10, last: 99 });
        assert_eq!(r("bytes=10-19"), Part { first: 10, last: 19 });
        assert_eq!(r("bytes=90-1000"), Part { first: 90, last: 99 });
        assert_eq!(r("bytes=-5"), Part { first: 95, last: 99 });
        assert_eq!(r("bytes=-500"), Part { first: 0, last: 99 });
        assert_eq!(r("bytes=100-"), Unsatisfiable);
        assert_eq!(r("bytes=100-200"), Unsatisfiable);
        assert_eq!(r("bytes=-0"), Unsatisfiable);
        assert_eq!(r("bytes=20-10"), Full);
        assert_eq!(r("bytes=0-1,5-6"), Full);
        assert_eq!(r("items=0-1"), Full);
        assert_eq!(r("bytes=x-"), Full);
        assert_eq!(r("bytes=+1-"), Full);
        assert_eq!(byte_range(Some("bytes=0-"), 0), Unsatisfiable);
    }
}
