//! Staged firmware rollouts, sans I/O: which devices get the update and when, and when a
//! rollout advances, waits for approval, halts or completes.
//!
//! A rollout is an ordered list of devices (staging devices first, then the rest staggered by
//! region) cut into phases. [`Rollout::step`] looks at what each device reported and answers
//! what to do now: assign the next devices (within the rate limit and the maintenance window),
//! or change status. Time is a parameter (`now_ms`), so every decision is reproducible.

use std::collections::BTreeMap;

use crate::InvalidField;

/// How big a phase is: a share of the devices not in staging, or a count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseSize {
    /// Up to this percentage of all non-staging devices, cumulative (10, 50, 100).
    Percent(u8),
    /// This many more devices.
    Count(usize),
}

/// When failures halt the whole rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureThreshold {
    /// More than this many failed devices in the rollout.
    Absolute(usize),
    /// More than this percentage of the current phase's devices failed.
    Percent(u8),
}

/// How fast devices are assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// No limit.
    None,
    /// At most `per_minute` new assignments in any minute.
    Constant { per_minute: usize },
    /// Batches of `start`, then ×`factor` each minute.
    Exponential { start: usize, factor: u32 },
}

/// A weekly maintenance window: a cron-like start (`minute hour day-of-month month day-of-week`,
/// with `*`, lists, ranges and steps), how long it lasts, and the UTC offset it is written in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    fields: [Vec<bool>; 5],
    pub duration_mins: u32,
    pub utc_offset_mins: i32,
    pub text: String,
}

/// Field ranges of the cron expression: minute, hour, day of month, month, day of week (0 = Sunday).
const CRON: [(u32, u32); 5] = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 6)];

impl Window {
    /// Parses `"0 1 * * 1-5"`, its duration and offset (`+02:00`, `-05:30`, `Z`).
    pub fn parse(cron: &str, duration_mins: u32, utc_offset: &str) -> Result<Self, InvalidField> {
        let bad = |why: String| InvalidField::new("window", why);
        let parts: Vec<&str> = cron.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(bad(format!("{cron:?}: five fields (minute hour day month weekday)")));
        }
        let mut fields: [Vec<bool>; 5] = Default::default();
        for ((part, (lo, hi)), out) in parts.iter().zip(CRON).zip(fields.iter_mut()) {
            *out = cron_field(part, lo, hi).ok_or_else(|| bad(format!("{part:?} is not a field within {lo}-{hi}")))?;
        }
        if duration_mins == 0 || duration_mins > 7 * 24 * 60 {
            return Err(bad("duration must be 1 minute to 7 days".into()));
        }
        Ok(Self { fields, duration_mins, utc_offset_mins: parse_offset(utc_offset)?, text: cron.to_owned() })
    }

    fn starts_at(&self, local_min: i64) -> bool {
        let (min, hour, day, month, weekday) = civil(local_min);
        [min, hour, day, month, weekday]
            .iter()
            .zip(&self.fields)
            .all(|(v, f)| f.get(usize::try_from(*v).unwrap_or(usize::MAX)).copied().unwrap_or(false))
    }

    /// Whether `now_ms` falls inside a window that started at most `duration` ago.
    pub fn contains(&self, now_ms: i64) -> bool {
        let local_min = now_ms.div_euclid(60_000) + i64::from(self.utc_offset_mins);
        (0..i64::from(self.duration_mins)).any(|back| self.starts_at(local_min - back))
    }
}

fn cron_field(s: &str, lo: u32, hi: u32) -> Option<Vec<bool>> {
    let mut set = vec![false; usize::try_from(hi).ok()? + 1];
    for item in s.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, st)) => (r, st.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (item, 1),
        };
        let (a, b) = match range {
            "*" => (lo, hi),
            r => match r.split_once('-') {
                Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
                None => {
                    let v = r.parse().ok()?;
                    (v, if step > 1 { hi } else { v })
                }
            },
        };
        if a < lo || b > hi || a > b {
            return None;
        }
        for v in (a..=b).step_by(usize::try_from(step).ok()?) {
            *set.get_mut(usize::try_from(v).ok()?)? = true;
        }
    }
    Some(set)
}

fn parse_offset(s: &str) -> Result<i32, InvalidField> {
    let bad = || InvalidField::new("utc_offset", format!("{s:?} is not an offset like +02:00, -05:30 or Z"));
    if s == "Z" || s.is_empty() {
        return Ok(0);
    }
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'+') => (1, s.get(1..).ok_or_else(bad)?),
        Some(b'-') => (-1, s.get(1..).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    let (h, m) = rest.split_once(':').ok_or_else(bad)?;
    let (h, m): (i32, i32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    if h > 14 || m > 59 {
        return Err(bad());
    }
    Ok(sign * (h * 60 + m))
}

/// (minute, hour, day of month, month, weekday with 0 = Sunday) of minutes since the epoch.
fn civil(minutes: i64) -> (i64, i64, i64, i64, i64) {
    let days = minutes.div_euclid(1440);
    let in_day = minutes.rem_euclid(1440);
    // Days to civil date (proleptic Gregorian), after Howard Hinnant's well-known algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let weekday = (days + 4).rem_euclid(7); // 1970-01-01 was a Thursday
    (in_day % 60, in_day / 60, day, month, weekday)
}

/// What a rollout is told to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Devices that must all succeed before anyone else gets the update.
    pub staging: Vec<String>,
    pub phases: Vec<PhaseSize>,
    /// Percentage of a phase's devices that must commit for it to pass.
    pub success_pct: u8,
    pub failure: FailureThreshold,
    /// Wait for an operator between phases instead of advancing.
    pub approval: bool,
    /// A device assigned this long ago without an outcome counts as failed.
    pub silent_timeout_ms: i64,
    pub rate: RateLimit,
    pub window: Option<Window>,
}

impl Spec {
    pub fn validate(&self) -> Result<(), InvalidField> {
        if self.phases.is_empty() || self.phases.len() > 20 {
            return Err(InvalidField::new("phases", "between 1 and 20 phases"));
        }
        let mut last = 0u8;
        for (i, p) in self.phases.iter().enumerate() {
            match *p {
                PhaseSize::Percent(n) if n == 0 || n > 100 || n <= last => {
                    return Err(InvalidField::new(
                        format!("phases[{i}]"),
                        "percentages are cumulative: each above the last, at most 100",
                    ));
                }
                PhaseSize::Percent(n) => last = n,
                PhaseSize::Count(0) => return Err(InvalidField::new(format!("phases[{i}]"), "a count above 0")),
                PhaseSize::Count(_) => {}
            }
        }
        if self.success_pct > 100 {
            return Err(InvalidField::new("success_pct", "0 to 100"));
        }
        if let FailureThreshold::Percent(p) = self.failure
            && p > 100
        {
            return Err(InvalidField::new("failure", "a percentage of 0 to 100"));
        }
        if self.silent_timeout_ms <= 0 {
            return Err(InvalidField::new("silent_timeout", "above 0"));
        }
        match self.rate {
            RateLimit::Constant { per_minute: 0 } | RateLimit::Exponential { start: 0, .. } => {
                Err(InvalidField::new("rate", "at least one device a minute"))
            }
            RateLimit::Exponential { factor, .. } if !(1..=100).contains(&factor) => {
                Err(InvalidField::new("rate", "a factor of 1 to 100"))
            }
            _ => Ok(()),
        }
    }
}

/// What one device did with the update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not assigned yet.
    Waiting,
    /// Assigned at this time; no final report yet.
    Assigned { at_ms: i64 },
    /// Running the new version.
    Committed,
    /// Refused, failed its health check and rolled back, or fell silent.
    Failed,
}

/// Where a rollout stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    Running,
    /// The phase passed; an operator must approve the next.
    AwaitingApproval,
    Paused,
    Halted(String),
    Aborted,
    Completed,
}

impl Status {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Paused => "paused",
            Self::Halted(_) => "halted",
            Self::Aborted => "aborted",
            Self::Completed => "completed",
        }
    }

    pub fn is_final(&self) -> bool {
        matches!(self, Self::Halted(_) | Self::Aborted | Self::Completed)
    }
}

/// A rollout in progress: the device order, the phase it is in, and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub spec: Spec,
    /// Every targeted device, in assignment order (staging first).
    pub order: Vec<String>,
    /// Index of the current phase; phase 0 is staging when there is staging.
    pub phase: usize,
    pub status: Status,
    /// Assignments made per minute (minute since the epoch → count), for the rate limit.
    pub assigned_per_minute: BTreeMap<i64, usize>,
    /// When the current phase started (for exponential rates).
    pub phase_started_ms: i64,
}

/// What [`Rollout::step`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    /// Assign the update to these devices now.
    pub assign: Vec<String>,
    /// Devices whose silence now counts as failure (record it).
    pub timed_out: Vec<String>,
    /// The status changed to this (record and audit it).
    pub status_changed: Option<Status>,
}

/// Orders devices: staging first, then the rest round-robin across regions (so one region's
/// trouble shows early without it taking the whole phase), ties by id.
pub fn order(devices: &[(String, Option<String>)], staging: &[String]) -> Vec<String> {
    let mut first: Vec<String> =
        devices.iter().filter(|(id, _)| staging.contains(id)).map(|(id, _)| id.clone()).collect();
    first.sort();
    let mut by_region: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (id, region) in devices.iter().filter(|(id, _)| !staging.contains(id)) {
        by_region.entry(region.clone().unwrap_or_default()).or_default().push(id.clone());
    }
    for ids in by_region.values_mut() {
        ids.sort();
        ids.reverse(); // popped from the end: smallest id first
    }
    loop {
        let mut took = false;
        for ids in by_region.values_mut() {
            if let Some(id) = ids.pop() {
                first.push(id);
                took = true;
            }
        }
        if !took {
            return first;
        }
    }
}

impl Rollout {
    pub fn new(spec: Spec, order: Vec<String>, now_ms: i64) -> Self {
        Self {
            spec,
            order,
            phase: 0,
            status: Status::Running,
            assigned_per_minute: BTreeMap::new(),
            phase_started_ms: now_ms,
        }
    }

    /// Cumulative end (exclusive index into `order`) of every phase, staging first if any.
    pub fn phase_ends(&self) -> Vec<usize> {
        let staged = self.order.iter().filter(|d| self.spec.staging.contains(d)).count();
        let rest = self.order.len() - staged;
        let mut ends = Vec::new();
        if staged > 0 {
            ends.push(staged);
        }
        let mut done = 0usize;
        for p in &self.spec.phases {
            done = match *p {
                PhaseSize::Percent(n) => (rest * usize::from(n)).div_ceil(100).max(done),
                PhaseSize::Count(n) => done.saturating_add(n).min(rest),
            };
            ends.push(staged + done);
        }
        if let Some(last) = ends.last_mut() {
            *last = (*last).max(staged + rest); // the last phase takes whoever is left
        }
        ends.dedup();
        ends
    }

    fn phase_range(&self) -> std::ops::Range<usize> {
        let ends = self.phase_ends();
        let start = if self.phase == 0 { 0 } else { ends.get(self.phase - 1).copied().unwrap_or(self.order.len()) };
        start..ends.get(self.phase).copied().unwrap_or(self.order.len())
    }

    /// How many assignments the rate limit allows now.
    fn budget(&self, now_ms: i64) -> usize {
        let minute = now_ms.div_euclid(60_000);
        let used = self.assigned_per_minute.get(&minute).copied().unwrap_or(0);
        let allowed = match self.spec.rate {
            RateLimit::None => usize::MAX,
            RateLimit::Constant { per_minute } => per_minute,
            RateLimit::Exponential { start, factor } => {
                let minutes = u32::try_from((now_ms - self.phase_started_ms).max(0) / 60_000).unwrap_or(u32::MAX);
                let grow = usize::try_from(factor).unwrap_or(1).checked_pow(minutes.min(30)).unwrap_or(usize::MAX);
                start.saturating_mul(grow)
            }
        };
        allowed.saturating_sub(used)
    }

    /// Decides what to do now, given each device's outcome (`outcome(id)`).
    pub fn step(&mut self, now_ms: i64, outcome: impl Fn(&str) -> Outcome) -> Decision {
        let mut d = Decision::default();
        if self.status != Status::Running {
            return d;
        }
        let range = self.phase_range();
        let phase_ids: Vec<&String> = self.order.get(range.clone()).unwrap_or_default().iter().collect();
        let (mut committed, mut failed, mut open, mut waiting) = (0usize, 0usize, 0usize, Vec::new());
        for id in &phase_ids {
            match outcome(id) {
                Outcome::Committed => committed += 1,
                Outcome::Failed => failed += 1,
                Outcome::Assigned { at_ms } if now_ms - at_ms >= self.spec.silent_timeout_ms => {
                    d.timed_out.push((*id).clone());
                    failed += 1;
                }
                Outcome::Assigned { .. } => open += 1,
                Outcome::Waiting => waiting.push((*id).clone()),
            }
        }
        // Failures anywhere in the rollout count for an absolute threshold.
        let failed_total = failed
            + self
                .order
                .get(..range.start)
                .unwrap_or_default()
                .iter()
                .filter(|id| outcome(id) == Outcome::Failed)
                .count();
        let in_staging = self.phase == 0 && !self.spec.staging.is_empty() && self.phase_ends().len() > 1;
        let too_many = match self.spec.failure {
            _ if in_staging => failed > 0,
            FailureThreshold::Absolute(n) => failed_total > n,
            FailureThreshold::Percent(p) => failed * 100 > phase_ids.len() * usize::from(p),
        };
        if too_many {
            let why = if in_staging {
                format!("{failed} staging device(s) failed")
            } else {
                format!("{failed} of {} devices failed in phase {}", phase_ids.len(), self.phase + 1)
            };
            self.status = Status::Halted(why);
            d.status_changed = Some(self.status.clone());
            return d;
        }
        if waiting.is_empty() && open == 0 {
            let needed = if in_staging {
                phase_ids.len()
            } else {
                (phase_ids.len() * usize::from(self.spec.success_pct)).div_ceil(100)
            };
            if committed < needed {
                self.status = Status::Halted(format!(
                    "phase {}: {committed} of {} devices succeeded, {needed} needed",
                    self.phase + 1,
                    phase_ids.len()
                ));
                d.status_changed = Some(self.status.clone());
                return d;
            }
            if self.phase + 1 >= self.phase_ends().len() {
                self.status = Status::Completed;
                d.status_changed = Some(Status::Completed);
                return d;
            }
            self.phase += 1;
            self.phase_started_ms = now_ms;
            if self.spec.approval {
                self.status = Status::AwaitingApproval;
                d.status_changed = Some(Status::AwaitingApproval);
                return d;
            }
            return self.step(now_ms, outcome);
        }
        if self.spec.window.as_ref().is_some_and(|w| !w.contains(now_ms)) {
            return d;
        }
        let take = self.budget(now_ms).min(waiting.len());
        d.assign = waiting.into_iter().take(take).collect();
        if !d.assign.is_empty() {
            *self.assigned_per_minute.entry(now_ms.div_euclid(60_000)).or_default() += d.assign.len();
            // Only the current minute matters for the limit.
            let minute = now_ms.div_euclid(60_000);
            self.assigned_per_minute.retain(|m, _| *m == minute);
        }
        d
    }

    /// An operator's command.
    pub fn command(&mut self, cmd: &str, now_ms: i64) -> Result<(), InvalidField> {
        let refuse = |why: &str| Err(InvalidField::new("command", format!("cannot {cmd} a rollout that is {why}")));
        match (cmd, &self.status) {
            (_, s) if s.is_final() => refuse(s.as_str()),
            ("pause", Status::Running | Status::AwaitingApproval) => {
                self.status = Status::Paused;
                Ok(())
            }
            ("resume", Status::Paused) => {
                self.status = Status::Running;
                Ok(())
            }
            ("approve", Status::AwaitingApproval) => {
                self.status = Status::Running;
                self.phase_started_ms = now_ms;
                Ok(())
            }
            ("abort", _) => {
                self.status = Status::Aborted;
                Ok(())
            }
            ("pause" | "resume" | "approve", s) => refuse(s.as_str()),
            _ => Err(InvalidField::new("command", "one of pause, resume, approve, abort")),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn spec(phases: Vec<PhaseSize>) -> Spec {
        Spec {
            staging: vec![],
            phases,
            success_pct: 95,
            failure: FailureThreshold::Percent(5),
            approval: false,
            silent_timeout_ms: 600_000,
            rate: RateLimit::None,
            window: None,
        }
    }

    fn fleet(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("d{i:04}")).collect()
    }

    /// Runs a rollout to the end: every assigned device reports `result(id)` at once.
    fn drive(r: &mut Rollout, result: impl Fn(&str) -> Outcome) -> (Vec<Vec<String>>, HashMap<String, Outcome>) {
        let mut outcomes: HashMap<String, Outcome> = HashMap::new();
        let mut batches = Vec::new();
        for t in 0..1000 {
            let o = outcomes.clone();
            let d = r.step(t * 1000, |id| o.get(id).copied().unwrap_or(Outcome::Waiting));
            if !d.assign.is_empty() {
                for id in &d.assign {
                    outcomes.insert(id.clone(), result(id));
                }
                batches.push(d.assign);
            }
            if r.status.is_final() || r.status == Status::AwaitingApproval {
                break;
            }
        }
        (batches, outcomes)
    }

    #[test]
    fn three_phases_complete_in_order() {
        let mut r = Rollout::new(
            spec(vec![PhaseSize::Percent(10), PhaseSize::Percent(50), PhaseSize::Percent(100)]),
            fleet(1000),
            0,
        );
        assert_eq!(r.phase_ends(), vec![100, 500, 1000]);
        let (batches, _) = drive(&mut r, |_| Outcome::Committed);
        assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), vec![100, 400, 500]);
        assert_eq!(r.status, Status::Completed);
    }

    #[test]
    fn failures_above_the_threshold_halt_in_phase_one() {
        let mut r = Rollout::new(spec(vec![PhaseSize::Percent(10), PhaseSize::Percent(100)]), fleet(1000), 0);
        // Every 12th device fails its health check: 8 or 9 of the first 100 (> 5 %).
        let (batches, _) = drive(&mut r, |id| {
            if id.trim_start_matches('d').parse::<usize>().unwrap() % 12 == 0 {
                Outcome::Failed
            } else {
                Outcome::Committed
            }
        });
        assert_eq!(batches.len(), 1, "nobody beyond phase 1 got the update");
        assert!(matches!(&r.status, Status::Halted(why) if why.contains("phase 1")), "{:?}", r.status);
    }

    #[test]
    fn a_few_failures_under_the_threshold_do_not_halt() {
        let mut r = Rollout::new(spec(vec![PhaseSize::Percent(10), PhaseSize::Percent(100)]), fleet(1000), 0);
        let (_, _) = drive(&mut r, |id| if id == "d0003" { Outcome::Failed } else { Outcome::Committed });
        assert_eq!(r.status, Status::Completed);
    }

    #[test]
    fn staging_must_all_succeed_first() {
        let mut s = spec(vec![PhaseSize::Percent(100)]);
        s.staging = vec!["d0007".into(), "d0008".into()];
        let mut r = Rollout::new(
            s.clone(),
            order(&fleet(20).into_iter().map(|d| (d, None)).collect::<Vec<_>>(), &s.staging),
            0,
        );
        assert_eq!(&r.order[..2], ["d0007", "d0008"]);
        let (batches, _) = drive(&mut r, |id| if id == "d0008" { Outcome::Failed } else { Outcome::Committed });
        assert_eq!(batches, vec![vec!["d0007".to_owned(), "d0008".to_owned()]]);
        assert!(matches!(&r.status, Status::Halted(why) if why.contains("staging")));
    }

    #[test]
    fn silent_devices_count_as_failed() {
        let mut s = spec(vec![PhaseSize::Count(2)]);
        s.failure = FailureThreshold::Absolute(0);
        let mut r = Rollout::new(s, fleet(2), 0);
        let d = r.step(0, |_| Outcome::Waiting);
        assert_eq!(d.assign.len(), 2);
        let d = r.step(599_999, |_| Outcome::Assigned { at_ms: 0 });
        assert!(d.timed_out.is_empty() && r.status == Status::Running);
        let d = r.step(600_000, |id| if id == "d0000" { Outcome::Committed } else { Outcome::Assigned { at_ms: 0 } });
        assert_eq!(d.timed_out, vec!["d0001".to_owned()]);
        assert!(matches!(r.status, Status::Halted(_)));
    }

    #[test]
    fn rate_limits_and_approval() {
        let mut s = spec(vec![PhaseSize::Count(10), PhaseSize::Count(10)]);
        s.rate = RateLimit::Constant { per_minute: 3 };
        s.approval = true;
        let mut r = Rollout::new(s, fleet(20), 0);
        assert_eq!(r.step(0, |_| Outcome::Waiting).assign.len(), 3);
        assert_eq!(r.step(1_000, |_| Outcome::Waiting).assign.len(), 0, "the minute's budget is spent");
        let mut s = spec(vec![PhaseSize::Count(100)]);
        s.rate = RateLimit::Exponential { start: 2, factor: 3 };
        let mut e = Rollout::new(s, fleet(100), 0);
        assert_eq!(e.step(0, |_| Outcome::Waiting).assign.len(), 2);
        assert_eq!(
            e.step(60_000, |id| if id < "d0002" { Outcome::Committed } else { Outcome::Waiting }).assign.len(),
            6
        );
        // Approval: the first phase passes, then the rollout waits.
        let (_, _) = drive(&mut r, |_| Outcome::Committed);
        assert_eq!(r.status, Status::AwaitingApproval);
        assert!(r.command("resume", 0).is_err());
        r.command("approve", 0).unwrap();
        assert_eq!(r.status, Status::Running);
        r.command("abort", 0).unwrap();
        assert!(r.command("resume", 0).is_err());
    }

    #[test]
    fn maintenance_windows_are_cron_like_in_their_own_offset() {
        // Weekdays 01:00–05:00 at +02:00. 2026-11-23 (day 20780 since the epoch) is a Monday.
        let w = Window::parse("0 1 * * 1-5", 240, "+02:00").unwrap();
        let monday = (20_780i64 * 1440 + 30) * 60_000; // 00:30 UTC = 02:30 local
        assert_eq!(civil(monday / 60_000).4, 1, "a Monday");
        assert!(w.contains(monday));
        assert!(!w.contains(monday - 2 * 3_600_000), "22:30 UTC Sunday = 00:30 local Monday: before the window");
        assert!(!w.contains(monday + 3 * 3_600_000), "03:30 UTC = 05:30 local: after the window");
        assert!(!w.contains(monday - 2 * 86_400_000), "Saturday");
        assert!(Window::parse("0 1 * *", 60, "Z").is_err());
        assert!(Window::parse("61 1 * * *", 60, "Z").is_err());
        assert!(Window::parse("*/15 * * * *", 60, "+25:00").is_err());
        let every = Window::parse("*/15 9-17 * * *", 5, "Z").unwrap();
        assert!(every.contains((20_000 * 1440 + 9 * 60 + 47) * 60_000));
        assert!(!every.contains((20_000 * 1440 + 9 * 60 + 51) * 60_000));
    }

    #[test]
    fn regions_are_staggered_and_specs_validated() {
        let devices = vec![
            ("a1".to_owned(), Some("eu".to_owned())),
            ("a2".to_owned(), Some("eu".to_owned())),
            ("b1".to_owned(), Some("us".to_owned())),
            ("c1".to_owned(), None),
        ];
        assert_eq!(order(&devices, &[]), ["c1", "a1", "b1", "a2"]);
        assert!(spec(vec![PhaseSize::Percent(50), PhaseSize::Percent(40)]).validate().is_err());
        assert!(spec(vec![]).validate().is_err());
        assert!(spec(vec![PhaseSize::Percent(10), PhaseSize::Count(5)]).validate().is_ok());
    }
}
