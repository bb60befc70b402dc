//! The text forms inside JSON strings: timestamps, timespans, addresses, subnets, ports.

use broker_data::{Address, Port, Protocol, Subnet, Timespan, Timestamp};

pub(crate) const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// Year, month, day of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Days since 1970-01-01 of a date (the inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Reads `n` ASCII digits at `*at`.
fn digits(s: &[u8], at: &mut usize, n: usize) -> Option<i64> {
    let part = s.get(*at..*at + n)?;
    if !part.iter().all(u8::is_ascii_digit) {
        return None;
    }
    *at += n;
    Some(part.iter().fold(0, |acc, d| acc * 10 + i64::from(d - b'0')))
}

fn expect(s: &[u8], at: &mut usize, c: u8) -> Option<()> {
    (s.get(*at) == Some(&c)).then(|| *at += 1)
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}][Z|±HH[:]MM]`, no zone meaning UTC (as Broker reads it).
pub(crate) fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let s = text.as_bytes();
    let mut at = 0;
    let y = digits(s, &mut at, 4)?;
    expect(s, &mut at, b'-')?;
    let mo = digits(s, &mut at, 2)? as u32;
    expect(s, &mut at, b'-')?;
    let d = digits(s, &mut at, 2)? as u32;
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) {
        return None;
    }
    expect(s, &mut at, b'T')?;
    let h = digits(s, &mut at, 2)?;
    expect(s, &mut at, b':')?;
    let mi = digits(s, &mut at, 2)?;
    expect(s, &mut at, b':')?;
    let sec = digits(s, &mut at, 2)?;
    if h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut frac = 0i64;
    if s.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while at < s.len() && s[at].is_ascii_digit() {
            at += 1;
        }
        let n = at - start;
        if n == 0 || n > 9 {
            return None;
        }
        frac = digits(s, &mut { start }, n)? * 10i64.pow((9 - n) as u32);
    }
    let mut offset = 0i64;
    match s.get(at) {
        None => {}
        Some(b'Z') if at + 1 == s.len() => {}
        Some(&sign @ (b'+' | b'-')) => {
            at += 1;
            let oh = digits(s, &mut at, 2)?;
            if s.get(at) == Some(&b':') {
                at += 1;
            }
            let om = digits(s, &mut at, 2)?;
            if at != s.len() || oh > 23 || om > 59 {
                return None;
            }
            offset = (oh * 60 + om) * 60 * if sign == b'+' { 1 } else { -1 };
        }
        _ => return None,
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    // In i128: the earliest timestamps have a negative second count whose nanoseconds alone
    // lie beyond i64 before the fraction brings them back.
    let ns = i128::from(secs) * 1_000_000_000 + i128::from(frac);
    i64::try_from(ns).ok().map(Timestamp::from_nanos)
}

/// `<number><unit>`: the number may have a sign, a fraction and an exponent (zeekpy sends
/// `1500000000.0ns`); units are `ns`, `us`, `ms`, `s`, `min`, `h` and `d`. The number is read
/// exactly in decimal (Broker reads it as a double, losing precision beyond 2^53 ns) and
/// rounded to the nearest nanosecond; a span beyond ±292 years is refused.
pub(crate) fn parse_timespan(text: &str) -> Option<Timespan> {
    // No unit begins with the exponent's letter.
    let split = text.find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')?;
    let (num, unit) = text.split_at(split);
    let unit_ns: i128 = match unit {
        "ns" => 1,
        "us" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        "d" => 86_400_000_000_000,
        _ => return None,
    };
    let ns = decimal_times(num, unit_ns)?;
    i64::try_from(ns).ok().map(Timespan::from_nanos)
}

/// The decimal number `num` times `factor`, rounded half away from zero to an integer; none
/// when `num` is not a number or the result does not fit an `i128` comfortably.
fn decimal_times(num: &str, factor: i128) -> Option<i128> {
    let s = num.as_bytes();
    let mut at = 0;
    let negative = match s.first() {
        Some(b'-') => {
            at = 1;
            true
        }
        Some(b'+') => {
            at = 1;
            false
        }
        _ => false,
    };
    let mut mantissa: i128 = 0;
    let mut scale: i32 = 0;
    let mut seen_digit = false;
    let mut seen_dot = false;
    while at < s.len() {
        match s[at] {
            c @ b'0'..=b'9' => {
                seen_digit = true;
                if mantissa < 10i128.pow(30) {
                    mantissa = mantissa * 10 + i128::from(c - b'0');
                    if seen_dot {
                        scale -= 1;
                    }
                } else if !seen_dot {
                    // Too many significant digits: keep the magnitude, drop the precision.
                    scale += 1;
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            b'e' | b'E' => break,
            _ => return None,
        }
        at += 1;
    }
    if !seen_digit {
        return None;
    }
    if at < s.len() {
        let exp: i32 = num[at + 1..].parse().ok()?;
        scale = scale.checked_add(exp)?;
    }
    let mut value = mantissa.checked_mul(factor)?;
    if scale >= 0 {
        if scale > 30 {
            return (value == 0).then_some(0);
        }
        value = value.checked_mul(10i128.pow(scale as u32))?;
    } else {
        let div = 10i128.checked_pow((-scale) as u32);
        value = match div {
            Some(div) => (value + div / 2) / div,
            None => 0,
        };
    }
    Some(if negative { -value } else { value })
}

/// An IPv4 or IPv6 address in any form Rust's parser takes (dotted quad, compressed IPv6,
/// IPv4-mapped IPv6).
pub(crate) fn parse_address(text: &str) -> Option<Address> {
    text.parse::<std::net::IpAddr>().ok().map(Address::from)
}

/// `<address>/<length>`; a length beyond the family's (32, 128) is refused, where Broker
/// silently makes the subnet `::/0`.
pub(crate) fn parse_subnet(text: &str) -> Option<Subnet> {
    let (addr, len) = text.rsplit_once('/')?;
    if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Subnet::new(parse_address(addr)?, len.parse().ok()?).ok()
}

/// `<number>/<protocol>` with `tcp`, `udp`, `icmp` or `?`; no `/` means TCP and an unknown
/// protocol word `?`, as in Broker. A number beyond 65535 or with other characters is refused
/// (Broker truncates it to 16 bits, or reads garbage as 0).
pub(crate) fn parse_port(text: &str) -> Option<Port> {
    let (num, proto) = text.split_once('/').unwrap_or((text, "tcp"));
    if num.is_empty() || num.len() > 5 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let number: u16 = num.parse().ok()?;
    let protocol = match proto {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        "icmp" => Protocol::Icmp,
        _ => Protocol::Unknown,
    };
    Some(Port::new(number, protocol))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_across_the_whole_range() {
        for days in [-106_752, -719_468, -1, 0, 1, 59, 365, 11_016, 106_751] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn timestamps_in_every_form_clients_send() {
        let t = |s: &str| parse_timestamp(s).map(|t| t.as_nanos());
        let base = 1_649_574_000_000_000_000; // 2022-04-10T07:00:00Z
        assert_eq!(t("2022-04-10T07:00:00"), Some(base));
        assert_eq!(t("2022-04-10T07:00:00Z"), Some(base));
        assert_eq!(t("2022-04-10T07:00:00+00:00"), Some(base));
        assert_eq!(t("2022-04-10T09:00:00+0200"), Some(base));
        assert_eq!(t("2022-04-10T07:00:00.123"), Some(base + 123_000_000));
        assert_eq!(t("2022-04-10T07:00:00.123456"), Some(base + 123_456_000));
        assert_eq!(t("2022-04-10T07:00:00.000000001"), Some(base + 1));
        assert_eq!(t("1969-12-31T23:59:59.5"), Some(-500_000_000));
        for bad in [
            "2022-04-10",
            "2022-02-30T00:00:00",
            "2022-04-10T24:00:00",
            "2022-04-10T07:00:00.",
            "2022-04-10T07:00:00.1234567890",
            "2022-04-10T07:00:00x",
            "2022-04-10T07:00:00+1",
            "",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn timespans_with_fractions_exponents_and_every_unit() {
        let t = |s: &str| parse_timespan(s).map(|t| t.as_nanos());
        assert_eq!(t("1500000000.0ns"), Some(1_500_000_000));
        assert_eq!(t("1.5s"), Some(1_500_000_000));
        assert_eq!(t("-1500ms"), Some(-1_500_000_000));
        assert_eq!(t("15us"), Some(15_000));
        assert_eq!(t("2min"), Some(120_000_000_000));
        assert_eq!(t("1h"), Some(3_600_000_000_000));
        assert_eq!(t("1d"), Some(86_400_000_000_000));
        assert_eq!(t("1e3ms"), Some(1_000_000_000));
        assert_eq!(t("2.5e-1s"), Some(250_000_000));
        assert_eq!(t("0.4ns"), Some(0));
        assert_eq!(t("9223372036854775807ns"), Some(i64::MAX));
        assert_eq!(t("-9223372036854775808ns"), Some(i64::MIN));
        for bad in [
            "",
            "s",
            "5",
            "5 s",
            "5sec",
            "1e999s",
            "9223372036854775808ns",
            "1..2s",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn subnets_and_ports_refuse_what_broker_would_mangle() {
        assert_eq!(
            parse_subnet("10.1.2.3/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(parse_subnet("10.0.0.0/33").is_none());
        assert!(parse_subnet("::/129").is_none());
        assert!(parse_subnet("10.0.0.0/").is_none());
        assert_eq!(parse_port("80").unwrap().to_string(), "80/tcp");
        assert_eq!(parse_port("53/udp").unwrap().to_string(), "53/udp");
        assert_eq!(parse_port("8/icmp").unwrap().to_string(), "8/icmp");
        assert_eq!(parse_port("1/sctp").unwrap().to_string(), "1/?");
        assert!(parse_port("70000/tcp").is_none());
        assert!(parse_port("8x/tcp").is_none());
        assert!(parse_address("1.2.3.999").is_none());
    }
}
