//! Signing in and out, the forced change of a one-time password, TOTP enrolment with a QR code.
//! Every step calls the API's own handler (`api::access`), so throttling, lockout, password
//! policy and audit are exactly the API's.

use askama::Template;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use palisade_proto::{LoginRequest, MfaConfirm, MfaEnrollment, PasswordChange};
use serde::Deserialize;

use super::view::{Ctx, FieldErrors, Page, render, safe_next};
use crate::api::access;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, Caller, PeerAddr};
use crate::{AppState, auth};

#[derive(Template)]
#[template(path = "login.html")]
struct Login {
    ctx: Ctx,
    next: String,
    username: String,
    errors: FieldErrors,
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

pub async fn login_page(caller: Option<axum::Extension<Caller>>, Query(q): Query<NextQuery>) -> Response {
    let next = safe_next(q.next.as_deref()).to_owned();
    if caller.is_some() {
        return Redirect::to(&next).into_response();
    }
    render(StatusCode::OK, &Login { ctx: Ctx::anonymous(), next, username: String::new(), errors: FieldErrors::none() })
}

#[derive(Debug, Deserialize)]
pub struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    code: String,
    next: Option<String>,
}

pub async fn login(
    State(state): State<AppState>,
    axum::Extension(peer): axum::Extension<PeerAddr>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref()).to_owned();
    let code = form.code.trim().to_owned();
    // Six digits are a TOTP code; anything else given is tried as a recovery code.
    let (totp_code, recovery_code) = match code.as_str() {
        "" => (None, None),
        c if c.len() == 6 && c.bytes().all(|b| b.is_ascii_digit()) => (Some(code.clone()), None),
        _ => (None, Some(code.clone())),
    };
    let request = LoginRequest { username: form.username.clone(), password: form.password, totp_code, recovery_code };
    match access::sign_in(&state, peer, request).await {
        Ok((answer, cookie)) => {
            let to = if answer.must_change_password || answer.mfa_enrollment_required { "/ui/account" } else { &next };
            let mut resp = Redirect::to(to).into_response();
            resp.headers_mut().insert(header::SET_COOKIE, cookie);
            resp
        }
        Err(e) => {
            let errors = match e.code {
                "mfa_required" => FieldErrors::field(
                    "code",
                    "This account uses two-factor authentication: enter the code from your app.",
                ),
                "invalid_mfa_code" => FieldErrors::field("code", "This code is wrong or was already used."),
                "locked" => FieldErrors::general(
                    "Too many failed sign-ins: this account or address is locked for a while. \
                     An administrator can unlock it sooner.",
                ),
                _ if e.status == StatusCode::UNAUTHORIZED => FieldErrors::general("Wrong username or password."),
                _ => FieldErrors::general(e.message.clone()),
            };
            let page = Login { ctx: Ctx::anonymous(), next, username: form.username, errors };
            render(e.status, &page)
        }
    }
}

pub async fn logout(State(state): State<AppState>, caller: axum::Extension<Caller>) -> Response {
    let cookie = match access::logout(State(state), caller.0).await {
        Ok(resp) => resp.headers().get(header::SET_COOKIE).cloned(),
        Err(e) => {
            tracing::warn!(error = %e.message, "sign-out failed");
            None
        }
    };
    let mut resp = Redirect::to("/ui/login").into_response();
    let clear = format!("{}=; HttpOnly; Secure; SameSite=Strict; Path=/; Max-Age=0", auth::SESSION_COOKIE);
    let cookie = cookie.or_else(|| HeaderValue::from_str(&clear).ok());
    if let Some(c) = cookie {
        resp.headers_mut().insert(header::SET_COOKIE, c);
    }
    resp
}

#[derive(Template)]
#[template(path = "account.html")]
struct Account {
    ctx: Ctx,
    username: String,
    must_change_password: bool,
    mfa_required: bool,
    mfa_enabled: bool,
    enrolment: Option<MfaEnrollment>,
    recovery_codes: Option<Vec<String>>,
    password_changed: bool,
    show_password_errors: bool,
    errors: FieldErrors,
}

impl Account {
    async fn of(state: &AppState, ctx: Ctx) -> Result<Self, Page> {
        let caller = ctx.caller().ok_or_else(|| Page::error(StatusCode::UNAUTHORIZED, "Sign in first."))?;
        let me = access::me(State(state.clone()), caller.clone()).await?.0;
        let user = state.store.user(&me.id).await?;
        let roles = state.store.custom_roles().await?;
        Ok(Self {
            username: me.username,
            must_change_password: me.must_change_password,
            mfa_required: state.auth.mfa_required(&user, &roles),
            mfa_enabled: me.mfa_enabled,
            enrolment: None,
            recovery_codes: None,
            password_changed: false,
            show_password_errors: false,
            errors: FieldErrors::none(),
            ctx: ctx.at("account"),
        })
    }
}

pub async fn page(State(state): State<AppState>, ctx: Ctx) -> Result<Response, Page> {
    Ok(render(StatusCode::OK, &Account::of(&state, ctx).await?))
}

#[derive(Debug, Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

pub async fn change_password(
    State(state): State<AppState>,
    ctx: Ctx,
    caller: axum::Extension<Caller>,
    axum::Form(form): axum::Form<PasswordForm>,
) -> Result<Response, Page> {
    let body = PasswordChange { current_password: form.current_password, new_password: form.new_password };
    let forced = caller.0.restricted() == Some("password_change_required");
    let result = access::change_password(State(state.clone()), caller.0.clone(), ApiJson(body)).await;
    let mut page = Account::of(&state, ctx).await?;
    match result {
        Ok(_) => {
            if page.mfa_required && !page.mfa_enabled {
                return Ok(Redirect::to("/ui/account").into_response());
            }
            if forced {
                // The one-time password is gone: on to the console.
                return Ok(Redirect::to("/ui/").into_response());
            }
            page.password_changed = true;
            Ok(render(StatusCode::OK, &page))
        }
        Err(e) => {
            page.errors = password_errors(&e);
            page.show_password_errors = true;
            Ok(render(e.status, &page))
        }
    }
}

fn password_errors(e: &ApiError) -> FieldErrors {
    if e.status == StatusCode::UNAUTHORIZED {
        return FieldErrors::field("current_password", "The current password is wrong.");
    }
    FieldErrors::from_api(e, &[("password", "new_password")])
}

pub async fn mfa_enroll(
    State(state): State<AppState>,
    ctx: Ctx,
    caller: axum::Extension<Caller>,
) -> Result<Response, Page> {
    let result = access::mfa_enroll(State(state.clone()), caller.0.clone()).await;
    let mut page = Account::of(&state, ctx).await?;
    match result {
        Ok(Json(e)) => {
            page.enrolment = Some(e);
            Ok(render(StatusCode::OK, &page))
        }
        Err(e) => {
            page.errors = FieldErrors::from_api(&e, &[]);
            Ok(render(e.status, &page))
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct MfaForm {
    #[serde(default)]
    code: String,
}

pub async fn mfa_confirm(
    State(state): State<AppState>,
    ctx: Ctx,
    caller: axum::Extension<Caller>,
    axum::Form(form): axum::Form<MfaForm>,
) -> Result<Response, Page> {
    let result =
        access::mfa_confirm(State(state.clone()), caller.0.clone(), ApiJson(MfaConfirm { code: form.code })).await;
    let mut page = Account::of(&state, ctx).await?;
    match result {
        Ok(Json(codes)) => {
            page.recovery_codes = Some(codes.recovery_codes);
            page.mfa_enabled = true;
            Ok(render(StatusCode::OK, &page))
        }
        Err(e) => {
            // Show the same secret again: the app already holds it.
            let user = state.store.user(&page_user(&caller.0)).await?;
            if let Some(secret) = user.totp_pending.as_ref() {
                let uri = palisade_core::totp::otpauth_uri("Palisade", &user.username, secret);
                page.enrolment = Some(MfaEnrollment {
                    qr_svg: auth::qr_svg(&uri),
                    secret: palisade_core::totp::base32(secret),
                    otpauth_uri: uri,
                });
            }
            page.errors = FieldErrors::from_api(&e, &[]);
            Ok(render(e.status, &page))
        }
    }
}

fn page_user(caller: &Caller) -> String {
    match &caller.principal {
        crate::api::extract::Principal::User { id, .. } => id.clone(),
        crate::api::extract::Principal::ApiKey(k) => k.id.clone(),
    }
}
