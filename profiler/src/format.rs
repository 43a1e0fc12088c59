//! How numbers are written for people: bytes in binary units, signed rates, durations,
//! counted nouns. One place that both `analysis` (its ledger lines) and `report` (its
//! tables) use, so neither borrows from the other.

/// "1 epoch", "3 epochs".
pub fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// Bytes in binary units with one decimal: "512.0 KiB", "1.2 GiB".
pub fn human_bytes(bytes: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes;
    let mut unit = 0;
    while v.abs() >= 1024.0 && unit < units.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}

/// A signed byte rate: "+2.1 MiB".
pub fn signed_bytes(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "-" } else { "+" };
    format!("{sign}{}", human_bytes(bytes.abs()))
}

/// Seconds as "42 s", "13.5 min", "2.3 h", "4.0 days".
pub fn human_seconds(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.0} s")
    } else if s < 7200.0 {
        format!("{:.1} min", s / 60.0)
    } else if s < 172_800.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} days", s / 86400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(human_bytes(512.0), "512 B");
        assert_eq!(human_bytes(1536.0), "1.5 KiB");
        assert_eq!(human_bytes(3.0 * 1024.0 * 1024.0 * 1024.0), "3.0 GiB");
        assert_eq!(signed_bytes(-2.0 * 1024.0 * 1024.0), "-2.0 MiB");
        assert_eq!(human_seconds(90.0), "90 s");
        assert_eq!(human_seconds(7200.0), "2.0 h");
    }
}
