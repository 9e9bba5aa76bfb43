//! The `collect-diagnostics` bundle: the processes running, the sockets open and the last lines
//! of the device's log, bounded so the bundle always fits one MQTT message.

use std::path::Path;

use serde::Serialize;

/// Processes listed at most.
const MAX_PROCESSES: usize = 2048;
/// The bundle is cut to fit under the server's packet limit (256 KiB).
const MAX_BUNDLE: usize = 200 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub pid: u32,
    pub name: String,
    pub cmdline: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bundle {
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The command that asked for it.
    pub command: String,
    pub collected_at: String,
    pub processes: Vec<Process>,
    pub listening: Vec<palisade_proto::telemetry::Listening>,
    pub connections: Vec<palisade_proto::telemetry::Connection>,
    pub log: Vec<String>,
}

/// Processes under `proc` (normally `/proc`), by pid.
pub fn processes(proc: &Path) -> Vec<Process> {
    let Ok(entries) = std::fs::read_dir(proc) else { return Vec::new() };
    let mut out: Vec<Process> = entries
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let name = std::fs::read_to_string(e.path().join("comm")).ok()?.trim().chars().take(64).collect();
            let raw = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmdline =
                String::from_utf8_lossy(&raw).split('\0').filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
            Some(Process { pid, name, cmdline: cmdline.chars().take(256).collect() })
        })
        .collect();
    out.sort_by_key(|p| p.pid);
    out.truncate(MAX_PROCESSES);
    out
}

/// The sockets open on the device: listening and established (from `proc/net/{tcp,udp}[6]`).
pub fn sockets(proc: &Path) -> (Vec<palisade_proto::telemetry::Listening>, Vec<palisade_proto::telemetry::Connection>) {
    let mut all = Vec::new();
    for (file, proto, v6) in
        [("tcp", "tcp", false), ("tcp6", "tcp", true), ("udp", "udp", false), ("udp6", "udp", true)]
    {
        if let Ok(text) = std::fs::read_to_string(proc.join("net").join(file)) {
            all.extend(crate::collect::parse_sockets(&text, proto, v6));
        }
    }
    crate::collect::summarize_sockets(&all)
}

/// The last `n` lines of `path` (read from the end: a huge log is never read whole).
pub fn tail(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    use std::io::{Read as _, Seek as _, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    let len = f.metadata()?.len();
    let window = (n as u64).saturating_mul(512).min(len);
    f.seek(SeekFrom::Start(len - window))?;
    let mut buf = Vec::new();
    f.take(window).read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let mut lines: Vec<String> = text.lines().map(|l| l.chars().take(1024).collect()).collect();
    if window < len && !lines.is_empty() {
        lines.remove(0); // probably cut in the middle
    }
    let skip = lines.len().saturating_sub(n);
    Ok(lines.split_off(skip))
}

impl Bundle {
    /// The bundle as JSON, trimmed (log first, then processes) until it fits.
    pub fn to_json(mut self) -> Vec<u8> {
        loop {
            let json = serde_json::to_vec(&self).unwrap_or_default();
            if json.len() <= MAX_BUNDLE || (self.log.is_empty() && self.processes.is_empty()) {
                return json;
            }
            if self.log.is_empty() {
                self.processes.truncate(self.processes.len() / 2);
            } else {
                self.log.drain(..self.log.len().div_ceil(2));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn processes_of_this_machine() {
        let ps = processes(Path::new("/proc"));
        assert!(!ps.is_empty());
        let me = ps.iter().find(|p| p.pid == std::process::id()).unwrap();
        assert!(!me.name.is_empty());
    }

    #[test]
    fn sockets_of_this_machine() {
        let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let (listening, _) = sockets(Path::new("/proc"));
        assert!(listening.iter().any(|l| l.proto == "tcp" && l.port == port), "{listening:?}");
    }

    #[test]
    fn tail_reads_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (1..=5000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, text).unwrap();
        let last = tail(&path, 3).unwrap();
        assert_eq!(last, ["line 4998", "line 4999", "line 5000"]);
        std::fs::write(&path, "only\n").unwrap();
        assert_eq!(tail(&path, 10).unwrap(), ["only"]);
        assert!(tail(&dir.path().join("missing"), 3).is_err());
    }

    #[test]
    fn a_big_bundle_is_trimmed_to_fit() {
        let b = Bundle {
            kind: "diagnostics",
            command: "c".into(),
            collected_at: "t".into(),
            processes: (0..5000).map(|pid| Process { pid, name: "x".repeat(64), cmdline: "y".repeat(256) }).collect(),
            listening: vec![],
            connections: vec![],
            log: (0..2000).map(|i| format!("{i} {}", "z".repeat(1000))).collect(),
        };
        let json = b.to_json();
        assert!(json.len() <= MAX_BUNDLE);
        // With its topic and the packet's header it passes the agent's MQTT client limit, which
        // the server's own (256 KiB) bounds.
        assert!(json.len() + 1024 <= crate::run::MAX_OUTGOING_PACKET);
        const { assert!(crate::run::MAX_OUTGOING_PACKET <= 256 * 1024) };
        let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(v["type"], "diagnostics");
    }
}
