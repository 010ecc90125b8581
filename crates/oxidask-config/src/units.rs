//! Sizes and durations written with units, as Dask's `parse_bytes` and `parse_timedelta` read
//! them, and back.
//!
//! A quantity is a number (`4`, `1.5`, `1e9`) followed by an optional unit, spaces allowed
//! anywhere (`100 MB`, `5 minutes`). Sizes take decimal (`kB`, `MB`, `GB`, `TB`, `PB`, also
//! `k`, `M`, ...) and binary units (`KiB`, `MiB`, `GiB`, `TiB`, `PiB`, also `Ki`, `Mi`, ...),
//! case-insensitively; a bare number is bytes. Durations take `ns`, `us`, `ms`, `s`, `m`
//! (minutes), `h`, `d`, `w` and the spelled-out names (`seconds`, `minute`, ...); a bare number
//! is seconds.
//!
//! # Invariants
//! Parsing never panics: negative, NaN, infinite and too-large quantities are [`Reason`]s, and
//! what [`format_size`] and [`format_duration`] print parses back to the same value.

use std::time::Duration;

use crate::error::Reason;

/// Byte units, lower-cased, with their multipliers.
const SIZE_UNITS: &[(&str, u64)] = &[
    ("", 1),
    ("b", 1),
    ("k", 1_000),
    ("kb", 1_000),
    ("m", 1_000_000),
    ("mb", 1_000_000),
    ("g", 1_000_000_000),
    ("gb", 1_000_000_000),
    ("t", 1_000_000_000_000),
    ("tb", 1_000_000_000_000),
    ("p", 1_000_000_000_000_000),
    ("pb", 1_000_000_000_000_000),
    ("ki", 1 << 10),
    ("kib", 1 << 10),
    ("mi", 1 << 20),
    ("mib", 1 << 20),
    ("gi", 1 << 30),
    ("gib", 1 << 30),
    ("ti", 1 << 40),
    ("tib", 1 << 40),
    ("pi", 1 << 50),
    ("pib", 1 << 50),
];

/// Time units, lower-cased, in nanoseconds.
const TIME_UNITS: &[(&str, u64)] = &[
    ("ns", 1),
    ("nanosecond", 1),
    ("nanoseconds", 1),
    ("us", 1_000),
    ("microsecond", 1_000),
    ("microseconds", 1_000),
    ("ms", 1_000_000),
    ("millisecond", 1_000_000),
    ("milliseconds", 1_000_000),
    ("s", 1_000_000_000),
    ("sec", 1_000_000_000),
    ("secs", 1_000_000_000),
    ("second", 1_000_000_000),
    ("seconds", 1_000_000_000),
    ("m", 60_000_000_000),
    ("min", 60_000_000_000),
    ("mins", 60_000_000_000),
    ("minute", 60_000_000_000),
    ("minutes", 60_000_000_000),
    ("h", 3_600_000_000_000),
    ("hr", 3_600_000_000_000),
    ("hrs", 3_600_000_000_000),
    ("hour", 3_600_000_000_000),
    ("hours", 3_600_000_000_000),
    ("d", 86_400_000_000_000),
    ("day", 86_400_000_000_000),
    ("days", 86_400_000_000_000),
    ("w", 604_800_000_000_000),
    ("week", 604_800_000_000_000),
    ("weeks", 604_800_000_000_000),
];

/// Splits `text` (spaces removed) into its number and its unit; a unit alone means one of it.
fn split_quantity(text: &str) -> Result<(f64, String), Reason> {
    let s: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    if s.is_empty() {
        return Err(Reason::Empty);
    }
    let unit_start = s
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic())
        .last()
        .map_or(s.len(), |(i, _)| i);
    let (number, unit) = s.split_at(unit_start);
    let n = if number.is_empty() {
        1.0
    } else {
        number.parse::<f64>().map_err(|_| Reason::NotANumber)?
    };
    check_quantity(n)?;
    Ok((n, unit.to_lowercase()))
}

/// Refuses negative and non-finite quantities.
pub(crate) fn check_quantity(n: f64) -> Result<(), Reason> {
    if n.is_nan() || n.is_infinite() {
        Err(Reason::NotFinite)
    } else if n < 0.0 {
        Err(Reason::Negative)
    } else {
        Ok(())
    }
}

/// Parses a size such as `128MiB`, `50 MB`, `1e9` or `4096` into bytes (fractions of a byte are
/// dropped, as Dask does).
pub fn parse_size(text: &str) -> Result<u64, Reason> {
    let (n, unit) = split_quantity(text)?;
    let multiplier = SIZE_UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, m)| *m)
        .ok_or(Reason::UnknownUnit(unit))?;
    // `n` is finite: a product that is not overflowed.
    let bytes = n * multiplier as f64;
    if bytes.is_infinite() {
        return Err(Reason::TooLarge);
    }
    bytes_of(bytes)
}

/// A number of bytes (not negative, finite, at most `u64::MAX`), fractions dropped.
pub(crate) fn bytes_of(n: f64) -> Result<u64, Reason> {
    check_quantity(n)?;
    // `u64::MAX as f64` rounds up to 2^64, which itself does not fit.
    if n >= u64::MAX as f64 {
        return Err(Reason::TooLarge);
    }
    Ok(n as u64)
}

/// Parses a duration such as `30s`, `100ms`, `5 minutes`, `1h` or `2.5` (seconds), to the
/// nearest nanosecond.
pub fn parse_duration(text: &str) -> Result<Duration, Reason> {
    let (n, unit) = split_quantity(text)?;
    let unit = if unit.is_empty() {
        "s".to_owned()
    } else {
        unit
    };
    let nanos_per = TIME_UNITS
        .iter()
        .find(|(u, _)| *u == unit)
        .map(|(_, m)| *m)
        .ok_or(Reason::UnknownUnit(unit))?;
    duration_of_nanos(n * nanos_per as f64)
}

/// A number of seconds as a duration.
pub(crate) fn duration_of_secs(secs: f64) -> Result<Duration, Reason> {
    check_quantity(secs)?;
    duration_of_nanos(secs * 1e9)
}

/// `nanos` (the product of a checked quantity and a unit) as a duration.
fn duration_of_nanos(nanos: f64) -> Result<Duration, Reason> {
    // An infinite product is an overflow of a finite quantity.
    let nanos = nanos.round();
    // Duration holds u64 seconds; stay well inside it (and inside u128 arithmetic).
    if nanos >= u64::MAX as f64 * 1e9 {
        return Err(Reason::TooLarge);
    }
    let nanos = nanos as u128;
    Ok(Duration::new(
        (nanos / 1_000_000_000) as u64,
        (nanos % 1_000_000_000) as u32,
    ))
}

/// Writes `bytes` with the largest unit that divides it exactly (`128MiB`, `50MB`, `1000`).
pub fn format_size(bytes: u64) -> String {
    const UNITS: &[(&str, u64)] = &[
        ("PiB", 1 << 50),
        ("PB", 1_000_000_000_000_000),
        ("TiB", 1 << 40),
        ("TB", 1_000_000_000_000),
        ("GiB", 1 << 30),
        ("GB", 1_000_000_000),
        ("MiB", 1 << 20),
        ("MB", 1_000_000),
        ("KiB", 1 << 10),
        ("kB", 1_000),
    ];
    if bytes == 0 {
        return "0".to_owned();
    }
    UNITS
        .iter()
        .find(|(_, m)| bytes % m == 0)
        .map_or_else(|| bytes.to_string(), |(u, m)| format!("{}{u}", bytes / m))
}

/// Writes `d` with the largest unit that divides it exactly (`5min`, `30s`, `100ms`).
pub fn format_duration(d: Duration) -> String {
    const UNITS: &[(&str, u128)] = &[
        ("h", 3_600_000_000_000),
        ("min", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ];
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_owned();
    }
    UNITS.iter().find(|(_, m)| nanos % m == 0).map_or_else(
        || format!("{nanos}ns"),
        |(u, m)| format!("{}{u}", nanos / m),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_dask_reads_them() {
        let cases: &[(&str, u64)] = &[
            ("100", 100),
            ("100 MB", 100_000_000),
            ("100M", 100_000_000),
            ("5kB", 5_000),
            ("5.4 kB", 5_400),
            ("1kiB", 1024),
            ("1e6", 1_000_000),
            ("1e9", 1_000_000_000),
            ("1e6 kB", 1_000_000_000),
            ("MB", 1_000_000),
            ("4GiB", 4 << 30),
            ("4GB", 4_000_000_000),
            ("4 gib", 4 << 30),
            ("128MiB", 128 << 20),
            ("8GiB", 8 << 30),
            ("0", 0),
            ("1.5", 1),
        ];
        for (text, want) in cases {
            assert_eq!(parse_size(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_sizes_are_reasons_not_panics() {
        assert_eq!(parse_size("-5MB"), Err(Reason::Negative));
        assert_eq!(parse_size("-1"), Err(Reason::Negative));
        assert_eq!(parse_size("1e400"), Err(Reason::NotFinite));
        assert_eq!(
            parse_size("5 foos"),
            Err(Reason::UnknownUnit("foos".into()))
        );
        assert_eq!(parse_size("16 EiB"), Err(Reason::UnknownUnit("eib".into())));
        assert_eq!(parse_size("nan"), Err(Reason::UnknownUnit("nan".into())));
        assert_eq!(parse_size("1.2.3MB"), Err(Reason::NotANumber));
        assert_eq!(parse_size(""), Err(Reason::Empty));
        assert_eq!(parse_size("   "), Err(Reason::Empty));
        assert_eq!(parse_size("20000PB"), Err(Reason::TooLarge));
        assert_eq!(parse_size("18446744073709551616"), Err(Reason::TooLarge));
    }

    #[test]
    fn durations_read_as_dask_reads_them() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Duration)] = &[
            ("3s", ms(3_000)),
            ("3.5 seconds", ms(3_500)),
            ("300ms", ms(300)),
            ("100ms", ms(100)),
            ("5 minutes", ms(300_000)),
            ("5m", ms(300_000)),
            ("5min", ms(300_000)),
            ("1h", ms(3_600_000)),
            ("2", ms(2_000)),
            ("0.1", ms(100)),
            ("0 seconds", ms(0)),
            ("1 day", ms(86_400_000)),
            ("1w", ms(604_800_000)),
            ("10us", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("1MS", ms(1)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(*want), "{text}");
        }
    }

    #[test]
    fn bad_durations_are_reasons_not_panics() {
        assert_eq!(parse_duration("-1s"), Err(Reason::Negative));
        assert_eq!(parse_duration("1e300 weeks"), Err(Reason::TooLarge));
        assert_eq!(parse_duration("1e999s"), Err(Reason::NotFinite));
        assert_eq!(
            parse_duration("3 fortnights"),
            Err(Reason::UnknownUnit("fortnights".into()))
        );
        assert_eq!(
            parse_duration("inf"),
            Err(Reason::UnknownUnit("inf".into()))
        );
        assert_eq!(parse_duration(""), Err(Reason::Empty));
        assert_eq!(duration_of_secs(f64::NAN), Err(Reason::NotFinite));
        assert_eq!(duration_of_secs(-0.5), Err(Reason::Negative));
    }

    #[test]
    fn printed_quantities_parse_back() {
        for bytes in [
            0,
            1,
            1000,
            1024,
            50_000_000,
            128 << 20,
            8 << 30,
            1_024_000,
            12345,
        ] {
            assert_eq!(parse_size(&format_size(bytes)), Ok(bytes), "{bytes}");
        }
        assert_eq!(format_size(128 << 20), "128MiB");
        assert_eq!(format_size(50_000_000), "50MB");
        for d in [
            Duration::ZERO,
            Duration::from_secs(300),
            Duration::from_secs(30),
            Duration::from_millis(100),
            Duration::from_secs(7200),
            Duration::from_nanos(1_234_567),
            Duration::from_micros(3),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
        assert_eq!(format_duration(Duration::from_secs(300)), "5min");
        assert_eq!(format_duration(Duration::from_millis(100)), "100ms");
    }
}
