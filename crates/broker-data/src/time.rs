//! Timestamps and timespans: signed 64-bit nanosecond counts, as in Broker.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::DataError;

/// A relative duration in nanoseconds (about ±292 years). Negative spans are allowed.
///
/// ```
/// use broker_data::Timespan;
/// use std::time::Duration;
/// let t = Timespan::try_from(Duration::from_millis(1500)).unwrap();
/// assert_eq!(t.as_nanos(), 1_500_000_000);
/// assert_eq!(t.to_string(), "1500000000ns");
/// assert_eq!(Duration::try_from(t).unwrap(), Duration::from_millis(1500));
/// assert!(Duration::try_from(Timespan::from_nanos(-1)).is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timespan(i64);

impl Timespan {
    /// A zero-length span.
    pub const ZERO: Timespan = Timespan(0);

    /// A span of `ns` nanoseconds.
    pub const fn from_nanos(ns: i64) -> Self {
        Timespan(ns)
    }

    /// A span of whole seconds; fails beyond ±292 years.
    pub fn from_secs(secs: i64) -> Result<Self, DataError> {
        secs.checked_mul(1_000_000_000)
            .map(Timespan)
            .ok_or(DataError::OutOfRange("timespan beyond ±292 years"))
    }

    /// A span of fractional seconds, rounded to the nearest nanosecond; fails when not finite or
    /// beyond ±292 years.
    pub fn from_secs_f64(secs: f64) -> Result<Self, DataError> {
        let ns = (secs * 1e9).round();
        // 2^63 is the first f64 beyond `i64::MAX`, hence the half-open range.
        const LIMIT: f64 = 9_223_372_036_854_775_808.0;
        if (-LIMIT..LIMIT).contains(&ns) {
            Ok(Timespan(ns as i64))
        } else {
            Err(DataError::OutOfRange("timespan beyond ±292 years"))
        }
    }

    /// The number of nanoseconds.
    pub const fn as_nanos(&self) -> i64 {
        self.0
    }

    /// The span in fractional seconds.
    pub fn as_secs_f64(&self) -> f64 {
        self.0 as f64 / 1e9
    }
}

impl TryFrom<Duration> for Timespan {
    type Error = DataError;
    fn try_from(d: Duration) -> Result<Self, DataError> {
        i64::try_from(d.as_nanos())
            .map(Timespan)
            .map_err(|_| DataError::OutOfRange("duration beyond 292 years"))
    }
}

impl TryFrom<Timespan> for Duration {
    type Error = DataError;
    fn try_from(t: Timespan) -> Result<Self, DataError> {
        u64::try_from(t.0)
            .map(Duration::from_nanos)
            .map_err(|_| DataError::OutOfRange("negative timespan has no Duration"))
    }
}

/// `<n>ns`, as Broker prints timespans.
impl fmt::Display for Timespan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

impl fmt::Debug for Timespan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// An absolute point in time: nanoseconds since the UNIX epoch (1677 to 2262).
///
/// ```
/// use broker_data::{Timestamp, Timespan};
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// let t = Timestamp::from_nanos(1_700_000_000_000_000_000);
/// let st = SystemTime::try_from(t).unwrap();
/// assert_eq!(st, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// assert_eq!(Timestamp::try_from(st).unwrap(), t);
/// assert_eq!(t.to_string(), "1700000000000000000ns");
/// assert!(Timestamp::now() > t);
/// assert_eq!((t + Timespan::from_nanos(5)).as_nanos(), 1_700_000_000_000_000_005);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Timestamp(i64);

impl Timestamp {
    /// The UNIX epoch.
    pub const EPOCH: Timestamp = Timestamp(0);

    /// The timestamp `ns` nanoseconds after the epoch (before it when negative).
    pub const fn from_nanos(ns: i64) -> Self {
        Timestamp(ns)
    }

    /// The current wall-clock time, as Broker's `now()`. Saturates outside 1677..2262.
    pub fn now() -> Self {
        Timestamp::try_from(SystemTime::now()).unwrap_or(Timestamp(i64::MAX))
    }

    /// Nanoseconds since the epoch.
    pub const fn as_nanos(&self) -> i64 {
        self.0
    }

    /// The time since the epoch as a span.
    pub const fn since_epoch(&self) -> Timespan {
        Timespan(self.0)
    }

    /// Seconds since the epoch, fractional (as Zeek's `time` type holds it).
    pub fn as_secs_f64(&self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// This timestamp moved by `span`, or `None` on overflow.
    pub fn checked_add(&self, span: Timespan) -> Option<Timestamp> {
        self.0.checked_add(span.0).map(Timestamp)
    }
}

impl std::ops::Add<Timespan> for Timestamp {
    type Output = Timestamp;
    /// Saturates at the ends of the representable range.
    fn add(self, rhs: Timespan) -> Timestamp {
        Timestamp(self.0.saturating_add(rhs.0))
    }
}

impl std::ops::Sub for Timestamp {
    type Output = Timespan;
    /// Saturates at the ends of the representable range.
    fn sub(self, rhs: Timestamp) -> Timespan {
        Timespan(self.0.saturating_sub(rhs.0))
    }
}

impl TryFrom<SystemTime> for Timestamp {
    type Error = DataError;
    fn try_from(t: SystemTime) -> Result<Self, DataError> {
        let ns = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).ok(),
            Err(e) => i64::try_from(e.duration().as_nanos()).ok().map(|n| -n),
        };
        ns.map(Timestamp)
            .ok_or(DataError::OutOfRange("time outside 1677..2262"))
    }
}

impl TryFrom<Timestamp> for SystemTime {
    type Error = DataError;
    fn try_from(t: Timestamp) -> Result<Self, DataError> {
        let d = Duration::from_nanos(t.0.unsigned_abs());
        let r = if t.0 >= 0 {
            UNIX_EPOCH.checked_add(d)
        } else {
            UNIX_EPOCH.checked_sub(d)
        };
        r.ok_or(DataError::OutOfRange(
            "time not representable by SystemTime",
        ))
    }
}

/// `<n>ns` (nanoseconds since the epoch), as Broker prints timestamps.
impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ns", self.0)
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::literal::write_timestamp(f, *self)
    }
}
