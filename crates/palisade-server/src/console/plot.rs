//! Server-rendered plots: pure functions from data to an inline `<svg>` string.
//!
//! The console's Content-Security-Policy forbids inline styles, so every element carries presentation
//! attributes (readable without any CSS) plus `plot-*` classes the console stylesheet may refine.
//! Non-finite values are skipped, large inputs are downsampled to [`MAX_POINTS`], all text is XML-escaped
//! and the output is deterministic (same input, same bytes).

use std::f64::consts::PI;
use std::fmt::Write as _;

/// `viewBox` size of [`time_plot`] and [`bar_plot`]; the SVG scales with `width="100%"`.
pub const PLOT_SIZE: (f64, f64) = (720.0, 220.0);
/// `viewBox` size of [`map`].
pub const MAP_SIZE: (f64, f64) = (720.0, 400.0);
/// Most points drawn per series, band, bar plot or track.
pub const MAX_POINTS: usize = 600;

const PALETTE: [&str; 6] = ["#2563eb", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d"];
const ALERT: &str = "#dc2626";
const MUTED: &str = "#6b7280";
const FENCE: &str = "#16a34a";
// Plot area of the time and bar plots, inside PLOT_SIZE.
const LEFT: f64 = 64.0;
const RIGHT: f64 = 708.0;
const TOP: f64 = 26.0;
const BOTTOM: f64 = 196.0;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// How values on a y axis are formatted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// B, KB, MB, GB… (base 1000).
    Bytes,
    /// B/s, kB/s, MB/s… (base 1000).
    BytesPerSec,
    Percent,
    /// 950, 1.5k, 2M…
    Count,
    Plain,
}

impl Unit {
    /// Formats a value with at most 3 significant digits, e.g. `Unit::Bytes.format(1.5e6) == "1.5 MB"`.
    pub fn format(self, v: f64) -> String {
        match self {
            Unit::Bytes => scaled(v, &["B", "KB", "MB", "GB", "TB", "PB"], " "),
            Unit::BytesPerSec => scaled(v, &["B/s", "kB/s", "MB/s", "GB/s", "TB/s"], " "),
            Unit::Count => scaled(v, &["", "k", "M", "G", "T"], ""),
            Unit::Percent => format!("{}%", num(v)),
            Unit::Plain => num(v),
        }
    }
}

/// One line of a [`time_plot`]; `class` is added to `plot-line` (e.g. `"plot-rx"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub label: String,
    /// (unix ms, value)
    pub points: Vec<(i64, f64)>,
    pub class: &'static str,
}

/// A shaded range (e.g. the learned baseline) drawn under the lines of a [`time_plot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub label: String,
    /// (unix ms, low, high)
    pub points: Vec<(i64, f64, f64)>,
}

/// A geofence drawn on a [`map`]; fixes outside every fence are flagged.
#[derive(Debug, Clone, PartialEq)]
pub enum Fence {
    Circle {
        lat: f64,
        lon: f64,
        radius_m: f64,
        label: String,
    },
    /// Vertices as (lat, lon); the ring closes itself.
    Polygon {
        points: Vec<(f64, f64)>,
        label: String,
    },
}

impl Fence {
    fn label(&self) -> &str {
        match self {
            Fence::Circle { label, .. } | Fence::Polygon { label, .. } => label,
        }
    }

    /// Whether (lat, lon) is inside: great-circle distance for circles, ray casting for polygons.
    pub fn contains(&self, lat: f64, lon: f64) -> bool {
        match self {
            Fence::Circle { lat: clat, lon: clon, radius_m, .. } => haversine_m(lat, lon, *clat, *clon) <= *radius_m,
            Fence::Polygon { points, .. } => {
                let mut inside = false;
                let mut prev = points.last().copied();
                for &(la, lo) in points {
                    if let Some((pla, plo)) = prev
                        && (la > lat) != (pla > lat)
                        && lon < lo + (lat - la) / (pla - la) * (plo - lo)
                    {
                        inside = !inside;
                    }
                    prev = Some((la, lo));
                }
                inside
            }
        }
    }

    /// The outline as (lat, lon); a circle becomes 48 points computed on the sphere.
    fn outline(&self) -> Vec<(f64, f64)> {
        match self {
            Fence::Circle { lat, lon, radius_m, .. } => {
                let (phi, lam, d) = (lat.to_radians(), lon.to_radians(), radius_m.max(0.0) / EARTH_RADIUS_M);
                (0..48)
                    .map(|i| {
                        let bearing = f64::from(i) * 2.0 * PI / 48.0;
                        let phi2 = (phi.sin() * d.cos() + phi.cos() * d.sin() * bearing.cos()).asin();
                        let lam2 = lam + (bearing.sin() * d.sin() * phi.cos()).atan2(d.cos() - phi.sin() * phi2.sin());
                        (phi2.to_degrees(), lam2.to_degrees())
                    })
                    .filter(|(a, b)| a.is_finite() && b.is_finite())
                    .collect()
            }
            Fence::Polygon { points, .. } => {
                points.iter().copied().filter(|(a, b)| a.is_finite() && b.is_finite()).collect()
            }
        }
    }
}

/// A line chart over time with an optional shaded band and vertical markers (e.g. alerts) at `marks`.
pub fn time_plot(
    id: &str,
    title: &str,
    unit: Unit,
    series: &[Series],
    band: Option<&Band>,
    marks: &[(i64, String)],
) -> String {
    let lines: Vec<Vec<(i64, f64)>> = series.iter().map(|s| downsample(&finite(&s.points), MAX_POINTS)).collect();
    let band_pts = band.map(|b| clean_band(&b.points)).unwrap_or_default();
    let mut svg = open(id, title, PLOT_SIZE);
    if lines.iter().all(Vec::is_empty) {
        message(&mut svg, PLOT_SIZE, "no data in this window");
        return close(svg);
    }
    let times = lines.iter().flatten().map(|p| p.0).chain(band_pts.iter().map(|b| b.0));
    let (t0, t1) = times.fold((i64::MAX, i64::MIN), |(a, b), t| (a.min(t), b.max(t)));
    let values = lines.iter().flatten().map(|p| p.1).chain(band_pts.iter().flat_map(|b| [b.1, b.2]));
    let (mut lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if unit != Unit::Plain && lo >= 0.0 {
        lo = 0.0;
    }
    let frame = Frame::new(t0, t1, lo, hi);
    frame.axes(&mut svg, unit);
    if !band_pts.is_empty() {
        let upper = band_pts.iter().map(|b| (b.0, b.2));
        let lower = band_pts.iter().rev().map(|b| (b.0, b.1));
        let pts = coords(upper.chain(lower).map(|(t, v)| (frame.x(t), frame.y(v))));
        let _ = write!(svg, r##"<polygon class="plot-band" fill="#94a3b8" opacity="0.3" points="{pts}"/>"##);
    }
    for (i, (s, pts)) in series.iter().zip(&lines).enumerate() {
        let color = color(i);
        let class = esc(s.class);
        let xy: Vec<(f64, f64)> = pts.iter().map(|&(t, v)| (frame.x(t), frame.y(v))).collect();
        if let [(x, y)] = xy.as_slice() {
            let _ =
                write!(svg, r#"<circle class="plot-marker {class}" cx="{x:.1}" cy="{y:.1}" r="3" fill="{color}"/>"#);
        } else if !xy.is_empty() {
            let _ = write!(
                svg,
                r#"<polyline class="plot-line {class}" fill="none" stroke="{color}" stroke-width="1.5" stroke-linejoin="round" points="{}"/>"#,
                coords(xy.into_iter())
            );
        }
    }
    for (t, label) in marks.iter().filter(|(t, _)| (t0..=t1).contains(t)) {
        let x = frame.x(*t);
        let (tx, anchor) = if x > RIGHT - 120.0 { (x - 3.0, "end") } else { (x + 3.0, "start") };
        let _ = write!(svg, r#"<g class="plot-mark plot-alert"><title>{}</title>"#, esc(label));
        let _ = write!(
            svg,
            r#"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{BOTTOM}" stroke="{ALERT}" stroke-dasharray="3 2"/>"#
        );
        text(&mut svg, "plot-label", (tx, TOP + 10.0), 10, anchor, ALERT, &short(label, 24));
        svg.push_str("</g>");
    }
    // Legend along the top: a swatch and the label of each series, then the band.
    let mut x = LEFT;
    let band_item = band.filter(|_| !band_pts.is_empty()).map(|b| (None, b.label.as_str()));
    for (swatch, label) in series.iter().enumerate().map(|(i, s)| (Some(color(i)), s.label.as_str())).chain(band_item) {
        let _ = match swatch {
            Some(c) => {
                write!(svg, r#"<line x1="{x:.1}" y1="12" x2="{:.1}" y2="12" stroke="{c}" stroke-width="2"/>"#, x + 16.0)
            }
            None => write!(
                svg,
                r##"<rect class="plot-band" x="{x:.1}" y="7" width="16" height="10" fill="#94a3b8" opacity="0.3"/>"##
            ),
        };
        text(&mut svg, "plot-label plot-legend", (x + 20.0, 16.0), 11, "start", "#374151", label);
        x += 32.0 + 6.5 * label.chars().count() as f64;
    }
    close(svg)
}

/// A bar chart, one bar per bucket (unix ms of the bucket start, value); bar width is the smallest bucket gap.
pub fn bar_plot(id: &str, title: &str, unit: Unit, buckets: &[(i64, f64)]) -> String {
    let mut bars = finite(buckets);
    let mut svg = open(id, title, PLOT_SIZE);
    let (Some(first), Some(last)) = (bars.first().copied(), bars.last().copied()) else {
        message(&mut svg, PLOT_SIZE, "no data in this window");
        return close(svg);
    };
    let gaps = bars.windows(2).filter_map(|w| match w {
        [a, b] if b.0 > a.0 => Some(b.0 - a.0),
        _ => None,
    });
    let mut width = gaps.min().unwrap_or(HOUR);
    if bars.len() > MAX_POINTS {
        // Merge neighbours, keeping the value farthest from zero so spikes stay visible.
        let n = bars.len().div_ceil(MAX_POINTS);
        bars = bars
            .chunks(n)
            .filter_map(|c| Some((c.first()?.0, c.iter().map(|p| p.1).max_by(|a, b| a.abs().total_cmp(&b.abs()))?)))
            .collect();
        width = width.saturating_mul(n as i64);
    }
    let (lo, hi) = bars.iter().fold((0.0f64, 0.0f64), |(a, b), p| (a.min(p.1), b.max(p.1)));
    let frame = Frame::new(first.0, last.0.saturating_add(width), lo, hi);
    frame.axes(&mut svg, unit);
    let zero = frame.y(0.0);
    for &(t, v) in &bars {
        let (x0, x1, y) = (frame.x(t), frame.x(t.saturating_add(width)), frame.y(v));
        let gap = ((x1 - x0) * 0.15).min(2.0);
        let _ = write!(
            svg,
            r#"<rect class="plot-bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}</title></rect>"#,
            x0 + gap / 2.0,
            y.min(zero),
            (x1 - x0 - gap).max(0.5),
            (y - zero).abs(),
            color(0),
            full_time(t),
            esc(&unit.format(v))
        );
    }
    close(svg)
}

/// A map of location fixes (unix ms, lat, lon) and geofences, without tiles: equirectangular projection.
pub fn map(id: &str, title: &str, fixes: &[(i64, f64, f64)], fences: &[Fence]) -> String {
    let (w, h) = MAP_SIZE;
    let mut fixes: Vec<(i64, f64, f64)> =
        fixes.iter().copied().filter(|f| f.1.is_finite() && f.2.is_finite() && f.1.abs() <= 90.0).collect();
    fixes.sort_by_key(|f| f.0);
    let outlines: Vec<Vec<(f64, f64)>> = fences.iter().map(Fence::outline).collect();
    let all = || fixes.iter().map(|f| (f.1, f.2)).chain(outlines.iter().flatten().copied());
    let mut svg = open(id, title, MAP_SIZE);
    let _ = write!(svg, r##"<rect class="plot-map-bg" x="0" y="0" width="{w}" height="{h}" fill="#f8fafc"/>"##);
    if all().next().is_none() {
        message(&mut svg, MAP_SIZE, "no location reported");
        return close(svg);
    }
    let init = (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    let (la0, la1, lo0, lo1) = all().fold(init, |b, (la, lo)| (b.0.min(la), b.1.max(la), b.2.min(lo), b.3.max(lo)));
    let k = ((la0 + la1) / 2.0).to_radians().cos().max(0.01);
    let dlat = (la1 - la0).max(0.002) * 1.16;
    let dlon = (lo1 - lo0).max(0.002 / k) * 1.16;
    let scale = (w / (dlon * k)).min(h / dlat); // px per degree of latitude
    let (top, left) = ((la0 + la1) / 2.0 + h / 2.0 / scale, (lo0 + lo1) / 2.0 - w / 2.0 / scale / k);
    let xy = |lat: f64, lon: f64| ((lon - left) * k * scale, (top - lat) * scale);

    // Graticule over the visible area, labelled in degrees.
    let (bottom, right) = (top - h / scale, left + w / scale / k);
    for (ticks, is_lat) in [(nice_ticks(bottom, top), true), (nice_ticks(left, right), false)] {
        let step = match ticks.as_slice() {
            [a, b, ..] => b - a,
            _ => 1.0,
        };
        let decimals = (-step.log10()).ceil().max(0.0) as usize;
        for v in
            ticks.into_iter().filter(|v| if is_lat { (bottom..=top).contains(v) } else { (left..=right).contains(v) })
        {
            let (x, y) = xy(v, v);
            let hemi = if is_lat {
                if v < 0.0 { "S" } else { "N" }
            } else if v < 0.0 {
                "W"
            } else {
                "E"
            };
            let label = format!("{:.decimals$}°{hemi}", v.abs());
            if is_lat {
                line(&mut svg, "plot-grid", (0.0, y), (w, y), "#e5e7eb");
                text(&mut svg, "plot-label", (4.0, y - 3.0), 10, "start", MUTED, &label);
            } else {
                line(&mut svg, "plot-grid", (x, 0.0), (x, h), "#e5e7eb");
                text(&mut svg, "plot-label", (x + 3.0, h - 4.0), 10, "start", MUTED, &label);
            }
        }
    }

    for (fence, outline) in fences.iter().zip(&outlines) {
        let pts: Vec<(f64, f64)> = outline.iter().map(|&(la, lo)| xy(la, lo)).collect();
        let Some(&(lx, ly)) = pts.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else { continue };
        let _ = write!(
            svg,
            r#"<g class="plot-fence"><title>{}</title><polygon points="{}" fill="{FENCE}" fill-opacity="0.08" stroke="{FENCE}" stroke-width="1.5"/>"#,
            esc(fence.label()),
            coords(pts.iter().copied())
        );
        text(&mut svg, "plot-label", (lx, (ly - 4.0).max(12.0)), 11, "middle", FENCE, fence.label());
        svg.push_str("</g>");
    }

    // Track: thinned to MAX_POINTS, keeping an outside fix of each chunk so alerts stay visible.
    let outside = |f: &(i64, f64, f64)| !fences.is_empty() && !fences.iter().any(|z| z.contains(f.1, f.2));
    let chunk = fixes.len().div_ceil(MAX_POINTS - 1).max(1);
    let mut track: Vec<(i64, f64, f64)> =
        fixes.chunks(chunk).filter_map(|c| c.iter().find(|f| outside(f)).or(c.last()).copied()).collect();
    if let Some(&latest) = fixes.last() {
        if track.last() != Some(&latest) {
            track.push(latest);
        }
        let pts = coords(track.iter().map(|f| xy(f.1, f.2)));
        let _ = write!(
            svg,
            r#"<polyline class="plot-track" points="{pts}" fill="none" stroke="{}" stroke-width="1.5" stroke-linejoin="round" opacity="0.8"/>"#,
            color(0)
        );
        for f in track.iter().take(track.len().saturating_sub(1)) {
            let (x, y) = xy(f.1, f.2);
            let (class, r, fill) =
                if outside(f) { ("plot-fix plot-alert", 3, ALERT) } else { ("plot-fix", 2, color(0)) };
            let _ = write!(svg, r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{fill}"/>"#);
        }
        let (x, y) = xy(latest.1, latest.2);
        let (class, fill) =
            if outside(&latest) { ("plot-marker plot-alert", ALERT) } else { ("plot-marker", color(0)) };
        let _ = write!(
            svg,
            r##"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="6" fill="{fill}" stroke="#ffffff" stroke-width="2"><title>latest fix {}</title></circle>"##,
            full_time(latest.0)
        );
    } else {
        message(&mut svg, MAP_SIZE, "no location reported");
    }

    // Scale bar, top right: about 120 px rounded down to 1/2/5 × 10^n metres.
    let m_per_px = EARTH_RADIUS_M * PI / 180.0 / scale;
    let target = 120.0 * m_per_px;
    let mag = 10f64.powf(target.log10().floor());
    let len_m = [5.0, 2.0, 1.0].map(|f| f * mag).into_iter().find(|l| *l <= target).unwrap_or(mag);
    let len_px = len_m / m_per_px;
    let label = if len_m < 1000.0 { format!("{} m", num(len_m)) } else { format!("{} km", num(len_m / 1000.0)) };
    let x = w - 12.0 - len_px;
    let _ = write!(
        svg,
        r##"<g class="plot-scale"><path d="M{x:.1} 20V24H{} V20" fill="none" stroke="#111827" stroke-width="2"/>"##,
        w - 12.0
    );
    text(&mut svg, "plot-label", (x + len_px / 2.0, 16.0), 11, "middle", "#111827", &label);
    svg.push_str("</g>");
    close(svg)
}

/// 4–6 evenly spaced "nice" values (step 1, 2 or 5 × 10^n) covering `lo..=hi` (padded when equal).
pub fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (lo, hi) = padded(lo, hi);
    let mag = 10f64.powf((hi - lo).log10().floor());
    // Largest step giving at least 4 ticks; if that overshoots 6, stretch the previous step to 4 ticks.
    let mut prev: Option<(f64, f64)> = None;
    for step in [5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05].map(|m| m * mag) {
        let first = (lo / step).floor();
        let n = ((hi / step).ceil() - first) as usize + 1;
        if n >= 4 {
            let (first, step, n) = match prev {
                Some((f, s)) if n > 6 => (f, s, 4),
                _ => (first, step, n.min(50)),
            };
            return (0..n).map(|i| (first + i as f64) * step).collect();
        }
        prev = Some((first, step));
    }
    vec![lo, hi]
}

/// Axes of the time and bar plots: maps time and value to viewBox coordinates.
struct Frame {
    t0: f64,
    t1: f64,
    ticks: Vec<f64>,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn new(t0: i64, t1: i64, lo: f64, hi: f64) -> Frame {
        let (t0, t1) = if t1.saturating_sub(t0) >= MINUTE {
            (t0, t1)
        } else {
            (t0.saturating_sub(30 * MINUTE), t1.saturating_add(30 * MINUTE))
        };
        let ticks = nice_ticks(lo, hi);
        let (y0, y1) = padded(ticks.first().copied().unwrap_or(lo), ticks.last().copied().unwrap_or(hi));
        Frame { t0: t0 as f64, t1: t1 as f64, ticks, y0, y1 }
    }

    fn x(&self, t: i64) -> f64 {
        LEFT + (t as f64 - self.t0) / (self.t1 - self.t0) * (RIGHT - LEFT)
    }

    fn y(&self, v: f64) -> f64 {
        BOTTOM - (v - self.y0) / (self.y1 - self.y0) * (BOTTOM - TOP)
    }

    fn axes(&self, svg: &mut String, unit: Unit) {
        for &v in &self.ticks {
            let y = self.y(v);
            line(svg, "plot-grid", (LEFT, y), (RIGHT, y), "#e5e7eb");
            text(svg, "plot-label", (LEFT - 6.0, y + 3.5), 10, "end", MUTED, &unit.format(v));
        }
        let (t0, t1) = (self.t0 as i64, self.t1 as i64);
        let days = t1 - t0 >= 2 * DAY;
        let steps = [MINUTE, 2 * MINUTE, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR];
        let steps = steps.into_iter().chain([6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 28 * DAY, 91 * DAY]);
        let step = steps
            .filter(|s| !days || *s >= DAY)
            .find(|s| (t1 - t0) / s <= 6)
            .unwrap_or((t1 - t0) / 6 / DAY * DAY + DAY);
        let mut t = t0.div_euclid(step).saturating_add(1).saturating_mul(step);
        while t <= t1 {
            let x = self.x(t);
            let label =
                utc(t).map(|(mo, d, h, mi)| if days { format!("{mo:02}-{d:02}") } else { format!("{h:02}:{mi:02}") });
            line(svg, "plot-grid", (x, TOP), (x, BOTTOM), "#f3f4f6");
            text(svg, "plot-label", (x, BOTTOM + 14.0), 10, "middle", MUTED, &label.unwrap_or_default());
            t = t.saturating_add(step);
        }
        let _ = write!(
            svg,
            r##"<path class="plot-axis" d="M{LEFT} {TOP}V{BOTTOM}H{RIGHT}" fill="none" stroke="#9ca3af" stroke-width="1"/>"##
        );
    }
}

fn open(id: &str, title: &str, (w, h): (f64, f64)) -> String {
    let (id, title) = (esc(id), esc(title));
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" id="{id}" class="plot" viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="{title}" font-family="system-ui, sans-serif"><title>{title}</title>"#
    )
}

fn close(mut svg: String) -> String {
    svg.push_str("</svg>");
    svg
}

fn message(svg: &mut String, (w, h): (f64, f64), msg: &str) {
    text(svg, "plot-label plot-empty", (w / 2.0, h / 2.0), 14, "middle", MUTED, msg);
}

/// A `<text>` element; `content` is escaped here.
fn text(svg: &mut String, class: &str, (x, y): (f64, f64), size: u8, anchor: &str, fill: &str, content: &str) {
    let _ = write!(
        svg,
        r#"<text class="{class}" x="{x:.1}" y="{y:.1}" font-size="{size}" text-anchor="{anchor}" fill="{fill}">{}</text>"#,
        esc(content)
    );
}

fn line(svg: &mut String, class: &str, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: &str) {
    let _ = write!(
        svg,
        r#"<line class="{class}" x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" stroke="{stroke}" stroke-width="1"/>"#
    );
}

/// XML-escapes text and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn short(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        s.chars().take(max.saturating_sub(1)).chain(['…']).collect()
    }
}

fn color(i: usize) -> &'static str {
    PALETTE.get(i % PALETTE.len()).copied().unwrap_or("#2563eb")
}

fn coords(points: impl Iterator<Item = (f64, f64)>) -> String {
    let mut out = String::new();
    for (x, y) in points {
        let sep = if out.is_empty() { "" } else { " " };
        let _ = write!(out, "{sep}{x:.1},{y:.1}");
    }
    out
}

/// Rounds to about 3 significant digits and drops trailing zeros.
fn num(v: f64) -> String {
    let a = v.abs();
    let decimals = match a {
        _ if a >= 100.0 || a == 0.0 => 0,
        _ if a >= 10.0 => 1,
        _ if a >= 1.0 => 2,
        _ => ((-a.log10().floor()) as usize + 2).min(9),
    };
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.') } else { &s };
    if s == "-0" { "0".to_string() } else { s.to_string() }
}

fn scaled(v: f64, suffixes: &[&str], sep: &str) -> String {
    let (mut v, mut suffix) = (v, suffixes.first().copied().unwrap_or(""));
    for s in suffixes.iter().skip(1) {
        if v.abs() < 1000.0 {
            break;
        }
        (v, suffix) = (v / 1000.0, s);
    }
    if suffix.is_empty() { num(v) } else { format!("{}{sep}{suffix}", num(v)) }
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    let (lo, hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
    if hi - lo > hi.abs().max(lo.abs()) * 1e-9 {
        return (lo, hi);
    }
    let pad = if hi == 0.0 { 1.0 } else { hi.abs() * 0.1 };
    (lo - pad, hi + pad)
}

/// Finite values only, sorted by time.
fn finite(points: &[(i64, f64)]) -> Vec<(i64, f64)> {
    let mut out: Vec<(i64, f64)> = points.iter().copied().filter(|p| p.1.is_finite()).collect();
    out.sort_by_key(|p| p.0);
    out
}

/// At most `max` points: per bucket, its min and max in time order, so spikes survive.
fn downsample(points: &[(i64, f64)], max: usize) -> Vec<(i64, f64)> {
    if points.len() <= max || max < 2 {
        return points.to_vec();
    }
    let mut out = Vec::with_capacity(max);
    for c in points.chunks(points.len().div_ceil(max / 2)) {
        let lo = c.iter().copied().min_by(|a, b| a.1.total_cmp(&b.1));
        let hi = c.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1));
        if let (Some(lo), Some(hi)) = (lo, hi) {
            let pair = if lo.0 <= hi.0 { [lo, hi] } else { [hi, lo] };
            out.extend(pair.into_iter().take(if lo == hi { 1 } else { 2 }));
        }
    }
    out
}

/// Finite, ordered, sorted by time, at most MAX_POINTS (bucket min of low, max of high).
fn clean_band(points: &[(i64, f64, f64)]) -> Vec<(i64, f64, f64)> {
    let mut pts: Vec<(i64, f64, f64)> = points
        .iter()
        .filter(|p| p.1.is_finite() && p.2.is_finite())
        .map(|&(t, a, b)| (t, a.min(b), a.max(b)))
        .collect();
    pts.sort_by_key(|p| p.0);
    let n = pts.len().div_ceil(MAX_POINTS).max(1);
    pts.chunks(n)
        .filter_map(|c| {
            let t = c.first()?.0;
            Some((
                t,
                c.iter().map(|p| p.1).fold(f64::INFINITY, f64::min),
                c.iter().map(|p| p.2).fold(f64::NEG_INFINITY, f64::max),
            ))
        })
        .collect()
}

/// (month, day, hour, minute) in UTC.
fn utc(ms: i64) -> Option<(u8, u8, u8, u8)> {
    let dt = time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).ok()?;
    Some((u8::from(dt.month()), dt.day(), dt.hour(), dt.minute()))
}

fn full_time(ms: i64) -> String {
    utc(ms).map(|(mo, d, h, mi)| format!("{mo:02}-{d:02} {h:02}:{mi:02} UTC")).unwrap_or_default()
}

fn haversine_m(lat1: f64, lon1: f64, lat2: f64, lon2: f64) -> f64 {
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let (dp, dl) = ((lat2 - lat1).to_radians(), (lon2 - lon1).to_radians());
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * a.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Balanced tags, no inline style, starts with `<svg` and ends with `</svg>`.
    fn check(svg: &str) {
        assert!(svg.starts_with("<svg ") && svg.ends_with("</svg>"), "{svg}");
        assert!(!svg.contains("style"), "inline style in {svg}");
        let mut stack: Vec<&str> = Vec::new();
        let mut rest = svg;
        while let Some(start) = rest.find('<') {
            let len = rest[start..].find('>').expect("unclosed tag");
            let tag = &rest[start + 1..start + len];
            rest = &rest[start + len + 1..];
            if let Some(name) = tag.strip_prefix('/') {
                assert_eq!(stack.pop(), Some(name), "in {svg}");
            } else if !tag.ends_with('/') {
                stack.push(tag.split_whitespace().next().unwrap());
            }
        }
        assert!(stack.is_empty(), "unclosed {stack:?}");
        assert!(!rest.contains('>'));
    }

    fn series(points: Vec<(i64, f64)>) -> Series {
        Series { label: "rx".into(), points, class: "plot-rx" }
    }

    const T: i64 = 1_700_000_000_000;

    #[test]
    fn nice_ticks_are_nice_and_cover() {
        for (lo, hi) in [(0.0, 1.0), (0.0, 97.0), (3.2, 7.9), (-15.0, 42.0), (0.0, 1.5e9), (0.001, 0.0043), (5.0, 5.0)]
        {
            let ticks = nice_ticks(lo, hi);
            assert!((4..=6).contains(&ticks.len()), "{lo}..{hi}: {ticks:?}");
            assert!(ticks[0] <= lo && *ticks.last().unwrap() >= hi, "{lo}..{hi}: {ticks:?}");
            let step = ticks[1] - ticks[0];
            let norm = step / 10f64.powf(step.log10().floor());
            assert!([1.0, 2.0, 5.0].iter().any(|n| (norm - n).abs() < 1e-6), "{step}");
        }
        assert_eq!(nice_ticks(0.0, 100.0), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(f64::NAN, 1.0), nice_ticks(0.0, 1.0));
    }

    #[test]
    fn units() {
        assert_eq!(Unit::Bytes.format(1_500_000.0), "1.5 MB");
        assert_eq!(Unit::Bytes.format(0.0), "0 B");
        assert_eq!(Unit::Bytes.format(999.0), "999 B");
        assert_eq!(Unit::Bytes.format(2e9), "2 GB");
        assert_eq!(Unit::BytesPerSec.format(12_340.0), "12.3 kB/s");
        assert_eq!(Unit::Percent.format(12.5), "12.5%");
        assert_eq!(Unit::Count.format(1500.0), "1.5k");
        assert_eq!(Unit::Count.format(42.0), "42");
        assert_eq!(Unit::Plain.format(0.25), "0.25");
        assert_eq!(Unit::Plain.format(-0.0), "0");
        assert_eq!(Unit::Plain.format(0.1 * 3.0), "0.3");
    }

    #[test]
    fn time_plot_draws_band_lines_legend_and_marks() {
        let s = series((0..10).map(|i| (T + i * MINUTE, i as f64 * 1e6)).collect());
        let band = Band { label: "baseline".into(), points: (0..10).map(|i| (T + i * MINUTE, 1e6, 3e6)).collect() };
        let marks = vec![(T + 5 * MINUTE, "alert".to_string()), (T + DAY, "outside".to_string())];
        let svg = time_plot("p1", "Traffic", Unit::Bytes, &[s], Some(&band), &marks);
        check(&svg);
        for needle in
            [r#"id="p1""#, "plot-band", "plot-line plot-rx", "plot-mark", "baseline", "10 MB", r#"role="img""#]
        {
            assert!(svg.contains(needle), "{needle} missing");
        }
        assert_eq!(svg.matches("plot-mark").count(), 1, "marks outside the window are skipped");
        assert!(svg.find("plot-band").unwrap() < svg.find("plot-line").unwrap(), "band under lines");
        assert!(svg.contains(">22:16<"), "HH:MM labels"); // T is 2023-11-14 22:13:20 UTC
    }

    #[test]
    fn time_labels_switch_to_dates_over_two_days() {
        let s = series(vec![(T, 1.0), (T + 5 * DAY, 2.0)]);
        let svg = time_plot("p", "t", Unit::Plain, &[s], None, &[]);
        check(&svg);
        assert!(svg.contains(">11-15<"), "{svg}"); // T is 2023-11-14 22:13 UTC
    }

    #[test]
    fn escaping() {
        let mut s = series(vec![(T, 1.0), (T + 1, 2.0)]);
        s.label = "a<b".into();
        let svg = time_plot("x\"y", r#"<&">"#, Unit::Count, &[s], None, &[(T, "<script>".into())]);
        check(&svg);
        assert!(svg.contains("&lt;&amp;&quot;&gt;") && svg.contains("a&lt;b") && svg.contains("&lt;script&gt;"));
        assert!(!svg.contains("<script") && !svg.contains("a<b"));
        let fence = Fence::Circle { lat: 0.0, lon: 0.0, radius_m: 10.0, label: "<&>".into() };
        check(&map("m", "&", &[(T, 0.0, 0.0)], &[fence]));
    }

    #[test]
    fn empty_nan_and_single_point() {
        for svg in [
            time_plot("p", "t", Unit::Plain, &[], None, &[]),
            time_plot("p", "t", Unit::Plain, &[series(vec![(T, f64::NAN), (T, f64::INFINITY)])], None, &[]),
            bar_plot("p", "t", Unit::Count, &[(T, f64::NAN)]),
        ] {
            check(&svg);
            assert!(svg.contains("no data in this window"));
        }
        let svg = time_plot("p", "t", Unit::Plain, &[series(vec![(T, f64::NAN), (T + 1, 5.0)])], None, &[]);
        check(&svg);
        assert!(!svg.contains("NaN") && !svg.contains("inf") && svg.contains("plot-marker"));
        let flat = time_plot("p", "t", Unit::Plain, &[series(vec![(T, 5.0), (T + HOUR, 5.0)])], None, &[]);
        check(&flat);
        assert!(!flat.contains("NaN"));
    }

    #[test]
    fn downsampling_caps_and_keeps_spikes() {
        let mut pts: Vec<(i64, f64)> = (0..100_000).map(|i| (T + i * 1000, (i % 7) as f64)).collect();
        pts[54_321].1 = 1e6;
        let out = downsample(&pts, MAX_POINTS);
        assert!(out.len() <= MAX_POINTS);
        assert!(out.contains(&(T + 54_321_000, 1e6)));
        assert!(out.windows(2).all(|w| w[0].0 <= w[1].0));
        let svg = time_plot("p", "t", Unit::Plain, &[series(pts.clone())], None, &[]);
        check(&svg);
        assert!(svg.len() < 40_000, "{}", svg.len());
        let bars = bar_plot("b", "t", Unit::Count, &pts);
        check(&bars);
        assert!(bars.matches("<rect").count() <= MAX_POINTS && bars.contains(">1M<"));
        let mut band: Vec<(i64, f64, f64)> = (0..10_000).map(|i| (T + i, 1.0, 2.0)).collect();
        band[77].2 = 50.0;
        let band = clean_band(&band);
        assert!(band.len() <= MAX_POINTS && band.iter().any(|b| b.2 == 50.0));
    }

    #[test]
    fn bar_plot_draws_bars() {
        let svg = bar_plot("b", "Connections per hour", Unit::Count, &[(T, 3.0), (T + HOUR, 7.0), (T + 2 * HOUR, 0.0)]);
        check(&svg);
        assert_eq!(svg.matches(r#"<rect class="plot-bar""#).count(), 3);
        assert!(svg.contains("plot-axis"));
    }

    #[test]
    fn fences_contain() {
        let circle = Fence::Circle { lat: 48.0, lon: 2.0, radius_m: 1000.0, label: "depot".into() };
        assert!(circle.contains(48.005, 2.0)); // ~556 m north
        assert!(!circle.contains(48.01, 2.0)); // ~1.1 km north
        let square =
            Fence::Polygon { points: vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0)], label: "sq".into() };
        assert!(square.contains(0.5, 0.5));
        assert!(!square.contains(1.5, 0.5) && !square.contains(0.5, -0.1));
        let concave = Fence::Polygon {
            points: vec![(0.0, 0.0), (2.0, 0.0), (2.0, 2.0), (1.0, 1.0), (0.0, 2.0)],
            label: "v".into(),
        };
        assert!(concave.contains(0.5, 1.0) && !concave.contains(1.0, 1.5));
        for (la, lo) in circle.outline() {
            assert!((haversine_m(la, lo, 48.0, 2.0) - 1000.0).abs() < 1.0);
        }
    }

    #[test]
    fn map_flags_fixes_outside_fences() {
        let fence = Fence::Circle { lat: 48.0, lon: 2.0, radius_m: 1000.0, label: "depot".into() };
        let fixes = [(T, 48.0, 2.0), (T + MINUTE, 48.002, 2.001), (T + 2 * MINUTE, 48.03, 2.0)];
        let svg = map("m", "Where", &fixes, std::slice::from_ref(&fence));
        check(&svg);
        assert!(svg.contains(r#"class="plot-marker plot-alert""#), "latest fix is outside");
        assert_eq!(svg.matches("plot-alert").count(), 1);
        for needle in ["plot-fence", "plot-track", "plot-grid", "°N", "°E", "plot-scale", " km<", "depot"] {
            assert!(svg.contains(needle), "{needle} missing");
        }
        let inside = map("m", "Where", &fixes[..2], &[fence]);
        check(&inside);
        assert!(!inside.contains("plot-alert"));
        let many: Vec<(i64, f64, f64)> = (0..5000).map(|i| (T + i, 10.0 + i as f64 * 1e-5, 20.0)).collect();
        let big = map("m", "t", &many, &[]);
        check(&big);
        assert!(big.matches("<circle").count() <= MAX_POINTS && !big.contains("plot-alert"));
    }

    #[test]
    fn map_empty() {
        let svg = map("m", "t", &[(T, f64::NAN, 1.0)], &[]);
        check(&svg);
        assert!(svg.contains("no location reported"));
        let fence = Fence::Polygon { points: vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)], label: "tri".into() };
        let svg = map("m", "t", &[], &[fence]);
        check(&svg);
        assert!(svg.contains("no location reported") && svg.contains("plot-fence"));
    }

    #[test]
    fn deterministic() {
        let s = series((0..2000).map(|i| (T + i * 1000, (i as f64).sin())).collect());
        let a = time_plot("p", "t", Unit::Percent, std::slice::from_ref(&s), None, &[]);
        assert_eq!(a, time_plot("p", "t", Unit::Percent, &[s], None, &[]));
        let fixes = [(T, 1.0, 2.0), (T + 1, 1.1, 2.1)];
        assert_eq!(map("m", "t", &fixes, &[]), map("m", "t", &fixes, &[]));
    }
}
