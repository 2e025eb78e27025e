//! Byte sizes as people write them on a command line: `256MiB`, `1GiB`, `4096`, `1.5GB`.

/// Parses a byte count with an optional binary (`KiB`, `MiB`, `GiB`) or decimal (`KB`,
/// `MB`, `GB`) unit; a bare number is bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        other => {
            return Err(format!(
                "size {s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB, KB, MB, GB)"
            ))
        }
    };
    if num.is_empty() {
        return Err(format!("size {s:?}: expected a number, e.g. 256MiB"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(mult)
            .ok_or_else(|| format!("size {s:?}: too large"));
    }
    let f: f64 = num
        .parse()
        .map_err(|_| format!("size {s:?}: {num:?} is not a number"))?;
    let bytes = f * mult as f64;
    if !(0.0..1.8e19).contains(&bytes) {
        return Err(format!("size {s:?}: out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Formats a byte count with the largest binary unit that keeps it readable.
pub fn fmt_size(n: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, unit) in UNITS {
        if n >= unit {
            if n % unit == 0 {
                return format!("{}{name}", n / unit);
            }
            return format!("{:.1}{name}", n as f64 / unit as f64);
        }
    }
    format!("{n}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_units_parse_to_bytes() {
        assert_eq!(parse_size("256MiB"), Ok(256 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("16 KiB"), Ok(16 << 10));
        assert_eq!(parse_size("1.5GB"), Ok(1_500_000_000));
        assert_eq!(parse_size("2mb"), Ok(2_000_000));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn nonsense_sizes_are_errors() {
        assert!(parse_size("").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("99999999999999999999GiB").is_err());
    }

    #[test]
    fn sizes_format_with_the_largest_fitting_unit() {
        assert_eq!(fmt_size(256 << 20), "256MiB");
        assert_eq!(fmt_size(1536 << 20), "1.5GiB");
        assert_eq!(fmt_size(100), "100B");
    }
}
