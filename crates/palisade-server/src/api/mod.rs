//! The REST API: routes, documentation, and the edges every request passes through.
//!
//! Routes are registered with `utoipa_axum::routes!`, so the router and the OpenAPI document
//! come from the same annotations and cannot drift apart.

pub mod access;
pub mod alerts;
pub mod audit;
pub mod convert;
pub mod csvio;
pub mod devices;
pub mod error;
pub mod est;
pub mod extract;
pub mod firmware;
pub mod guard;
pub mod identity;
pub mod notify;
pub mod policy;
pub mod rollouts;
pub mod stream;
pub mod system;
pub mod vulns;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::metrics::{RequestLabels, RouteLabels};
use error::ApiError;

#[derive(OpenApi)]
#[openapi(
    info(title = "Palisade API", description = "IoT fleet security control plane. Authenticate with `Authorization: Bearer <api key>`."),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The documented API: every route here appears in the OpenAPI document.
pub fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(devices::create, devices::list))
        .routes(routes!(devices::get, devices::patch))
        .routes(routes!(devices::lifecycle))
        .routes(routes!(devices::quarantine))
        .routes(routes!(devices::pause))
        .routes(routes!(devices::release))
        .routes(routes!(devices::decommission))
        .routes(routes!(devices::import))
        .routes(routes!(devices::export))
        .routes(routes!(audit::list))
        .routes(routes!(audit::export))
        .routes(routes!(audit::verify))
        .routes(routes!(access::login))
        .routes(routes!(access::logout))
        .routes(routes!(access::me))
        .routes(routes!(access::change_password))
        .routes(routes!(access::mfa_enroll))
        .routes(routes!(access::mfa_confirm))
        .routes(routes!(access::create_user, access::list_users))
        .routes(routes!(access::get_user, access::patch_user))
        .routes(routes!(access::unlock_user))
        .routes(routes!(access::reset_mfa))
        .routes(routes!(access::reset_password))
        .routes(routes!(access::create_role, access::list_roles))
        .routes(routes!(access::mfa_coverage))
        .routes(routes!(access::list_keys, access::create_key))
        .routes(routes!(access::revoke_key))
        .routes(routes!(devices::latest_telemetry))
        .routes(routes!(devices::telemetry_series))
        .routes(routes!(devices::connection_history))
        .routes(routes!(devices::send_command, devices::list_commands))
        .routes(routes!(identity::create_token))
        .routes(routes!(identity::device_certificates))
        .routes(routes!(identity::revoke))
        .routes(routes!(identity::add_manufacturer, identity::list_manufacturers))
        .routes(routes!(identity::allow_serials))
        .routes(routes!(identity::findings))
        .routes(routes!(identity::run_audit))
        .routes(routes!(identity::run_checks))
        .routes(routes!(identity::endpoints))
        .routes(routes!(notify::create_channel, notify::list_channels))
        .routes(routes!(notify::test_channel))
        .routes(routes!(notify::list_deliveries))
        .routes(routes!(notify::retry_delivery))
        .routes(routes!(alerts::list_profiles))
        .routes(routes!(alerts::put_profile, alerts::delete_profile))
        .routes(routes!(alerts::list_alerts))
        .routes(routes!(alerts::stream))
        .routes(routes!(alerts::get_alert))
        .routes(routes!(alerts::ack))
        .routes(routes!(alerts::resolve))
        .routes(routes!(alerts::suppress))
        .routes(routes!(rollouts::create, rollouts::list))
        .routes(routes!(rollouts::get))
        .routes(routes!(rollouts::command))
        .routes(routes!(rollouts::compliance))
        .routes(routes!(firmware::keys))
        .routes(routes!(firmware::get_root, firmware::put_root))
        .routes(routes!(firmware::get_targets, firmware::put_targets))
        .routes(routes!(firmware::upload_image))
        .routes(routes!(firmware::catalogue))
        .routes(routes!(firmware::assign, firmware::device_firmware))
        .routes(routes!(vulns::put_sbom, vulns::get_sbom))
        .routes(routes!(vulns::import))
        .routes(routes!(vulns::list_imports))
        .routes(routes!(vulns::get_import))
        .routes(routes!(vulns::affected))
        .routes(routes!(vulns::device_findings))
        .routes(routes!(vulns::fleet))
}

/// The device listener: EST, the CRL, health.
pub fn device_router(state: AppState) -> Router {
    use axum::routing::post;
    Router::new()
        .route("/.well-known/est/cacerts", get(est::cacerts))
        .route("/.well-known/est/csrattrs", get(est::csrattrs))
        .route("/.well-known/est/simpleenroll", post(est::simpleenroll))
        .route("/.well-known/est/simplereenroll", post(est::simplereenroll))
        .route("/pki/crl", get(est::crl))
        .route("/tuf/{file}", get(firmware::tuf))
        .route("/firmware/{sha256}", get(firmware::image))
        .route("/healthz", get(system::healthz))
        .fallback(|| async { (axum::http::StatusCode::NOT_FOUND, "no such route\n") })
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// The OpenAPI document, each operation marked with its access policy (`x-palisade-policy`;
/// `none` marks a route missing from the policy table, which the tests refuse).
pub fn openapi_doc() -> utoipa::openapi::OpenApi {
    let (_, mut doc) = api().split_for_parts();
    for (path, item) in doc.paths.paths.iter_mut() {
        for (method, op) in [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ] {
            if let Some(op) = op {
                let policy = policy::lookup(method, path).map_or_else(|| "none".to_owned(), |p| p.describe());
                let ext = utoipa::openapi::extensions::Extensions::builder().add("x-palisade-policy", policy).build();
                match &mut op.extensions {
                    Some(e) => e.merge(ext),
                    None => op.extensions = Some(ext),
                }
            }
        }
    }
    doc
}

/// The OpenAPI document as JSON.
pub fn openapi_json() -> String {
    openapi_doc().to_pretty_json().unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The whole HTTP application of the console listener.
pub fn router(state: AppState) -> Router {
    let (api, _) = api().split_for_parts();
    Router::new()
        .merge(api)
        .merge(crate::console::router(state.clone()))
        .route("/api/v1/openapi.json", get(system::openapi))
        .route("/healthz", get(system::healthz))
        .route("/readyz", get(system::readyz))
        .route("/pki/crl", get(est::crl))
        .route("/metrics", get(system::metrics))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), guard::guard))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

/// Counts and times every request by route template; adds security headers.
async fn observe(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let mut resp = next.run(req).await.into_response();
    let status = resp.status().as_u16();
    state.metrics.requests.get_or_create(&RequestLabels { method: method.clone(), route: route.clone(), status }).inc();
    state
        .metrics
        .request_seconds
        .get_or_create(&RouteLabels { method, route })
        .observe(started.elapsed().as_secs_f64());
    let h = resp.headers_mut();
    use axum::http::HeaderValue;
    h.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    if !h.contains_key("content-security-policy") {
        // JSON and plain text need nothing; the console sets its own (`console::CSP`).
        h.insert("content-security-policy", HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    }
    resp
}
