//! `palisade rollout …`: staged firmware rollouts through the API (`/api/v1/rollouts`).

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::firmware::{Api, Server};

#[derive(Debug, Subcommand)]
pub enum RolloutCommand {
    /// Start a rollout of a catalogue target (phases are cumulative: 10%,50%,100% or counts).
    Create(Box<CreateArgs>),
    /// Every rollout, or one with its phases and failures.
    Status {
        id: Option<String>,
        #[command(flatten)]
        server: Server,
    },
    /// Pause, resume, approve (the next phase) or abort.
    Pause {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    Resume {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    Approve {
        id: String,
        #[command(flatten)]
        server: Server,
    },
    Abort {
        id: String,
        #[command(flatten)]
        server: Server,
    },
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The catalogue target (see `GET /api/v1/firmware`).
    #[arg(long)]
    target: String,
    #[arg(long = "group")]
    groups: Vec<String>,
    #[arg(long = "region")]
    regions: Vec<String>,
    #[arg(long = "model")]
    models: Vec<String>,
    #[arg(long = "tag")]
    tags: Vec<String>,
    /// Only devices running this version (repeatable).
    #[arg(long = "from-version")]
    from_versions: Vec<String>,
    /// Devices of this group go first and must all succeed.
    #[arg(long)]
    staging_group: Option<String>,
    /// Comma-separated phases, e.g. 10%,50%,100%.
    #[arg(long, value_delimiter = ',', required = true)]
    phases: Vec<String>,
    /// Percentage of a phase that must succeed to go on (default 95).
    #[arg(long)]
    success_pct: Option<u8>,
    /// Failures that halt the rollout: 5% (of the phase) or a count.
    #[arg(long)]
    failure_threshold: Option<String>,
    /// Wait for `palisade rollout approve` between phases.
    #[arg(long)]
    approval: bool,
    #[arg(long)]
    silent_timeout_secs: Option<u64>,
    /// At most this many new devices a minute.
    #[arg(long)]
    rate_per_minute: Option<usize>,
    /// Maintenance window start, cron-like: "0 1 * * 1-5".
    #[arg(long, requires = "window_mins")]
    window: Option<String>,
    #[arg(long)]
    window_mins: Option<u32>,
    /// The window's UTC offset, e.g. +02:00.
    #[arg(long, default_value = "Z")]
    utc_offset: String,
    #[command(flatten)]
    server: Server,
}

pub async fn run(cmd: RolloutCommand) -> anyhow::Result<()> {
    let (api, method, path, body) = match cmd {
        RolloutCommand::Create(a) => {
            let body = json!({
                "target": a.target, "groups": a.groups, "regions": a.regions, "models": a.models, "tags": a.tags,
                "from_versions": a.from_versions, "staging_group": a.staging_group, "phases": a.phases,
                "success_pct": a.success_pct, "failure_threshold": a.failure_threshold, "approval": a.approval,
                "silent_timeout_secs": a.silent_timeout_secs,
                "rate": a.rate_per_minute.map(|n| json!({"per_minute": n})),
                "window": a.window.map(|cron| json!({"cron": cron, "duration_mins": a.window_mins, "utc_offset": a.utc_offset})),
            });
            (Api::of(&a.server)?, "POST", "/api/v1/rollouts".to_owned(), body.to_string().into_bytes())
        }
        RolloutCommand::Status { id, server } => {
            let path = id.map_or_else(|| "/api/v1/rollouts".to_owned(), |id| format!("/api/v1/rollouts/{id}"));
            (Api::of(&server)?, "GET", path, Vec::new())
        }
        RolloutCommand::Pause { id, server } => {
            (Api::of(&server)?, "POST", format!("/api/v1/rollouts/{id}/pause"), Vec::new())
        }
        RolloutCommand::Resume { id, server } => {
            (Api::of(&server)?, "POST", format!("/api/v1/rollouts/{id}/resume"), Vec::new())
        }
        RolloutCommand::Approve { id, server } => {
            (Api::of(&server)?, "POST", format!("/api/v1/rollouts/{id}/approve"), Vec::new())
        }
        RolloutCommand::Abort { id, server } => {
            (Api::of(&server)?, "POST", format!("/api/v1/rollouts/{id}/abort"), Vec::new())
        }
    };
    let (status, answer) = api.call(method, &path, "application/json", body).await?;
    if status == 404 {
        return Err(anyhow!("{path}: no such rollout"));
    }
    let v: Value = serde_json::from_slice(&answer).with_context(|| format!("{path}: the answer is not JSON"))?;
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(())
}
