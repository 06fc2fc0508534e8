//! Quiet hours: a daily window, in the user's own time zone, during which pushes are silent
//! (spec §B5). Pure and table-tested; the delivery pipeline asks [`in_quiet_hours`] per push.

use chrono::{DateTime, Timelike, Utc};
use chrono_tz::Tz;

use super::Settings;

/// Minutes in a day: start and end are `0..MINUTES_PER_DAY`.
pub const MINUTES_PER_DAY: u16 = 24 * 60;

/// A daily window. Kept whole while disabled, so turning quiet hours back on restores it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QuietHours {
    /// Whether the window applies.
    pub enabled: bool,
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End (exclusive), minutes after local midnight; equal to start means all day.
    pub end_minute: u16,
    /// The zone the minutes are local to; required when enabled.
    pub time_zone: Option<Tz>,
}

/// True when pushes to the owner of `settings` are silent at `at`: quiet hours are enabled
/// and `at`, read on the wall clock of their zone, falls in `[start, end)`; a window whose
/// start is after its end crosses midnight (22:00–07:00), and start = end is all day.
///
/// Wall-clock time follows daylight saving: on the night clocks spring forward the window is
/// an hour shorter in real time, in autumn an hour longer.
pub fn in_quiet_hours(settings: &Settings, at: DateTime<Utc>) -> bool {
    let quiet = &settings.quiet_hours;
    let Some(zone) = quiet.time_zone.filter(|_| quiet.enabled) else {
        return false;
    };
    let local = at.with_timezone(&zone);
    let minute = u16::try_from(local.hour() * 60 + local.minute()).unwrap_or(0);
    let (start, end) = (quiet.start_minute, quiet.end_minute);
    match start.cmp(&end) {
        std::cmp::Ordering::Equal => true,
        std::cmp::Ordering::Less => (start..end).contains(&minute),
        std::cmp::Ordering::Greater => minute >= start || minute < end,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn settings(enabled: bool, start: (u16, u16), end: (u16, u16), zone: &str) -> Settings {
        Settings {
            show_previews: true,
            quiet_hours: QuietHours {
                enabled,
                start_minute: start.0 * 60 + start.1,
                end_minute: end.0 * 60 + end.1,
                time_zone: zone.parse().ok(),
            },
        }
    }

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn a_window_within_one_day() {
        let s = settings(true, (9, 0), (17, 30), "UTC");
        let cases = [
            ((8, 59), false),
            ((9, 0), true),
            ((12, 0), true),
            ((17, 29), true),
            ((17, 30), false),
            ((23, 0), false),
        ];
        for ((h, m), quiet) in cases {
            assert_eq!(in_quiet_hours(&s, utc(2026, 6, 1, h, m)), quiet, "{h}:{m}");
        }
    }

    #[test]
    fn a_window_across_midnight() {
        let s = settings(true, (22, 0), (7, 0), "UTC");
        let cases = [
            ((21, 59), false),
            ((22, 0), true),
            ((23, 59), true),
            ((0, 0), true),
            ((6, 59), true),
            ((7, 0), false),
            ((12, 0), false),
        ];
        for ((h, m), quiet) in cases {
            assert_eq!(in_quiet_hours(&s, utc(2026, 6, 1, h, m)), quiet, "{h}:{m}");
        }
    }

    #[test]
    fn start_equal_to_end_is_all_day_and_disabled_is_never() {
        let all_day = settings(true, (8, 0), (8, 0), "Asia/Tokyo");
        let off = settings(false, (0, 0), (0, 0), "Asia/Tokyo");
        for h in 0..24 {
            assert!(in_quiet_hours(&all_day, utc(2026, 1, 1, h, 30)));
            assert!(!in_quiet_hours(&off, utc(2026, 1, 1, h, 30)));
        }
        let no_zone = settings(true, (0, 0), (0, 0), "");
        assert!(!in_quiet_hours(&no_zone, utc(2026, 1, 1, 0, 0)));
    }

    #[test]
    fn minutes_are_read_in_the_users_zone() {
        // 22:00-07:00 in New York (UTC-4 in June): 03:00 UTC is 23:00 there.
        let s = settings(true, (22, 0), (7, 0), "America/New_York");
        assert!(in_quiet_hours(&s, utc(2026, 6, 1, 3, 0)));
        assert!(!in_quiet_hours(&s, utc(2026, 6, 1, 12, 0)));
        // 10:59 UTC is 06:59 there, 11:00 is 07:00.
        assert!(in_quiet_hours(&s, utc(2026, 6, 1, 10, 59)));
        assert!(!in_quiet_hours(&s, utc(2026, 6, 1, 11, 0)));
    }

    #[test]
    fn daylight_saving_starts_in_berlin_on_2026_03_29() {
        // 22:00-07:00 Europe/Berlin. The day before, CET (UTC+1): 05:30 UTC is 06:30, quiet.
        let s = settings(true, (22, 0), (7, 0), "Europe/Berlin");
        assert!(in_quiet_hours(&s, utc(2026, 3, 28, 5, 30)));
        // That morning clocks jump 02:00 -> 03:00 (CEST, UTC+2): 05:30 UTC is 07:30, not quiet.
        assert!(!in_quiet_hours(&s, utc(2026, 3, 29, 5, 30)));
        assert!(in_quiet_hours(&s, utc(2026, 3, 29, 4, 59)));
        assert!(!in_quiet_hours(&s, utc(2026, 3, 29, 5, 0)));
        // The evening start follows the new offset too: 20:00 UTC is 22:00 CEST.
        assert!(!in_quiet_hours(&s, utc(2026, 3, 29, 19, 59)));
        assert!(in_quiet_hours(&s, utc(2026, 3, 29, 20, 0)));
    }

    #[test]
    fn a_window_inside_the_skipped_hour_is_empty_that_night() {
        // 02:00-03:00 local does not exist on 2026-03-29 in Berlin: 00:59 UTC is 01:59 CET,
        // 01:00 UTC is already 03:00 CEST.
        let s = settings(true, (2, 0), (3, 0), "Europe/Berlin");
        assert!(!in_quiet_hours(&s, utc(2026, 3, 29, 0, 59)));
        assert!(!in_quiet_hours(&s, utc(2026, 3, 29, 1, 0)));
        // A night earlier it is an ordinary hour: 01:30 UTC is 02:30 CET.
        assert!(in_quiet_hours(&s, utc(2026, 3, 28, 1, 30)));
    }

    #[test]
    fn the_repeated_hour_in_autumn_is_quiet_both_times() {
        // 2026-10-25 Berlin: 03:00 CEST -> 02:00 CET, so 02:00-03:00 happens twice.
        let s = settings(true, (2, 0), (3, 0), "Europe/Berlin");
        assert!(in_quiet_hours(&s, utc(2026, 10, 25, 0, 30))); // 02:30 CEST
        assert!(in_quiet_hours(&s, utc(2026, 10, 25, 1, 30))); // 02:30 CET
        assert!(!in_quiet_hours(&s, utc(2026, 10, 25, 2, 0))); // 03:00 CET
    }
}
