//! What a Linux device can tell about itself: each `/proc` and `/sys` source is parsed by a pure
//! function, and [`Collector`] reads them into a Telemetry v1 report.

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use palisade_proto::telemetry::{Auth, Cell, Connection, Firmware, Listening, Loc, Net, Sys, TelemetryV1};
use sha2::{Digest, Sha256};

/// Most entries in one list of a report (the server refuses more).
pub const MAX_LIST: usize = 4096;
/// Longest boot id kept (the server refuses longer strings).
const MAX_TEXT: usize = 256;
/// How long `mmcli` may take, and how long gpsd may take to give a fix.
const MMCLI_TIMEOUT: Duration = Duration::from_secs(5);
const GPSD_TIMEOUT: Duration = Duration::from_secs(2);
/// ModemManager is asked once every so many reports (the identity rarely changes).
const MMCLI_EVERY: u64 = 10;
/// Most of the auth log read per report (the rest is read by the next ones).
const AUTH_LOG_CHUNK: u64 = 1024 * 1024;
const EFI_SECURE_BOOT: &str = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";
const SOCKET_TABLES: [(&str, &str, bool); 4] = [
    ("proc/net/tcp", "tcp", false),
    ("proc/net/tcp6", "tcp", true),
    ("proc/net/udp", "udp", false),
    ("proc/net/udp6", "udp", true),
];

/// Byte counters since boot, summed over every interface but `lo`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub tx_bytes: u64,
    pub rx_bytes: u64,
}

/// Parses `/proc/net/dev`; `None` when no interface line could be read.
pub fn parse_net_dev(text: &str) -> Option<NetCounters> {
    let mut sum: Option<NetCounters> = None;
    for (name, counters) in text.lines().filter_map(|line| line.split_once(':')) {
        let mut fields = counters.split_whitespace().map(|f| f.parse::<u64>().ok());
        let (Some(Some(rx)), Some(Some(tx))) = (fields.next(), fields.nth(7)) else { continue };
        let sum = sum.get_or_insert_default();
        if name.trim() != "lo" {
            sum.rx_bytes = sum.rx_bytes.saturating_add(rx);
            sum.tx_bytes = sum.tx_bytes.saturating_add(tx);
        }
    }
    sum
}

/// What a socket is doing, as far as the report cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    /// A listening TCP socket, or a bound and unconnected UDP one.
    Listen,
    Established,
    Other,
}

/// One line of `/proc/net/{tcp,tcp6,udp,udp6}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: String,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub state: SocketState,
}

/// Parses a socket table; `proto` is `"tcp"` or `"udp"`, `v6` says which address width to expect.
/// Lines that cannot be read (the header among them) are skipped.
pub fn parse_sockets(text: &str, proto: &str, v6: bool) -> Vec<Socket> {
    let udp = proto == "udp";
    let parse = |line: &str| {
        let mut fields = line.split_whitespace().skip(1);
        let local = parse_hex_addr(fields.next()?, v6)?;
        let remote = parse_hex_addr(fields.next()?, v6)?;
        let state = match u8::from_str_radix(fields.next()?, 16).ok()? {
            0x0A if !udp => SocketState::Listen,
            0x07 if udp && remote.port() == 0 && remote.ip().is_unspecified() => SocketState::Listen,
            0x01 => SocketState::Established,
            _ => SocketState::Other,
        };
        Some(Socket { proto: proto.to_owned(), local, remote, state })
    };
    text.lines().filter_map(parse).collect()
}

/// Decodes `0100007F:0016`: the address is printed as 32-bit words in host byte order, the port
/// in hexadecimal.
fn parse_hex_addr(text: &str, v6: bool) -> Option<SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    if port.len() != 4 || !ip.bytes().chain(port.bytes()).all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let word = |i: usize| ip.get(i * 8..i * 8 + 8).and_then(|w| u32::from_str_radix(w, 16).ok()).map(u32::to_ne_bytes);
    let ip = match (v6, ip.len()) {
        (false, 8) => IpAddr::from(word(0)?),
        (true, 32) => IpAddr::from(<[u8; 16]>::try_from((0..4).map(word).collect::<Option<Vec<_>>>()?.concat()).ok()?),
        _ => return None,
    };
    Some(SocketAddr::new(ip, u16::from_str_radix(port, 16).ok()?))
}

/// The report's view of sockets, deduplicated and sorted, at most [`MAX_LIST`] of each: the ports
/// listened on (not those bound to loopback only, which no one outside can reach), and the remote
/// ends of established connections (loopback ones skipped; IPv4-mapped IPv6 shown as IPv4).
pub fn summarize_sockets(sockets: &[Socket]) -> (Vec<Listening>, Vec<Connection>) {
    let mut listening = BTreeSet::new();
    let mut connections = BTreeSet::new();
    for s in sockets {
        match s.state {
            SocketState::Listen if !s.local.ip().to_canonical().is_loopback() => {
                listening.insert((s.proto.as_str(), s.local.port()));
            }
            SocketState::Established => {
                let dst = s.remote.ip().to_canonical();
                if !dst.is_loopback() && !dst.is_unspecified() {
                    connections.insert((s.proto.as_str(), dst, s.remote.port()));
                }
            }
            _ => {}
        }
    }
    let listening = listening.into_iter().take(MAX_LIST).map(|(proto, port)| Listening { proto: proto.into(), port });
    let connections = connections.into_iter().take(MAX_LIST).map(|(proto, dst, port)| Connection {
        proto: proto.into(),
        dst: dst.to_string(),
        port,
    });
    (listening.collect(), connections.collect())
}

/// CPU time since boot, in clock ticks: `busy` is everything but idle and iowait.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTimes {
    pub busy: u64,
    pub total: u64,
}

/// Parses the aggregate `cpu ` line of `/proc/stat` (guest time is already within user time).
pub fn parse_cpu(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|line| line.starts_with("cpu "))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).take(8).map(|f| f.parse().ok()).collect::<Option<_>>()?;
    let idle = fields.get(3)?.saturating_add(fields.get(4).copied().unwrap_or(0));
    let total = fields.iter().fold(0u64, |sum, f| sum.saturating_add(*f));
    Some(CpuTimes { busy: total.saturating_sub(idle), total })
}

/// CPU use between two samples, in 0..=100; `None` when no time passed (or the counters went back).
pub fn cpu_pct(prev: CpuTimes, cur: CpuTimes) -> Option<f64> {
    let total = cur.total.checked_sub(prev.total).filter(|&t| t > 0)?;
    let busy = cur.busy.saturating_sub(prev.busy).min(total);
    Some(100.0 * busy as f64 / total as f64)
}

/// Memory in use from `/proc/meminfo`, in percent (kernels before 3.14 have no `MemAvailable`:
/// free, buffers and cache count as available there).
pub fn parse_meminfo(text: &str) -> Option<f64> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':')?.split_whitespace().next()?.parse::<u64>().ok())
    };
    let total = field("MemTotal").filter(|&t| t > 0)?;
    let available = field("MemAvailable")
        .or_else(|| Some(field("MemFree")?.saturating_add(field("Buffers")?).saturating_add(field("Cached")?)))?;
    Some(100.0 * total.saturating_sub(available) as f64 / total as f64)
}

/// Whole seconds since boot from `/proc/uptime`.
pub fn parse_uptime(text: &str) -> Option<u64> {
    text.split_whitespace().next()?.split('.').next()?.parse().ok()
}

/// The boot id from `/proc/sys/kernel/random/boot_id`, trimmed; `None` if empty or too long.
pub fn parse_boot_id(text: &str) -> Option<String> {
    Some(text.trim()).filter(|id| !id.is_empty() && id.len() <= MAX_TEXT).map(str::to_owned)
}

/// `sha256:<hex>` of a file, read in 64 KiB chunks.
pub fn firmware_digest(path: &Path) -> io::Result<String> {
    let mut hasher = Sha256::new();
    io::copy(&mut BufReader::with_capacity(64 * 1024, File::open(path)?), &mut hasher)?;
    Ok(format!("sha256:{}", hasher.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

/// The state of the EFI `SecureBoot` variable: 4 bytes of attributes, then 1 (on) or 0 (off).
pub fn secure_boot_from_efivar(bytes: &[u8]) -> Option<bool> {
    match bytes.get(4)? {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}

/// One field of `mmcli -J` output: a string, capped, with mmcli's `--` (unknown) and `""` as `None`.
fn mm_text(value: &serde_json::Value, pointer: &str) -> Option<String> {
    let text = value.pointer(pointer)?.as_str()?.trim();
    (!text.is_empty() && text != "--" && text.len() <= MAX_TEXT).then(|| text.to_owned())
}

/// MCC and MNC from a 3GPP operator code (`310410` → `310`, `410`).
fn split_operator(code: Option<String>) -> (Option<String>, Option<String>) {
    match code.filter(|c| (5..=6).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit())) {
        Some(c) => (c.get(..3).map(str::to_owned), c.get(3..).map(str::to_owned)),
        None => (None, None),
    }
}

/// ModemManager access technologies, best first, and how the report names them.
const RATS: [(&str, &[&str]); 6] = [
    ("5g", &["5gnr"]),
    ("lte", &["lte"]),
    ("lte-m", &["lte-cat-m"]),
    ("nb-iot", &["lte-nb-iot"]),
    ("3g", &["hspa-plus", "hspa", "hsupa", "hsdpa", "umts", "evdob", "evdoa", "evdo0"]),
    ("2g", &["edge", "gprs", "gsm", "gsm-compact", "1xrtt"]),
];

/// The modem's identity from `mmcli -m any -J` (ModemManager ≥ 1.10): IMEI, the serving network's
/// MCC/MNC and the best access technology in use; `None` if nothing could be read.
pub fn parse_mmcli_modem(json: &str) -> Option<Cell> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let (mcc, mnc) = split_operator(mm_text(&v, "/modem/3gpp/operator-code"));
    let techs = v.pointer("/modem/generic/access-technologies").and_then(serde_json::Value::as_array);
    let techs = techs.map_or(&[][..], Vec::as_slice);
    let rat = RATS
        .iter()
        .find(|(_, mm)| techs.iter().any(|t| t.as_str().is_some_and(|t| mm.contains(&t))))
        .map(|(rat, _)| (*rat).to_owned());
    let imei = mm_text(&v, "/modem/3gpp/imei").or_else(|| mm_text(&v, "/modem/generic/equipment-identifier"));
    Some(Cell { imei, mcc, mnc, rat, ..Cell::default() }).filter(|c| *c != Cell::default())
}

/// The SIM's identity from `mmcli -i any -J`: ICCID, IMSI and the home network's MCC/MNC.
pub fn parse_mmcli_sim(json: &str) -> Option<Cell> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let (mcc, mnc) = split_operator(mm_text(&v, "/sim/properties/operator-code"));
    let (iccid, imsi) = (mm_text(&v, "/sim/properties/iccid"), mm_text(&v, "/sim/properties/imsi"));
    Some(Cell { iccid, imsi, mcc, mnc, ..Cell::default() }).filter(|c| *c != Cell::default())
}

/// Each field of `first`, else of `second`.
fn merge_cell(first: Option<Cell>, second: Option<Cell>) -> Option<Cell> {
    let Some(a) = first else { return second };
    let b = second.unwrap_or_default();
    Some(Cell {
        iccid: a.iccid.or(b.iccid),
        imsi: a.imsi.or(b.imsi),
        imei: a.imei.or(b.imei),
        mcc: a.mcc.or(b.mcc),
        mnc: a.mnc.or(b.mnc),
        rat: a.rat.or(b.rat),
    })
}

/// A fix from one line of gpsd's JSON: a `TPV` report in mode 2 (2D) or 3 (3D); the accuracy is
/// `eph`, else the combined `epx`/`epy` (95 % confidence, metres).
pub fn parse_gpsd_tpv(line: &str) -> Option<Loc> {
    let v: serde_json::Value = serde_json::from_str(line).ok()?;
    let num = |key: &str| v.get(key).and_then(serde_json::Value::as_f64).filter(|n| n.is_finite());
    if v.get("class")?.as_str()? != "TPV" || v.get("mode")?.as_u64()? < 2 {
        return None;
    }
    let (lat, lon) = (num("lat").filter(|l| l.abs() <= 90.0)?, num("lon").filter(|l| l.abs() <= 180.0)?);
    let acc_m = num("eph").or_else(|| Some(num("epx")?.hypot(num("epy")?))).filter(|a| a.is_finite() && *a >= 0.0);
    Some(Loc { lat, lon, acc_m })
}

/// Failed local logins in an auth log: sshd's failed passwords and unknown users, PAM's
/// authentication failures and login's `FAILED LOGIN`, one per line.
pub fn count_failed_logins(text: &str) -> u64 {
    const MARKS: [&str; 4] = ["Failed password for", "Invalid user", "authentication failure", "FAILED LOGIN"];
    text.lines().filter(|line| MARKS.iter().any(|m| line.contains(m))).count() as u64
}

/// Facts the device cannot measure from `/proc` and `/sys`, taken from the agent's configuration.
#[derive(Debug, Clone, Default)]
pub struct StaticFacts {
    pub firmware_version: Option<String>,
    /// The firmware image to digest (used as given, not under the collector's root).
    pub firmware_image: Option<PathBuf>,
    /// Used when the EFI `SecureBoot` variable cannot be read (most embedded boards have none).
    pub secure_boot: Option<bool>,
    pub debug_enabled: Option<bool>,
    /// Used where ModemManager cannot tell (field by field).
    pub cell: Option<Cell>,
    /// Used when gpsd has no fix.
    pub loc: Option<Loc>,
    /// The `mmcli` program to ask ModemManager with, when configured.
    pub mmcli: Option<PathBuf>,
    /// gpsd's `host:port`, when configured.
    pub gpsd: Option<String>,
    /// The auth log whose new failed logins are counted (used as given, not under the root).
    pub auth_log: Option<PathBuf>,
}

/// What identifies a version of the firmware image: path, size and modification time.
type ImageKey = (PathBuf, u64, Option<SystemTime>);

/// Reads the device's facts into reports; keeps the previous CPU sample (CPU use is measured
/// between two reports) and the firmware digest (recomputed when the image's size or mtime change).
#[derive(Debug)]
pub struct Collector {
    root: PathBuf,
    prev_cpu: Option<CpuTimes>,
    digest: Option<(ImageKey, String)>,
    reports: u64,
    /// What ModemManager said last time it was asked.
    modem: Option<Cell>,
    /// How far the auth log has been read; `None` before the first report.
    auth_offset: Option<u64>,
}

impl Default for Collector {
    fn default() -> Self {
        Self::new("/")
    }
}

impl Collector {
    /// A collector reading `proc/…` and `sys/…` under `root` (`/` on a device).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), prev_cpu: None, digest: None, reports: 0, modem: None, auth_offset: None }
    }

    /// One report. Sources that are missing or unreadable are left out, never an error; the first
    /// report has no CPU use.
    pub fn collect(&mut self, facts: &StaticFacts, seq: i64, ts: String) -> TelemetryV1 {
        if let Some(mmcli) = &facts.mmcli
            && self.reports.is_multiple_of(MMCLI_EVERY)
        {
            let sim = run_bounded(mmcli, &["-i", "any", "-J"]).and_then(|json| parse_mmcli_sim(&json));
            self.modem = merge_cell(run_bounded(mmcli, &["-m", "any", "-J"]).and_then(|j| parse_mmcli_modem(&j)), sim);
        }
        self.reports = self.reports.wrapping_add(1);
        let failed_logins = facts.auth_log.as_deref().and_then(|log| self.new_failed_logins(log));
        TelemetryV1 {
            v: 1,
            ts: Some(ts),
            seq: Some(seq),
            net: self.net(),
            sys: self.sys(),
            fw: self.firmware(facts),
            cell: merge_cell(self.modem.clone(), facts.cell.clone()),
            loc: facts.gpsd.as_deref().and_then(gpsd_fix).or_else(|| facts.loc.clone()),
            auth: failed_logins.map(|n| Auth { failed_logins: Some(n), default_credentials: None }),
        }
    }

    fn read(&self, path: &str) -> Option<String> {
        fs::read_to_string(self.root.join(path)).ok()
    }

    fn net(&self) -> Option<Net> {
        let counters = self.read("proc/net/dev").and_then(|text| parse_net_dev(&text));
        let tables: Vec<Vec<Socket>> = SOCKET_TABLES
            .iter()
            .filter_map(|&(path, proto, v6)| Some(parse_sockets(&self.read(path)?, proto, v6)))
            .collect();
        if counters.is_none() && tables.is_empty() {
            return None;
        }
        let (listening, connections) = summarize_sockets(&tables.concat());
        Some(Net {
            tx_bytes: counters.map(|c| c.tx_bytes),
            rx_bytes: counters.map(|c| c.rx_bytes),
            listening,
            connections,
        })
    }

    fn sys(&mut self) -> Option<Sys> {
        let cpu = self.read("proc/stat").and_then(|text| parse_cpu(&text));
        let sys = Sys {
            cpu_pct: self.prev_cpu.zip(cpu).and_then(|(prev, cur)| cpu_pct(prev, cur)),
            mem_pct: self.read("proc/meminfo").and_then(|text| parse_meminfo(&text)),
            uptime_s: self.read("proc/uptime").and_then(|text| parse_uptime(&text)),
            boot_id: self.read("proc/sys/kernel/random/boot_id").and_then(|text| parse_boot_id(&text)),
        };
        self.prev_cpu = cpu;
        (sys != Sys::default()).then_some(sys)
    }

    fn firmware(&mut self, facts: &StaticFacts) -> Option<Firmware> {
        let measured = fs::read(self.root.join(EFI_SECURE_BOOT)).ok().and_then(|b| secure_boot_from_efivar(&b));
        let fw = Firmware {
            version: facts.firmware_version.clone(),
            digest: facts.firmware_image.as_deref().and_then(|image| self.image_digest(image)),
            secure_boot: measured.or(facts.secure_boot),
            debug_enabled: facts.debug_enabled,
        };
        (fw != Firmware::default()).then_some(fw)
    }

    /// Failed logins in the lines added to `log` since the previous report (none on the first, which
    /// starts at the end; a file shorter than before was rotated and is read from its start).
    fn new_failed_logins(&mut self, log: &Path) -> Option<u64> {
        let Ok(mut file) = File::open(log) else {
            self.auth_offset = Some(0); // rotated away: its successor is new
            return None;
        };
        let len = file.metadata().ok()?.len();
        let offset = match self.auth_offset {
            None => len,
            Some(offset) if offset > len => 0,
            Some(offset) => offset,
        };
        let mut chunk = Vec::new();
        file.seek(SeekFrom::Start(offset)).ok()?;
        file.take(AUTH_LOG_CHUNK).read_to_end(&mut chunk).ok()?;
        // Whole lines only; a line longer than a chunk is skipped over.
        let used = match chunk.iter().rposition(|&b| b == b'\n') {
            Some(i) => i + 1,
            None if chunk.len() as u64 == AUTH_LOG_CHUNK => chunk.len(),
            None => 0,
        };
        self.auth_offset = Some(offset + used as u64);
        Some(count_failed_logins(&String::from_utf8_lossy(chunk.get(..used)?)))
    }

    fn image_digest(&mut self, image: &Path) -> Option<String> {
        let meta = fs::metadata(image).ok()?;
        let key = (image.to_path_buf(), meta.len(), meta.modified().ok());
        match &self.digest {
            Some((cached, digest)) if *cached == key => Some(digest.clone()),
            _ => {
                let digest = firmware_digest(image).ok()?;
                self.digest = Some((key, digest.clone()));
                Some(digest)
            }
        }
    }
}

/// Runs `program` with `args` and returns what it printed, if it succeeded within [`MMCLI_TIMEOUT`]
/// (it is killed after that); at most 1 MiB of output is kept.
fn run_bounded(program: &Path, args: &[&str]) -> Option<String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        stdout?.take(1024 * 1024).read_to_string(&mut out).ok().map(|_| out)
    });
    let deadline = Instant::now() + MMCLI_TIMEOUT;
    let status = loop {
        match child.try_wait() {
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(Some(status)) => break Some(status),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()??;
    status.filter(|s| s.success()).map(|_| out)
}

/// Asks gpsd at `addr` (`host:port`) for a fix, waiting at most [`GPSD_TIMEOUT`] for one.
fn gpsd_fix(addr: &str) -> Option<Loc> {
    let deadline = Instant::now() + GPSD_TIMEOUT;
    let addr = addr.to_socket_addrs().ok()?.next()?;
    let mut stream = TcpStream::connect_timeout(&addr, GPSD_TIMEOUT).ok()?;
    stream.set_write_timeout(Some(GPSD_TIMEOUT)).ok()?;
    stream.write_all(br#"?WATCH={"enable":true,"json":true};"#).ok()?;
    let mut reader = BufReader::new(stream.take(1024 * 1024));
    let mut line = String::new();
    loop {
        let left = deadline.checked_duration_since(Instant::now()).filter(|d| !d.is_zero())?;
        reader.get_ref().get_ref().set_read_timeout(Some(left)).ok()?;
        line.clear();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if let Some(fix) = parse_gpsd_tpv(&line) {
            return Some(fix);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from Linux devices (addresses changed to documentation ranges).
    const NET_DEV: &str = include_str!("../tests/fixtures/collect/proc/net/dev");
    const TCP: &str = include_str!("../tests/fixtures/collect/proc/net/tcp");
    const TCP6: &str = include_str!("../tests/fixtures/collect/proc/net/tcp6");
    const UDP: &str = include_str!("../tests/fixtures/collect/proc/net/udp");
    const STAT_1: &str = include_str!("../tests/fixtures/collect/proc/stat.1");
    const STAT_2: &str = include_str!("../tests/fixtures/collect/proc/stat.2");
    const MEMINFO: &str = include_str!("../tests/fixtures/collect/proc/meminfo");
    const UPTIME: &str = include_str!("../tests/fixtures/collect/proc/uptime");
    const BOOT_ID: &str = include_str!("../tests/fixtures/collect/proc/sys/kernel/random/boot_id");
    const MMCLI_MODEM: &str = include_str!("../tests/fixtures/collect/mmcli/modem.json");
    const MMCLI_SIM: &str = include_str!("../tests/fixtures/collect/mmcli/sim.json");
    const GPSD_WATCH: &str = include_str!("../tests/fixtures/collect/gpsd/watch.jsonl");
    const AUTH_LOG: &str = include_str!("../tests/fixtures/collect/auth.log");
    const ABC_DIGEST: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn all_sockets() -> Vec<Socket> {
        [(TCP, "tcp", false), (TCP6, "tcp", true), (UDP, "udp", false)]
            .iter()
            .flat_map(|&(text, proto, v6)| parse_sockets(text, proto, v6))
            .collect()
    }

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn net_dev_sums_all_interfaces_but_lo() {
        assert_eq!(parse_net_dev(NET_DEV), Some(NetCounters { rx_bytes: 196_736_717, tx_bytes: 8_235_165 }));
        let only_lo: String = NET_DEV.lines().take(3).map(|l| format!("{l}\n")).collect();
        assert_eq!(parse_net_dev(&only_lo), Some(NetCounters::default()));
        assert_eq!(parse_net_dev("Inter-|   Receive\n"), None);
    }

    #[test]
    fn socket_tables_decode_addresses_and_states() {
        let tcp = parse_sockets(TCP, "tcp", false);
        assert_eq!((tcp.len(), tcp[0].local, tcp[0].state), (5, addr("0.0.0.0:22"), SocketState::Listen));
        assert_eq!((tcp[2].local, tcp[2].remote), (addr("192.168.1.20:51234"), addr("203.0.113.7:443")));
        assert_eq!((tcp[2].state, tcp[4].state), (SocketState::Established, SocketState::Other));
        let tcp6 = parse_sockets(TCP6, "tcp", true);
        assert_eq!((tcp6[0].local, tcp6[1].local), (addr("[::]:8080"), addr("[::1]:6379")));
        assert_eq!((tcp6[2].local, tcp6[2].remote), (addr("[2001:db8::20]:40123"), addr("[2001:db8:1::7]:8883")));
        assert_eq!(tcp6[3].remote, addr("[::ffff:203.0.113.7]:443"));
        let udp = parse_sockets(UDP, "udp", false);
        let states: Vec<_> = udp.iter().map(|s| s.state).collect();
        assert_eq!(states, [SocketState::Listen, SocketState::Listen, SocketState::Established]);
        assert_eq!(udp[1].local, addr("0.0.0.0:68"));
        // A table read with the wrong address width yields nothing rather than nonsense.
        assert!(parse_sockets(TCP6, "tcp", false).is_empty());
    }

    #[test]
    fn sockets_summarize_deduplicated_sorted_and_capped() {
        let (listening, connections) = summarize_sockets(&all_sockets());
        let listening: Vec<_> = listening.iter().map(|l| (l.proto.as_str(), l.port)).collect();
        assert_eq!(listening, [("tcp", 22), ("tcp", 8080), ("udp", 68)]);
        let connections: Vec<_> = connections.iter().map(|c| (c.proto.as_str(), c.dst.as_str(), c.port)).collect();
        assert_eq!(connections, [("tcp", "203.0.113.7", 443), ("tcp", "2001:db8:1::7", 8883), ("udp", "8.8.8.8", 53)]);

        let many: String = (0..5000u32)
            .map(|i| {
                format!("{i}: 1401A8C0:C822 {:08X}:01BB 01 00000000:00000000 00 0\n", (0x0A00_0000 + i).swap_bytes())
            })
            .collect();
        assert_eq!(summarize_sockets(&parse_sockets(&many, "tcp", false)).1.len(), MAX_LIST);
    }

    #[test]
    fn cpu_use_between_two_samples() {
        let (first, second) = (parse_cpu(STAT_1).unwrap(), parse_cpu(STAT_2).unwrap());
        assert_eq!(first, CpuTimes { busy: 701_328, total: 928_876 });
        assert_eq!(cpu_pct(first, second), Some(38.0));
        assert_eq!((cpu_pct(first, first), cpu_pct(second, first)), (None, None));
        assert_eq!(parse_cpu("cpu0 1 2 3 4\n"), None);
    }

    #[test]
    fn memory_uptime_boot_id_and_secure_boot() {
        assert_eq!(parse_meminfo(MEMINFO), Some(75.0));
        let old_kernel = MEMINFO.replace("MemAvailable", "Unrelated");
        assert_eq!(parse_meminfo(&old_kernel), Some(100.0 * (2_048_000.0 - 512_000.0) / 2_048_000.0));
        assert_eq!(parse_meminfo("MemTotal: 0 kB\nMemAvailable: 0 kB\n"), None);
        assert_eq!(parse_uptime(UPTIME), Some(4653));
        assert_eq!(parse_boot_id(BOOT_ID).as_deref(), Some("b20358b1-db88-4e71-8f29-2a82c518ab70"));
        assert_eq!(parse_boot_id(" \n"), None);
        let efivar = |value: &[u8]| secure_boot_from_efivar(&[&[6, 0, 0, 0][..], value].concat());
        assert_eq!((efivar(&[1]), efivar(&[0]), efivar(&[7]), efivar(&[])), (Some(true), Some(false), None, None));
    }

    #[test]
    fn firmware_digest_is_sha256() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fw.bin");
        fs::write(&path, "abc").unwrap();
        assert_eq!(firmware_digest(&path).unwrap(), ABC_DIGEST);
        // Several chunks: the streamed digest is the digest of the whole.
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &big).unwrap();
        let whole: String = Sha256::digest(&big).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(firmware_digest(&path).unwrap(), format!("sha256:{whole}"));
        assert!(firmware_digest(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn garbage_and_truncated_input_never_panics() {
        let mut inputs: Vec<String> =
            ["", ":", "lo:", "cpu  x y z w", "0: 0100007F: :0016 0A", "MemTotal:"].map(String::from).into();
        for sample in [NET_DEV, TCP, TCP6, UDP, STAT_1, MEMINFO, UPTIME, BOOT_ID, MMCLI_MODEM, MMCLI_SIM, GPSD_WATCH] {
            inputs.extend(sample.char_indices().map(|(i, _)| sample[..i].to_owned()));
        }
        let alphabet: Vec<char> = "0123456789ABCDEFabcdef: .\n-+lo cpuMemTotal:é\u{0}".chars().collect();
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize
        };
        inputs
            .extend((0..500).map(|_| (0..next() % 300).map(|_| alphabet[next() % alphabet.len()]).collect::<String>()));
        for text in &inputs {
            parse_net_dev(text);
            for (proto, v6) in [("tcp", false), ("tcp", true), ("udp", false), ("udp", true)] {
                summarize_sockets(&parse_sockets(text, proto, v6));
            }
            let cpu = parse_cpu(text).and_then(|cpu| cpu_pct(CpuTimes::default(), cpu));
            assert!(cpu.is_none_or(|p| (0.0..=100.0).contains(&p)), "{text:?}");
            assert!(parse_meminfo(text).is_none_or(|p| (0.0..=100.0).contains(&p)), "{text:?}");
            let _ = (parse_uptime(text), parse_boot_id(text), secure_boot_from_efivar(text.as_bytes()));
            let _ = (parse_mmcli_modem(text), parse_mmcli_sim(text), parse_gpsd_tpv(text), count_failed_logins(text));
        }
    }

    #[test]
    fn modem_manager_identity() {
        let modem = parse_mmcli_modem(MMCLI_MODEM).unwrap();
        let mcc_mnc = (Some("310".into()), Some("410".into()));
        assert_eq!((modem.imei.as_deref(), (modem.mcc.clone(), modem.mnc.clone())), (Some("867698041234567"), mcc_mnc));
        assert_eq!((modem.rat.as_deref(), modem.iccid.as_ref()), (Some("lte"), None));
        let sim = parse_mmcli_sim(MMCLI_SIM).unwrap();
        assert_eq!(
            (sim.iccid.as_deref(), sim.imsi.as_deref()),
            (Some("89014103211118510720"), Some("310410118510720"))
        );
        for (techs, rat) in [
            (r#"["lte-cat-m"]"#, Some("lte-m")),
            (r#"["lte-nb-iot"]"#, Some("nb-iot")),
            (r#"["umts","hsdpa"]"#, Some("3g")),
            (r#"["gsm"]"#, Some("2g")),
            (r#"["lte","5gnr"]"#, Some("5g")),
            (r#"["unknown"]"#, None),
        ] {
            let json =
                MMCLI_MODEM.replace(r#""access-technologies":["lte"]"#, &format!(r#""access-technologies":{techs}"#));
            assert_eq!(parse_mmcli_modem(&json).unwrap().rat.as_deref(), rat, "{techs}");
        }
        // mmcli prints `--` for what it does not know; overlong strings are dropped.
        let unknown = MMCLI_MODEM.replace("867698041234567", "--").replace("310410", &"9".repeat(300));
        assert_eq!(parse_mmcli_modem(&unknown), Some(Cell { rat: Some("lte".into()), ..Cell::default() }));
        assert_eq!((parse_mmcli_modem(r#"{"modem":{}}"#), parse_mmcli_sim(MMCLI_MODEM)), (None, None));
    }

    #[test]
    fn gpsd_fix_only_from_a_tpv_in_mode_2_or_3() {
        let fixes: Vec<_> = GPSD_WATCH.lines().filter_map(parse_gpsd_tpv).collect();
        assert_eq!(fixes, [Loc { lat: 41.8781006, lon: -87.6298002, acc_m: Some(10.12) }]);
        let no_eph = r#"{"class":"TPV","mode":2,"lat":-33.9,"lon":18.4,"epx":3.0,"epy":4.0}"#;
        assert_eq!(parse_gpsd_tpv(no_eph), Some(Loc { lat: -33.9, lon: 18.4, acc_m: Some(5.0) }));
        for line in
            [r#"{"class":"TPV","mode":1,"lat":1.0,"lon":2.0}"#, r#"{"class":"TPV","mode":3,"lat":91.0,"lon":0}"#]
        {
            assert_eq!(parse_gpsd_tpv(line), None, "{line}");
        }
    }

    #[test]
    fn failed_logins_in_an_auth_log() {
        // Invalid user, 2 PAM authentication failures, 2 failed passwords, 1 FAILED LOGIN.
        assert_eq!(count_failed_logins(AUTH_LOG), 6);
        assert_eq!(
            count_failed_logins(
                "Connection closed by invalid user admin 203.0.113.45
"
            ),
            0
        );
    }

    #[test]
    fn the_auth_log_reader_counts_new_lines_once() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        let facts = StaticFacts { auth_log: Some(log.clone()), ..StaticFacts::default() };
        let mut collector = Collector::new(dir.path());
        let failed = |c: &mut Collector| c.collect(&facts, 1, "ts".into()).auth.and_then(|a| a.failed_logins);
        fs::write(&log, AUTH_LOG).unwrap();
        assert_eq!(failed(&mut collector), Some(0)); // what was there before the agent is not new
        let fail = "Nov 22 10:10:00 gw sshd[9]: Failed password for root from 203.0.113.45 port 1 ssh2
";
        fs::write(&log, format!("{AUTH_LOG}{fail}{fail}{}", &fail[..30])).unwrap();
        assert_eq!(failed(&mut collector), Some(2)); // the unfinished line waits
        fs::write(&log, format!("{AUTH_LOG}{fail}{fail}{fail}")).unwrap();
        assert_eq!((failed(&mut collector), failed(&mut collector)), (Some(1), Some(0)));
        fs::write(&log, fail).unwrap(); // rotated: shorter than what was read
        assert_eq!(failed(&mut collector), Some(1));
        fs::remove_file(&log).unwrap();
        assert_eq!(failed(&mut collector), None);
        fs::write(&log, AUTH_LOG).unwrap();
        assert_eq!(failed(&mut collector), Some(6));
    }

    #[test]
    fn location_from_gpsd_else_from_config() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let gpsd = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut watch = [0; 64];
            let n = conn.read(&mut watch).unwrap();
            assert!(watch[..n].starts_with(b"?WATCH={"));
            let lines: Vec<&str> = GPSD_WATCH.lines().collect();
            conn.write_all(format!("{}\n{}\n", lines[0], lines[5]).as_bytes()).unwrap();
        });
        let config = Loc { lat: 1.0, lon: 2.0, acc_m: None };
        let mut facts = StaticFacts { gpsd: Some(addr.clone()), loc: Some(config.clone()), ..StaticFacts::default() };
        let loc = Collector::default().collect(&facts, 1, "ts".into()).loc.unwrap();
        assert_eq!((loc.lat, loc.acc_m), (41.8781006, Some(10.12)));
        gpsd.join().unwrap();
        // gpsd gone: the configured location.
        assert_eq!(Collector::default().collect(&facts, 2, "ts".into()).loc, Some(config.clone()));
        facts.gpsd = Some("localhost:notaport".into());
        assert_eq!(Collector::default().collect(&facts, 3, "ts".into()).loc, Some(config));
    }

    #[test]
    #[cfg(unix)]
    fn cell_from_mmcli_else_from_config() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "modem.json", MMCLI_MODEM);
        put(dir.path(), "sim.json", MMCLI_SIM);
        let d = dir.path().display();
        let script = format!("#!/bin/sh\ncase \"$1\" in -m) cat '{d}/modem.json';; -i) cat '{d}/sim.json';; esac\n");
        put(dir.path(), "mmcli", script);
        fs::set_permissions(dir.path().join("mmcli"), fs::Permissions::from_mode(0o755)).unwrap();
        let config = Cell { rat: Some("lte-m".into()), mcc: Some("001".into()), ..Cell::default() };
        let mut facts =
            StaticFacts { mmcli: Some(dir.path().join("mmcli")), cell: Some(config.clone()), ..StaticFacts::default() };
        let cell = Collector::new(dir.path()).collect(&facts, 1, "ts".into()).cell.unwrap();
        let measured =
            Cell { iccid: parse_mmcli_sim(MMCLI_SIM).unwrap().iccid, ..parse_mmcli_modem(MMCLI_MODEM).unwrap() };
        assert_eq!(cell, Cell { imsi: Some("310410118510720".into()), ..measured });
        // No mmcli, or one that fails: the configured identity.
        for program in ["/nonexistent/mmcli", "false"] {
            facts.mmcli = Some(program.into());
            assert_eq!(Collector::new(dir.path()).collect(&facts, 1, "ts".into()).cell, Some(config.clone()));
        }
    }

    fn put(root: &Path, path: &str, contents: impl AsRef<[u8]>) {
        let path = root.join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    #[test]
    fn collector_reads_a_proc_and_sys_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for (path, text) in
            [("proc/net/dev", NET_DEV), ("proc/net/tcp", TCP), ("proc/net/tcp6", TCP6), ("proc/net/udp", UDP)]
                .into_iter()
                .chain([("proc/stat", STAT_1), ("proc/meminfo", MEMINFO), ("proc/uptime", UPTIME)])
                .chain([("proc/sys/kernel/random/boot_id", BOOT_ID), ("fw.img", "abc")])
        {
            put(root, path, text);
        }
        put(root, EFI_SECURE_BOOT, [6, 0, 0, 0, 1]);
        let facts = StaticFacts {
            firmware_version: Some("1.4.2".into()),
            firmware_image: Some(root.join("fw.img")),
            secure_boot: Some(false),
            debug_enabled: Some(false),
            cell: Some(Cell { rat: Some("lte-m".into()), ..Cell::default() }),
            ..StaticFacts::default()
        };
        let mut collector = Collector::new(root);
        assert_eq!(collector.collect(&facts, 1, "2026-11-22T10:00:00Z".into()).sys.unwrap().cpu_pct, None);
        put(root, "proc/stat", STAT_2);
        let t = collector.collect(&facts, 2, "2026-11-22T10:01:00Z".into());

        let (listening, connections) = summarize_sockets(&all_sockets());
        assert_eq!(t.net, Some(Net { tx_bytes: Some(8_235_165), rx_bytes: Some(196_736_717), listening, connections }));
        let boot_id = Some("b20358b1-db88-4e71-8f29-2a82c518ab70".into());
        assert_eq!(t.sys, Some(Sys { cpu_pct: Some(38.0), mem_pct: Some(75.0), uptime_s: Some(4653), boot_id }));
        let fw = Firmware {
            version: Some("1.4.2".into()),
            digest: Some(ABC_DIGEST.into()),
            secure_boot: Some(true), // measured, over the configured value
            debug_enabled: Some(false),
        };
        assert_eq!(
            (t.seq, t.fw.as_ref(), t.cell.as_ref(), t.loc.as_ref()),
            (Some(2), Some(&fw), facts.cell.as_ref(), None)
        );
        assert_eq!(TelemetryV1::parse(&serde_json::to_vec(&t).unwrap()), Ok(t));
    }

    #[test]
    fn missing_sources_are_left_out() {
        let dir = tempfile::tempdir().unwrap();
        put(dir.path(), "proc/uptime", "garbage");
        let facts = StaticFacts { firmware_image: Some(dir.path().join("missing.img")), ..StaticFacts::default() };
        let t = Collector::new(dir.path()).collect(&facts, 7, "ts".into());
        assert_eq!(t, TelemetryV1 { v: 1, seq: Some(7), ts: Some("ts".into()), ..TelemetryV1::default() });
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn collector_on_this_machine() {
        let mut collector = Collector::default();
        collector.collect(&StaticFacts::default(), 1, "t1".into());
        let t = collector.collect(&StaticFacts::default(), 2, "t2".into());
        let sys = t.sys.as_ref().unwrap();
        assert!(sys.uptime_s.unwrap() > 0);
        assert!((0.0..=100.0).contains(&sys.mem_pct.unwrap()));
        assert!(sys.cpu_pct.is_none_or(|p| (0.0..=100.0).contains(&p)));
        let net = t.net.as_ref().unwrap();
        assert!(net.tx_bytes.is_some() && net.rx_bytes.is_some());
        assert!(TelemetryV1::parse(&serde_json::to_vec(&t).unwrap()).is_ok());
    }
}
