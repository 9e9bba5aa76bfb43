//! `palisade vuln …`: SBOMs, advisory imports and exposure queries through the API.
//!
//! `import` takes files and directories: every `.json` file found (directories recursively)
//! and every `.zip` goes into one zip, sent as one import, so a directory is imported all or
//! nothing.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

use crate::firmware::Api;

/// Where the API is.
#[derive(Debug, Args)]
pub struct Endpoint {
    /// The console URL (REST API), e.g. https://palisade.example:8443.
    #[arg(long, env = "PALISADE_URL")]
    server: String,
    /// Palisade's root CA (PEM).
    #[arg(long, env = "PALISADE_CA")]
    ca: PathBuf,
    /// An API key (firmware.publish to attach SBOMs, rules.manage to import, alerts.read to query).
    #[arg(long, env = "PALISADE_API_KEY", hide_env_values = true)]
    api_key: String,
}

#[derive(Debug, Subcommand)]
pub enum VulnCommand {
    /// Attach an SBOM (CycloneDX or SPDX JSON) to a firmware build.
    Sbom {
        #[arg(long)]
        model: String,
        #[arg(long)]
        version: String,
        file: PathBuf,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// Import advisories (OSV, CycloneDX VEX, CSAF): files, zips and directories, as one import.
    Import {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// The devices a vulnerability touches, by any id or alias.
    Devices {
        id: String,
        #[arg(long, default_value_t = 0)]
        offset: usize,
        #[arg(long, default_value_t = 100)]
        limit: usize,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// The vulnerabilities touching one device.
    Device {
        id: String,
        #[command(flatten)]
        endpoint: Endpoint,
    },
    /// The fleet's most urgent vulnerabilities (CVSS × criticality) and SBOM coverage.
    Fleet {
        #[arg(long, default_value_t = 20)]
        top: usize,
        #[command(flatten)]
        endpoint: Endpoint,
    },
}

fn api(e: &Endpoint) -> anyhow::Result<Api> {
    Api::new(&e.server, &e.ca, &e.api_key)
}

/// Path segments are percent-encoded so any model or version name survives the URL.
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub async fn run(cmd: VulnCommand) -> anyhow::Result<()> {
    let answer = match cmd {
        VulnCommand::Sbom { model, version, file, endpoint } => {
            let body = std::fs::read(&file).with_context(|| format!("{}", file.display()))?;
            let path = format!("/api/v1/firmware/{}/{}/sbom", segment(&model), segment(&version));
            api(&endpoint)?.call("PUT", &path, "application/json", body).await?
        }
        VulnCommand::Import { paths, endpoint } => {
            let (body, files) = bundle(&paths)?;
            eprintln!("importing {files} file(s) as one import");
            let name = paths.first().map(|p| p.display().to_string()).unwrap_or_default();
            let path = format!("/api/v1/advisories?name={}", segment(&name));
            api(&endpoint)?.call("POST", &path, "application/zip", body).await?
        }
        VulnCommand::Devices { id, offset, limit, endpoint } => {
            let path = format!("/api/v1/vulnerabilities/{}/devices?offset={offset}&limit={limit}", segment(&id));
            api(&endpoint)?.call("GET", &path, "", Vec::new()).await?
        }
        VulnCommand::Device { id, endpoint } => {
            let path = format!("/api/v1/devices/{}/vulnerabilities", segment(&id));
            api(&endpoint)?.call("GET", &path, "", Vec::new()).await?
        }
        VulnCommand::Fleet { top, endpoint } => {
            api(&endpoint)?.call("GET", &format!("/api/v1/vulnerabilities?top={top}"), "", Vec::new()).await?
        }
    };
    let (status, body) = answer;
    let json: Value =
        serde_json::from_slice(&body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    if status == 404 {
        let message = json.pointer("/error/message").and_then(Value::as_str).unwrap_or("not found");
        bail!("{message}");
    }
    println!("{}", serde_json::to_string_pretty(&json)?);
    Ok(())
}

/// Every `.json` and `.zip` under the paths (directories recursively, in name order).
fn collect(path: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let meta = std::fs::metadata(path).with_context(|| format!("{}", path.display()))?;
    if meta.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("{}", path.display()))?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}", path.display()))?;
        entries.sort();
        for entry in entries {
            let is_dir = std::fs::metadata(&entry).is_ok_and(|m| m.is_dir());
            let ext = entry.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if is_dir || matches!(ext.as_deref(), Some("json" | "zip")) {
                collect(&entry, out)?;
            }
        }
    } else {
        out.push(path.to_owned());
    }
    Ok(())
}

/// One zip of every advisory file found (zips are unpacked into it), and how many files.
fn bundle(paths: &[PathBuf]) -> anyhow::Result<(Vec<u8>, usize)> {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files)?;
    }
    let mut out = std::io::Cursor::new(Vec::new());
    let mut count = 0usize;
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
        for file in &files {
            let bytes = std::fs::read(file).with_context(|| format!("{}", file.display()))?;
            if palisade_vuln::bundle::is_zip(&bytes) {
                let inner = palisade_vuln::bundle::unpack(&bytes).with_context(|| format!("{}", file.display()))?;
                for f in inner.files {
                    zip.start_file(format!("{}/{}", file.display(), f.name), options)?;
                    zip.write_all(&f.bytes)?;
                    count += 1;
                }
            } else {
                zip.start_file(file.display().to_string(), options)?;
                zip.write_all(&bytes)?;
                count += 1;
            }
        }
        zip.finish()?;
    }
    if count == 0 {
        bail!(
            "no .json advisory file found in {}",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        );
    }
    Ok((out.into_inner(), count))
}
