//! `/ui/users`: people (roles with their scope, status, MFA, locks), what an administrator does
//! to an account (create, disable, unlock, reset MFA or password, change roles), and the roles.

use askama::Template;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use palisade_core::{Permission, Role};
use palisade_proto::{RoleBindingView, RoleView, UserCreate, UserPatch, UserView};
use serde::Deserialize;

use super::{FormData, caller_of, capitalised, list, no_store, optional, scope_text};
use crate::AppState;
use crate::api::access;
use crate::api::error::ApiError;
use crate::api::extract::{ApiJson, Caller, Principal};
use crate::console::view::{Ctx, FieldErrors, Page, render, rfc_time};

/// One role a user holds, and where.
#[derive(Debug)]
pub struct Binding {
    pub role: String,
    /// "groups: a, b · regions: eu", or empty for everywhere.
    pub scope: String,
}

#[derive(Debug)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub roles: Vec<Binding>,
    pub active: bool,
    pub mfa_enabled: bool,
    pub must_change_password: bool,
    pub locked_until: Option<String>,
    /// The signed-in administrator's own account.
    pub is_me: bool,
}

#[derive(Debug)]
pub struct RoleRow {
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
    pub mfa_required: bool,
}

/// What the create-user form held.
#[derive(Debug, Default)]
pub struct NewUserForm {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub role: String,
    pub groups: String,
    pub regions: String,
}

/// What the create-role form held.
#[derive(Debug, Default)]
pub struct NewRoleForm {
    pub name: String,
    pub permissions: Vec<String>,
    pub mfa_required: bool,
}

impl NewRoleForm {
    /// Whether the form had this permission ticked.
    pub fn has(&self, permission: &str) -> bool {
        self.permissions.iter().any(|p| p == permission)
    }
}

/// A one-time password, shown on this page only.
#[derive(Debug)]
pub struct OneTime {
    pub username: String,
    pub password: String,
    /// A new account (else a reset).
    pub created: bool,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    ctx: Ctx,
    users: Vec<UserRow>,
    roles: Vec<RoleRow>,
    permissions: Vec<&'static str>,
    form: NewUserForm,
    errors: FieldErrors,
    role_form: NewRoleForm,
    role_errors: FieldErrors,
    /// A refused action on one account (disable, unlock…).
    action_errors: FieldErrors,
    one_time: Option<OneTime>,
    notice: Option<String>,
}

fn user_row(u: UserView, me: Option<&str>) -> UserRow {
    UserRow {
        is_me: me == Some(u.id.as_str()),
        roles: u
            .roles
            .iter()
            .map(|b| Binding { role: b.role.clone(), scope: scope_text(&b.groups, &b.regions) })
            .collect(),
        active: u.status == "active",
        locked_until: u.locked_until.as_deref().map(rfc_time),
        display_name: u.display_name.unwrap_or_default(),
        email: u.email.unwrap_or_default(),
        mfa_enabled: u.mfa_enabled,
        must_change_password: u.must_change_password,
        id: u.id,
        username: u.username,
    }
}

fn role_row(r: RoleView) -> RoleRow {
    RoleRow {
        builtin: r.name.parse::<Role>().is_ok(),
        name: r.name,
        permissions: r.permissions,
        mfa_required: r.mfa_required,
    }
}

fn my_id(caller: &Caller) -> Option<&str> {
    match &caller.principal {
        Principal::User { id, .. } => Some(id.as_str()),
        Principal::ApiKey(_) => None,
    }
}

impl UsersPage {
    async fn load(state: &AppState, ctx: Ctx) -> Result<Self, Page> {
        let caller = caller_of(&ctx)?;
        let Json(users) = access::list_users(State(state.clone())).await?;
        let Json(roles) = access::list_roles(State(state.clone())).await?;
        Ok(Self {
            users: users.into_iter().map(|u| user_row(u, my_id(&caller))).collect(),
            roles: roles.into_iter().map(role_row).collect(),
            permissions: Permission::ALL.iter().map(|p| p.as_str()).collect(),
            form: NewUserForm::default(),
            errors: FieldErrors::none(),
            role_form: NewRoleForm::default(),
            role_errors: FieldErrors::none(),
            action_errors: FieldErrors::none(),
            one_time: None,
            notice: None,
            ctx: ctx.at("users"),
        })
    }

    fn username_of(&self, id: &str) -> Option<&str> {
        self.users.iter().find(|u| u.id == id).map(|u| u.username.as_str())
    }
}

/// What `?done=…&id=…` says after a change (only known words; nothing from the URL is echoed).
fn notice(done: &str, username: Option<&str>) -> Option<String> {
    let who = username.unwrap_or("The account");
    let text = match done {
        "disabled" => format!("{who} is disabled: their sessions and keys stop working."),
        "enabled" => format!("{who} is enabled again."),
        "unlocked" => format!("{who} is unlocked and may sign in again."),
        "mfa-reset" => format!(
            "{who} no longer has two-factor authentication; they enrol again at next sign-in if their role requires it."
        ),
        "updated" => format!("{who} is saved."),
        "role-created" => "The role is created.".to_owned(),
        _ => return None,
    };
    Some(text)
}

#[derive(Debug, Default, Deserialize)]
pub struct Done {
    done: Option<String>,
    id: Option<String>,
}

pub async fn page(State(state): State<AppState>, ctx: Ctx, Query(q): Query<Done>) -> Result<Response, Page> {
    let mut page = UsersPage::load(&state, ctx).await?;
    if let Some(done) = q.done.as_deref() {
        let who = q.id.as_deref().and_then(|id| page.username_of(id)).map(str::to_owned);
        page.notice = notice(done, who.as_deref());
    }
    Ok(render(StatusCode::OK, &page))
}

/// Refusals of the create-user form, next to their fields.
fn create_errors(e: &ApiError) -> FieldErrors {
    if e.status == StatusCode::CONFLICT {
        return FieldErrors::field("username", "This username is taken.");
    }
    FieldErrors::from_api(e, &[("roles", "role")])
}

pub async fn create(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let f = FormData(pairs);
    let form = NewUserForm {
        username: f.text("username"),
        display_name: f.text("display_name"),
        email: f.text("email"),
        role: f.text("role"),
        groups: f.text("groups"),
        regions: f.text("regions"),
    };
    let mut page = UsersPage::load(&state, ctx).await?;
    if form.role.is_empty() {
        page.errors = FieldErrors::field("role", "Choose a role: without one the account can do nothing.");
        page.form = form;
        return Ok(render(StatusCode::UNPROCESSABLE_ENTITY, &page));
    }
    let body = UserCreate {
        username: form.username.clone(),
        display_name: optional(&form.display_name),
        email: optional(&form.email),
        roles: vec![RoleBindingView {
            role: form.role.clone(),
            groups: list(&form.groups),
            regions: list(&form.regions),
        }],
    };
    match access::create_user(State(state.clone()), caller, ApiJson(body)).await {
        Ok((_, Json(created))) => {
            let mut page = UsersPage::load(&state, page.ctx).await?;
            page.one_time =
                Some(OneTime { username: created.user.username, password: created.initial_password, created: true });
            Ok(no_store(render(StatusCode::OK, &page)))
        }
        Err(e) => {
            page.errors = create_errors(&e);
            page.form = form;
            Ok(render(e.status, &page))
        }
    }
}

/// After a change to one account: back to the list, which says what happened.
fn done(what: &str, id: &str) -> Response {
    Redirect::to(&format!("/ui/users?done={what}&id={}", crate::console::view::url_encode(id))).into_response()
}

/// The list again with a refused action's reason at the top.
async fn refused(state: &AppState, ctx: Ctx, id: &str, e: &ApiError) -> Result<Response, Page> {
    let mut page = UsersPage::load(state, ctx).await?;
    let who = page.username_of(id).unwrap_or(id).to_owned();
    page.action_errors = FieldErrors::general(format!("{who}: {}", e.message));
    Ok(render(e.status, &page))
}

pub async fn set_status(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let status = FormData(pairs).text("status");
    let patch = UserPatch { status: Some(status.clone()), ..UserPatch::default() };
    match access::patch_user(State(state.clone()), caller, Path(id.clone()), ApiJson(patch)).await {
        Ok(_) => Ok(done(if status == "active" { "enabled" } else { "disabled" }, &id)),
        Err(e) => refused(&state, ctx, &id, &e).await,
    }
}

pub async fn unlock(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Page> {
    match access::unlock_user(State(state.clone()), caller, Path(id.clone())).await {
        Ok(_) => Ok(done("unlocked", &id)),
        Err(e) => refused(&state, ctx, &id, &e).await,
    }
}

pub async fn reset_mfa(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Page> {
    match access::reset_mfa(State(state.clone()), caller, Path(id.clone())).await {
        Ok(_) => Ok(done("mfa-reset", &id)),
        Err(e) => refused(&state, ctx, &id, &e).await,
    }
}

/// A new one-time password, shown on the answer to this POST and never again.
pub async fn reset_password(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Response, Page> {
    match access::reset_password(State(state.clone()), caller, Path(id.clone())).await {
        Ok(Json(reset)) => {
            let mut page = UsersPage::load(&state, ctx).await?;
            let username = page.username_of(&id).unwrap_or(&id).to_owned();
            page.one_time = Some(OneTime { username, password: reset.initial_password, created: false });
            Ok(no_store(render(StatusCode::OK, &page)))
        }
        Err(e) => refused(&state, ctx, &id, &e).await,
    }
}

pub async fn create_role(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let f = FormData(pairs);
    let form = NewRoleForm {
        name: f.text("role_name"),
        permissions: f.all("permission"),
        mfa_required: f.checked("mfa_required"),
    };
    let body =
        RoleView { name: form.name.clone(), permissions: form.permissions.clone(), mfa_required: form.mfa_required };
    match access::create_role(State(state.clone()), caller, ApiJson(body)).await {
        Ok(_) => Ok(Redirect::to("/ui/users?done=role-created#roles").into_response()),
        Err(e) => {
            let mut page = UsersPage::load(&state, ctx).await?;
            page.role_errors = if e.status == StatusCode::CONFLICT {
                FieldErrors::field("role_name", "A role of this name exists.")
            } else {
                FieldErrors::from_api(&e, &[("name", "role_name"), ("permission", "permissions")])
            };
            page.role_form = form;
            Ok(render(e.status, &page))
        }
    }
}

// --- one account ------------------------------------------------------------------------------

/// One role's line of the edit form.
#[derive(Debug)]
pub struct RoleChoice {
    pub role: String,
    pub checked: bool,
    pub groups: String,
    pub regions: String,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct EditPage {
    ctx: Ctx,
    id: String,
    username: String,
    display_name: String,
    email: String,
    choices: Vec<RoleChoice>,
    errors: FieldErrors,
}

async fn role_names(state: &AppState) -> Result<Vec<String>, Page> {
    let Json(roles) = access::list_roles(State(state.clone())).await?;
    Ok(roles.into_iter().map(|r| r.name).collect())
}

/// The edit form's role lines for what a user holds.
fn choices_of(roles: &[String], held: &[RoleBindingView]) -> Vec<RoleChoice> {
    roles
        .iter()
        .map(|role| {
            let b = held.iter().find(|b| &b.role == role);
            RoleChoice {
                role: role.clone(),
                checked: b.is_some(),
                groups: b.map_or_else(String::new, |b| b.groups.join(", ")),
                regions: b.map_or_else(String::new, |b| b.regions.join(", ")),
            }
        })
        .collect()
}

/// The edit form's role lines as submitted: `role` (one per checked role), `groups.<role>`,
/// `regions.<role>`. A role the form did not offer is still passed on (the API refuses it).
fn choices_from(roles: &[String], f: &FormData) -> Vec<RoleChoice> {
    let checked = f.all("role");
    let mut names: Vec<String> = roles.to_vec();
    names.extend(checked.iter().filter(|c| !roles.contains(c)).cloned());
    names
        .into_iter()
        .map(|role| RoleChoice {
            checked: checked.contains(&role),
            groups: f.text(&format!("groups.{role}")),
            regions: f.text(&format!("regions.{role}")),
            role,
        })
        .collect()
}

fn bindings_of(choices: &[RoleChoice]) -> Vec<RoleBindingView> {
    choices
        .iter()
        .filter(|c| c.checked)
        .map(|c| RoleBindingView { role: c.role.clone(), groups: list(&c.groups), regions: list(&c.regions) })
        .collect()
}

/// Refusals of the edit form: a role's groups or regions are said next to the roles, naming
/// which list is wrong.
fn edit_errors(e: &ApiError) -> FieldErrors {
    match e.field.as_deref() {
        Some("groups" | "regions") => FieldErrors::field("roles", capitalised(&e.message)),
        _ => FieldErrors::from_api(e, &[]),
    }
}

pub async fn edit_page(State(state): State<AppState>, ctx: Ctx, Path(id): Path<String>) -> Result<Response, Page> {
    let Json(user) = access::get_user(State(state.clone()), Path(id)).await?;
    let roles = role_names(&state).await?;
    let page = EditPage {
        ctx: ctx.at("users"),
        choices: choices_of(&roles, &user.roles),
        id: user.id,
        username: user.username,
        display_name: user.display_name.unwrap_or_default(),
        email: user.email.unwrap_or_default(),
        errors: FieldErrors::none(),
    };
    Ok(render(StatusCode::OK, &page))
}

pub async fn edit(
    State(state): State<AppState>,
    ctx: Ctx,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
    axum::Form(pairs): axum::Form<Vec<(String, String)>>,
) -> Result<Response, Page> {
    let Json(user) = access::get_user(State(state.clone()), Path(id.clone())).await?;
    let f = FormData(pairs);
    let choices = choices_from(&role_names(&state).await?, &f);
    let (display_name, email) = (f.text("display_name"), f.text("email"));
    let patch = UserPatch {
        display_name: Some(optional(&display_name)),
        email: Some(optional(&email)),
        status: None,
        roles: Some(bindings_of(&choices)),
    };
    match access::patch_user(State(state.clone()), caller, Path(id.clone()), ApiJson(patch)).await {
        Ok(_) => Ok(done("updated", &id)),
        Err(e) => {
            let errors = edit_errors(&e);
            let page =
                EditPage { ctx: ctx.at("users"), id, username: user.username, display_name, email, choices, errors };
            Ok(render(e.status, &page))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binding(role: &str, groups: &[&str]) -> RoleBindingView {
        RoleBindingView { role: role.into(), groups: groups.iter().map(|g| (*g).to_owned()).collect(), regions: vec![] }
    }

    #[test]
    fn role_lines_round_trip_through_the_form() {
        let roles = vec!["admin".to_owned(), "operator".to_owned()];
        let shown = choices_of(&roles, &[binding("operator", &["north", "south"])]);
        assert_eq!((shown[0].checked, shown[1].checked, shown[1].groups.as_str()), (false, true, "north, south"));
        let f = FormData(
            [("role", "operator"), ("groups.operator", "north, south"), ("groups.admin", "ignored"), ("role", "ghost")]
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        );
        let back = choices_from(&roles, &f);
        assert_eq!(bindings_of(&back), [binding("operator", &["north", "south"]), binding("ghost", &[])]);
    }

    #[test]
    fn a_bad_scope_names_its_list() {
        let e: ApiError = palisade_core::InvalidField::new("regions", "longer than 256 characters").into();
        assert_eq!(edit_errors(&e).get("roles"), Some("Regions: longer than 256 characters"));
        let e: ApiError = palisade_core::InvalidField::new("roles", "no role named \"x\"").into();
        assert_eq!(edit_errors(&e).get("roles"), Some("No role named \"x\""));
    }

    #[test]
    fn notices_say_only_known_things() {
        assert_eq!(notice("unlocked", Some("bob")).as_deref(), Some("bob is unlocked and may sign in again."));
        assert_eq!(notice("<script>", Some("bob")), None);
        assert!(notice("disabled", None).is_some_and(|n| n.starts_with("The account is disabled")));
    }

    #[test]
    fn a_taken_username_is_said_next_to_it() {
        let e = ApiError::new(StatusCode::CONFLICT, "conflict", "username \"bob\" is taken");
        assert_eq!(create_errors(&e).get("username"), Some("This username is taken."));
        let e: ApiError = palisade_core::InvalidField::new("roles", "no role named \"x\"").into();
        assert_eq!(create_errors(&e).get("role"), Some("No role named \"x\""));
    }
}
