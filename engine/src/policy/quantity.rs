//! Kubernetes resource quantities (`10Gi`, `500M`, `1.5Ti`, `1e9`) as exact byte counts, for
//! comparing a claim's capacity with the bounds of a volume policy.

/// A quantity in thousandths of a unit: exact for every suffix Kubernetes accepts, with room
/// for the largest (`Ei` × 10^9).
pub type Milli = u128;

/// Parses a quantity into thousandths of a unit; `None` when it is not a valid quantity.
/// Negative quantities are refused: capacities never are.
pub fn parse_milli(text: &str) -> Option<Milli> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number = number.strip_prefix('+').unwrap_or(number);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if (whole.is_empty() && frac.is_empty())
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // digits as one integer, scaled by 10^-frac.len()
    let digits: u128 = format!("{whole}{frac}").parse().ok()?;
    let (binary_pow, decimal_exp): (u32, i32) = match suffix {
        "" => (0, 0),
        "Ki" => (10, 0),
        "Mi" => (20, 0),
        "Gi" => (30, 0),
        "Ti" => (40, 0),
        "Pi" => (50, 0),
        "Ei" => (60, 0),
        "m" => (0, -3),
        "k" => (0, 3),
        "M" => (0, 6),
        "G" => (0, 9),
        "T" => (0, 12),
        "P" => (0, 15),
        "E" => (0, 18),
        s if s.starts_with(['e', 'E']) => (0, s[1..].parse::<i32>().ok()?),
        _ => return None,
    };
    // value × 1000 = digits × 2^binary_pow × 10^(decimal_exp + 3 - frac.len())
    let exp = decimal_exp + 3 - i32::try_from(frac.len()).ok()?;
    let scaled = digits.checked_mul(1u128.checked_shl(binary_pow)?)?;
    if exp >= 0 {
        scaled.checked_mul(10u128.checked_pow(u32::try_from(exp).ok()?)?)
    } else {
        // Below a thousandth of a byte: round up, as Kubernetes rounds quantities up.
        let div = 10u128.checked_pow(u32::try_from(-exp).ok()?)?;
        Some(scaled.div_ceil(div))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_decimal_suffixes_are_exact() {
        assert_eq!(parse_milli("1Gi"), Some(1024 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("1.5Gi"), Some(3 * 512 * 1024 * 1024 * 1000));
        assert_eq!(parse_milli("500M"), Some(500_000_000 * 1000));
        assert_eq!(parse_milli("100"), Some(100_000));
        assert_eq!(parse_milli("250m"), Some(250));
        assert_eq!(parse_milli("1e3"), Some(1_000_000));
        assert_eq!(parse_milli("2E6"), Some(2_000_000_000));
        assert_eq!(parse_milli("1Ei"), Some((1u128 << 60) * 1000));
    }

    #[test]
    fn gi_is_larger_than_g() {
        assert!(parse_milli("10Gi") > parse_milli("10G"));
    }

    #[test]
    fn malformed_quantities_are_refused() {
        for bad in ["", "Gi", "10GB", "ten", "-1Gi", "1..2", "1e", "10 Gi x"] {
            assert_eq!(parse_milli(bad), None, "{bad:?}");
        }
    }
}
