//! The arithmetic of the panel's time-series charts, apart from any drawing so that it is
//! tested on the host: nice 1-2-5 axis ticks, value → pixel scales, SVG paths that break at
//! missing points, the nearest bucket under the pointer, and number and time labels.

use std::fmt::Write as _;

/// The drawing area inside an SVG `viewBox` of `WIDTH` × `HEIGHT`.
pub const WIDTH: f64 = 600.0;
pub const HEIGHT: f64 = 200.0;
pub const LEFT: f64 = 52.0;
pub const RIGHT: f64 = 8.0;
pub const TOP: f64 = 10.0;
pub const BOTTOM: f64 = 22.0;

/// A "nice" step (1, 2 or 5 times a power of ten) close to `raw`.
pub fn nice_step(raw: f64) -> f64 {
    if raw <= 0.0 || !raw.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(raw.log10().floor());
    let fraction = raw / power;
    let nice = if fraction <= 1.0 {
        1.0
    } else if fraction <= 2.0 {
        2.0
    } else if fraction <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Axis ticks from 0 to a nice top that holds `max` (about `count` steps). An all-zero series
/// still gets an axis (0 to 1).
pub fn ticks(max: f64, count: u32) -> Vec<f64> {
    let max = if max > 0.0 && max.is_finite() {
        max
    } else {
        1.0
    };
    let step = nice_step(max / f64::from(count.max(1)));
    let steps = (max / step).ceil().max(1.0);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let n = steps as u32;
    (0..=n).map(|i| f64::from(i) * step).collect()
}

/// Maps times and values to pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scale {
    pub from: i64,
    pub to: i64,
    pub top: f64,
}

impl Scale {
    /// A scale over `[from, to]` with `top` at the upper edge.
    pub fn new(from: i64, to: i64, top: f64) -> Self {
        Self {
            from,
            to: to.max(from + 1),
            top: if top > 0.0 { top } else { 1.0 },
        }
    }

    #[allow(clippy::cast_precision_loss)]
    pub fn x(&self, t: i64) -> f64 {
        LEFT + (t - self.from) as f64 / (self.to - self.from) as f64 * (WIDTH - LEFT - RIGHT)
    }

    pub fn y(&self, v: f64) -> f64 {
        HEIGHT - BOTTOM - (v / self.top).clamp(0.0, 1.0) * (HEIGHT - TOP - BOTTOM)
    }

    /// The time under pixel `x`.
    #[allow(clippy::cast_possible_truncation, clippy::cast_precision_loss)]
    pub fn time_at(&self, x: f64) -> i64 {
        let share = ((x - LEFT) / (WIDTH - LEFT - RIGHT)).clamp(0.0, 1.0);
        self.from + (share * (self.to - self.from) as f64).round() as i64
    }
}

/// An SVG path through the points; a `None` value breaks the line (a gap, never a zero).
pub fn path(points: &[(i64, Option<f64>)], scale: &Scale) -> String {
    let mut d = String::new();
    let mut pen_down = false;
    for (t, v) in points {
        match v {
            Some(v) => {
                let cmd = if pen_down { 'L' } else { 'M' };
                let _ = write!(d, "{cmd}{:.1},{:.1} ", scale.x(*t), scale.y(*v));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    d.trim_end().to_owned()
}

/// The index of the point nearest to `t` (points sorted by time), if there are any.
pub fn nearest(times: &[i64], t: i64) -> Option<usize> {
    if times.is_empty() {
        return None;
    }
    let i = times.partition_point(|x| *x < t);
    if i == 0 {
        return Some(0);
    }
    if i == times.len() {
        return Some(times.len() - 1);
    }
    Some(if t - times[i - 1] <= times[i] - t {
        i - 1
    } else {
        i
    })
}

/// A count in a few characters: `950`, `1.2k`, `3.4M`, `1.0G`.
pub fn count(v: f64) -> String {
    scaled(v, 1000.0, &["", "k", "M", "G", "T"])
}

/// Bytes: `950 B`, `1.2 kB`, `1.0 TB`.
pub fn bytes(v: f64) -> String {
    let s = scaled(v, 1000.0, &[" B", " kB", " MB", " GB", " TB", " PB"]);
    if v.abs() < 1000.0 && !s.ends_with(" B") {
        format!("{s} B")
    } else {
        s
    }
}

fn scaled(v: f64, base: f64, units: &[&str]) -> String {
    let mut v = v;
    let mut i = 0;
    while v.abs() >= base && i + 1 < units.len() {
        v /= base;
        i += 1;
    }
    if i == 0 {
        if v.fract() == 0.0 {
            format!("{v:.0}{}", units[0])
        } else {
            format!("{v:.1}{}", units[0])
        }
    } else {
        format!("{v:.1}{}", units[i])
    }
}

/// A UTC time label fitting the step: `14:05` within a day, `Mon 14:00` within a week,
/// `11-30` beyond.
pub fn time_label(t: i64, step: i64) -> String {
    let secs = t.rem_euclid(86_400);
    let hm = format!("{:02}:{:02}", secs / 3600, secs % 3600 / 60);
    if step < 3600 {
        hm
    } else if step < 6 * 3600 {
        const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
        #[allow(clippy::cast_sign_loss, clippy::cast_possible_truncation)]
        let weekday = ((t.div_euclid(86_400) + 3).rem_euclid(7)) as usize;
        format!("{} {hm}", DAYS[weekday])
    } else {
        let (_, m, d) = civil(t.div_euclid(86_400));
        format!("{m:02}-{d:02}")
    }
}

/// (year, month, day) of days since 1970-01-01 (Howard Hinnant's civil-from-days).
pub const fn civil(day: i64) -> (i64, u32, u32) {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + if m <= 2 { 1 } else { 0 }, m, d)
}

#[cfg(test)]
#[allow(clippy::float_cmp)] // the values compared are exact (small binary fractions)
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_maximum() {
        assert_eq!(ticks(0.0, 4), [0.0, 0.5, 1.0]);
        assert_eq!(ticks(7.0, 4), [0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(ticks(100.0, 4), [0.0, 50.0, 100.0]);
        let big = ticks(1e12, 4);
        assert_eq!(big.last().copied(), Some(1e12));
        assert!(big.len() <= 6);
        assert_eq!(nice_step(0.3), 0.5);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn scales_map_the_range_onto_the_plot() {
        let s = Scale::new(0, 100, 10.0);
        assert!((s.x(0) - LEFT).abs() < 1e-9);
        assert!((s.x(100) - (WIDTH - RIGHT)).abs() < 1e-9);
        assert!((s.y(0.0) - (HEIGHT - BOTTOM)).abs() < 1e-9);
        assert!((s.y(10.0) - TOP).abs() < 1e-9);
        assert!((s.y(99.0) - TOP).abs() < 1e-9, "clamped");
        assert_eq!(s.time_at(s.x(40)), 40);
        assert_eq!(s.time_at(-5.0), 0);
        // A one-point series still has a width.
        let one = Scale::new(5, 5, 0.0);
        assert!(one.x(5).is_finite() && one.y(0.0).is_finite());
    }

    #[test]
    fn paths_break_at_gaps() {
        let s = Scale::new(0, 3, 1.0);
        let d = path(
            &[(0, Some(0.0)), (1, Some(1.0)), (2, None), (3, Some(0.5))],
            &s,
        );
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert_eq!(path(&[], &s), "");
    }

    #[test]
    fn the_nearest_bucket_is_found_by_binary_search() {
        let times = [0, 60, 120, 180];
        assert_eq!(nearest(&times, -10), Some(0));
        assert_eq!(nearest(&times, 29), Some(0));
        assert_eq!(nearest(&times, 31), Some(1));
        assert_eq!(nearest(&times, 500), Some(3));
        assert_eq!(nearest(&[], 5), None);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(count(950.0), "950");
        assert_eq!(count(1234.0), "1.2k");
        assert_eq!(count(2.5), "2.5");
        assert_eq!(bytes(1e12), "1.0 TB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(bytes(1500.0), "1.5 kB");
        // 2026-11-30 was a Monday.
        let t = 1_796_083_200 - 86_400 + 14 * 3600 + 5 * 60;
        assert_eq!(time_label(t, 60), "14:05");
        assert_eq!(time_label(t, 3600), "Mon 14:05");
        assert_eq!(time_label(t, 86_400), "11-30");
        assert_eq!(civil(0), (1970, 1, 1));
    }
}
