//! (being written)

use axum::Router;

use crate::AppState;
use crate::api::policy::Policy;

/// Who may open or post what (see `super::PAGES`).
pub const PAGES: &[(&str, &str, Policy)] = &[];

pub fn routes() -> Router<AppState> {
    Router::new()
}
