//! Values as people read them on a page: dates as "3 Dec 2026 11:02 UTC" (the exact
//! instant in a `<time datetime>`), sizes in binary units with the exact bytes in a
//! `title`, and "—" for what is not known yet.

use crate::rfc3339;
use maud::{html, Markup};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Unix seconds as "3 Dec 2026 11:02 UTC".
pub fn date_text(unix: u64) -> String {
    // `YYYY-MM-DDTHH:MM:SSZ`, always ASCII.
    let s = rfc3339::seconds(unix);
    let month = s[5..7].parse::<usize>().unwrap_or(1).clamp(1, 12);
    let day = s[8..10].trim_start_matches('0');
    format!("{day} {} {} {} UTC", MONTHS[month - 1], &s[..4], &s[11..16])
}

/// A date, or "—" when there is none.
pub fn date(unix: Option<u64>) -> Markup {
    match unix {
        Some(t) => html! { time datetime=(rfc3339::seconds(t)) { (date_text(t)) } },
        None => unknown(),
    }
}

/// Bytes as "1.5 MiB" (whole bytes below a KiB).
pub fn size_text(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut v = bytes as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if v < 10.0 {
        format!("{v:.1} {}", UNITS[unit])
    } else {
        format!("{v:.0} {}", UNITS[unit])
    }
}

/// A size with its exact bytes on hover, or "—" when it is not known yet.
pub fn size(bytes: Option<u64>) -> Markup {
    match bytes {
        Some(b) => html! { span title={ (b) " bytes" } { (size_text(b)) } },
        None => unknown(),
    }
}

/// What is not known (yet).
pub fn unknown() -> Markup {
    html! { span.muted { "—" } }
}

/// A digest shortened to its algorithm and first 12 hex digits, whole in a `title`.
pub fn digest(d: &str) -> Markup {
    html! { code title=(d) { (crate::package::short_digest(d)) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_sizes_read_as_people_write_them() {
        assert_eq!(date_text(1_796_295_720), "3 Dec 2026 11:02 UTC");
        assert_eq!(date_text(0), "1 Jan 1970 00:00 UTC");
        assert_eq!(size_text(0), "0 B");
        assert_eq!(size_text(1023), "1023 B");
        assert_eq!(size_text(1536), "1.5 KiB");
        assert_eq!(size_text(300 << 20), "300 MiB");
        assert_eq!(size_text(u64::MAX), "16 EiB");
        let s = size(Some(1536)).into_string();
        assert_eq!(s, "<span title=\"1536 bytes\">1.5 KiB</span>");
        assert!(digest(&format!("sha256:{}", "a".repeat(64)))
            .into_string()
            .contains(">sha256:aaaaaaaaaaaa<"));
    }
}
