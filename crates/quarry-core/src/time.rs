//! UTC calendar time from Unix seconds, without a date crate: Howard Hinnant's
//! `civil_from_days`. quarry only names and prints moments (snapshot names, eval run times).

/// `(year, month, day, hour, minute, second)` in UTC of `unix_secs` (seconds since 1970-01-01).
pub fn utc(unix_secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let (days, rest) = (unix_secs / 86_400, unix_secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

#[cfg(test)]
mod tests {
    #[test]
    fn known_moments() {
        assert_eq!(super::utc(0), (1970, 1, 1, 0, 0, 0));
        // 2000-02-29 23:59:59 (a leap day of a century leap year)
        assert_eq!(super::utc(951_868_799), (2000, 2, 29, 23, 59, 59));
        // 2026-12-04 12:55:01
        assert_eq!(super::utc(1_796_388_901), (2026, 12, 4, 12, 55, 1));
    }
}
