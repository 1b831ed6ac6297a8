//! Sizes and durations as people type them on a command line.
//!
//! The crew's flags and the foreman's options read them with these two
//! functions, so `64M` or `2h` means the same to both.

use std::time::Duration;

/// A size or duration that could not be read, with the text as given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("{input:?} is not a size like 4096, 512K, 64M or 2G (units: B, K, M, G, T, powers of 1024)")]
    NotASize { input: String },
    #[error("{input:?} is not a duration like 500ms, 5s, 2m, 1h or 7d (a bare number is seconds)")]
    NotADuration { input: String },
    #[error("{input:?} is too large: at most {max} fits")]
    TooLarge { input: String, max: &'static str },
}

/// Size units, powers of 1024 whatever the spelling: `K`, `KB` and `KiB`
/// are all 1024 bytes, as the crew and the foreman have always read `K`.
/// Matched without regard to case (`64m` is `64M`).
const SIZE_UNITS: &[(&[&str], u32)] = &[
    (&["", "B"], 0),
    (&["K", "KB", "KiB"], 10),
    (&["M", "MB", "MiB"], 20),
    (&["G", "GB", "GiB"], 30),
    (&["T", "TB", "TiB"], 40),
];

/// Duration units and their length in milliseconds. Case matters: `m` is a
/// minute, and nothing here is a month.
const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("", 1000),
    ("s", 1000),
    ("m", 60 * 1000),
    ("h", 3600 * 1000),
    ("d", 86_400 * 1000),
];

/// Splits `5s` into `5` and `s`: the leading digits, and the rest.
fn split_number(s: &str) -> (&str, &str) {
    s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()))
}

/// Reads `4096`, `512K`, `64M`, `2G`, `1T` (powers of 1024; `B`, `KB` and
/// `KiB` spellings too, any case) as a number of bytes.
///
/// # Errors
///
/// [`QuantityError::NotASize`] for anything else (fractions, signs, spaces,
/// unknown units), [`QuantityError::TooLarge`] past `u64::MAX` bytes.
pub fn parse_size(s: &str) -> Result<u64, QuantityError> {
    let not_a_size = || QuantityError::NotASize { input: s.to_owned() };
    let (num, unit) = split_number(s);
    let shift = SIZE_UNITS
        .iter()
        .find(|(names, _)| names.iter().any(|n| n.eq_ignore_ascii_case(unit)))
        .map(|&(_, shift)| shift)
        .ok_or_else(not_a_size)?;
    let too_large = || QuantityError::TooLarge {
        input: s.to_owned(),
        max: "18446744073709551615 bytes (16 EiB)",
    };
    if num.is_empty() {
        return Err(not_a_size());
    }
    // Only ASCII digits are left, so overflow is the one way this fails.
    let n: u64 = num.parse().map_err(|_| too_large())?;
    n.checked_mul(1 << shift).ok_or_else(too_large)
}

/// Reads `250ms`, `5s`, `2m`, `1h`, `7d` (a bare number is seconds).
///
/// # Errors
///
/// [`QuantityError::NotADuration`] for anything else (fractions, signs,
/// spaces, unknown units), [`QuantityError::TooLarge`] past `u64::MAX`
/// milliseconds (some 584 million years).
pub fn parse_duration(s: &str) -> Result<Duration, QuantityError> {
    let not_a_duration = || QuantityError::NotADuration { input: s.to_owned() };
    let (num, unit) = split_number(s);
    let millis_each = DURATION_UNITS
        .iter()
        .find(|(name, _)| *name == unit)
        .map(|&(_, ms)| ms)
        .ok_or_else(not_a_duration)?;
    let too_large = || QuantityError::TooLarge {
        input: s.to_owned(),
        max: "18446744073709551615 milliseconds",
    };
    if num.is_empty() {
        return Err(not_a_duration());
    }
    // Only ASCII digits are left, so overflow is the one way this fails.
    let n: u64 = num.parse().map_err(|_| too_large())?;
    n.checked_mul(millis_each)
        .map(Duration::from_millis)
        .ok_or_else(too_large)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_that_read() {
        let table: &[(&str, u64)] = &[
            ("0", 0),
            ("512", 512),
            ("512B", 512),
            ("512b", 512),
            ("64K", 64 << 10),
            ("64k", 64 << 10),
            ("64KB", 64 << 10),
            ("64KiB", 64 << 10),
            ("64kib", 64 << 10),
            ("10M", 10 << 20),
            ("10m", 10 << 20),
            ("10MB", 10 << 20),
            ("10MiB", 10 << 20),
            ("2G", 2 << 30),
            ("2g", 2 << 30),
            ("2GiB", 2 << 30),
            ("3T", 3 << 40),
            ("3TB", 3 << 40),
            ("3tib", 3 << 40),
            ("16777215T", 16_777_215 << 40),
            ("18446744073709551615", u64::MAX),
        ];
        for &(input, want) in table {
            assert_eq!(parse_size(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn sizes_that_do_not_read_say_what_was_given() {
        for input in [
            "", "K", "1.5G", "-1", "+1", " 1", "1 ", "1 K", "64Q", "64KK", "64iB", "1P", "0x10", "٣",
        ] {
            let err = parse_size(input).expect_err(input);
            assert_eq!(
                err,
                QuantityError::NotASize {
                    input: input.to_owned()
                }
            );
            assert!(
                err.to_string().starts_with(&format!("{input:?} is not a size")),
                "{err}"
            );
        }
    }

    #[test]
    fn sizes_past_64_bits_are_too_large_not_wrapped() {
        for input in [
            "16777216T",
            "99999999999999T",
            "18446744073709551616",
            "99999999999999999999999K",
        ] {
            let err = parse_size(input).expect_err(input);
            assert!(
                matches!(err, QuantityError::TooLarge { .. }),
                "{input:?}: {err:?}"
            );
            assert!(err.to_string().contains(input), "{err}");
            assert!(err.to_string().contains("too large"), "{err}");
        }
    }

    #[test]
    fn durations_that_read() {
        let table: &[(&str, Duration)] = &[
            ("0", Duration::ZERO),
            ("7", Duration::from_secs(7)),
            ("250ms", Duration::from_millis(250)),
            ("5s", Duration::from_secs(5)),
            ("2m", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("720h", Duration::from_secs(720 * 3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("18446744073709551615ms", Duration::from_millis(u64::MAX)),
        ];
        for &(input, want) in table {
            assert_eq!(parse_duration(input), Ok(want), "{input:?}");
        }
    }

    #[test]
    fn durations_that_do_not_read_say_what_was_given() {
        for input in [
            "", "s", "5x", "-1s", "+1s", "1.5s", "5 s", "5S", "5M", "5H", "5sec", "1w", "5us", "5ms ",
        ] {
            let err = parse_duration(input).expect_err(input);
            assert_eq!(
                err,
                QuantityError::NotADuration {
                    input: input.to_owned()
                }
            );
            assert!(
                err.to_string()
                    .starts_with(&format!("{input:?} is not a duration")),
                "{err}"
            );
        }
    }

    #[test]
    fn durations_past_64_bits_of_milliseconds_are_too_large_not_wrapped() {
        // The crew's own copy multiplied minutes and hours unchecked: these
        // panicked or wrapped there.
        for input in [
            "18446744073709551616ms",
            "18446744073709552s",
            "307445734561826m",
            "5124095576031h",
            "213503982335d",
            "99999999999999999999999",
        ] {
            let err = parse_duration(input).expect_err(input);
            assert!(
                matches!(err, QuantityError::TooLarge { .. }),
                "{input:?}: {err:?}"
            );
            assert!(err.to_string().contains(input), "{err}");
        }
    }
}
