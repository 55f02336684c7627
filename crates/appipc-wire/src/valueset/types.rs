//! The structured scalar types a [`PropertyValue`](super::PropertyValue) can hold:
//! [`Guid`], [`DateTime`], [`TimeSpan`], [`Point`], [`Size`] and [`Rect`], with the field
//! layout and meaning of their `Windows.Foundation` / `System` namesakes.

use core::fmt;
use core::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Number of 100 ns ticks in one second, the unit of [`DateTime`] and [`TimeSpan`].
pub const TICKS_PER_SECOND: i64 = 10_000_000;

/// Nanoseconds per tick.
const NANOS_PER_TICK: u32 = 100;

/// A globally unique identifier, laid out as Windows' `GUID`.
///
/// Every bit pattern is a valid `Guid`, so the fields are public. The text form (both
/// [`Display`](fmt::Display) and [`FromStr`]) is `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`:
/// `data1`, `data2`, `data3` as big-endian hex, then `data4[0..2]` and `data4[2..8]`.
/// Display writes lowercase hex (as .NET's `Guid.ToString()`); `{:X}` writes uppercase
/// (as Windows' `StringFromGUID2`, without its braces). Parsing accepts either case, with
/// or without surrounding braces.
///
/// ```
/// use appipc_wire::valueset::Guid;
///
/// let g: Guid = "{6B29FC40-CA47-1067-B31D-00DD010662DA}".parse().unwrap();
/// assert_eq!(g.data1, 0x6b29_fc40);
/// assert_eq!(g.data4, [0xb3, 0x1d, 0x00, 0xdd, 0x01, 0x06, 0x62, 0xda]);
/// assert_eq!(g.to_string(), "6b29fc40-ca47-1067-b31d-00dd010662da");
/// assert_eq!(format!("{g:X}"), "6B29FC40-CA47-1067-B31D-00DD010662DA");
/// assert_eq!(Guid::from_u128(0x6b29fc40_ca47_1067_b31d_00dd010662da), g);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Guid {
    /// The first 8 hex digits (Windows `Data1`).
    pub data1: u32,
    /// The next 4 hex digits (Windows `Data2`).
    pub data2: u16,
    /// The next 4 hex digits (Windows `Data3`).
    pub data3: u16,
    /// The last 16 hex digits, in text order (Windows `Data4`).
    pub data4: [u8; 8],
}

impl Guid {
    /// The all-zero GUID (Windows `GUID_NULL`).
    pub const NULL: Guid = Guid::from_u128(0);

    /// Builds a `Guid` from its four Windows fields.
    pub const fn from_values(data1: u32, data2: u16, data3: u16, data4: [u8; 8]) -> Self {
        Guid { data1, data2, data3, data4 }
    }

    /// Builds a `Guid` from the 128-bit number its text form spells, most significant
    /// digit first: `Guid::from_u128(0x6b29fc40_ca47_1067_b31d_00dd010662da)`.
    pub const fn from_u128(value: u128) -> Self {
        Self::from_bytes(value.to_be_bytes())
    }

    /// The 128-bit number the text form spells (inverse of [`Guid::from_u128`]).
    pub const fn to_u128(self) -> u128 {
        u128::from_be_bytes(self.to_bytes())
    }

    /// Builds a `Guid` from 16 bytes in text order (RFC 9562 "network" order: `data1`,
    /// `data2`, `data3` big-endian, then `data4`). This is the order used on the wire and by
    /// Python's `uuid.UUID(bytes=...)`.
    pub const fn from_bytes(b: [u8; 16]) -> Self {
        Guid {
            data1: u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
            data2: u16::from_be_bytes([b[4], b[5]]),
            data3: u16::from_be_bytes([b[6], b[7]]),
            data4: [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]],
        }
    }

    /// The 16 bytes in text order (inverse of [`Guid::from_bytes`]); the wire form.
    pub const fn to_bytes(self) -> [u8; 16] {
        let a = self.data1.to_be_bytes();
        let b = self.data2.to_be_bytes();
        let c = self.data3.to_be_bytes();
        let d = self.data4;
        [
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ]
    }

    /// Builds a `Guid` from the 16 bytes of a Windows `GUID` in memory (`data1`, `data2`,
    /// `data3` little-endian, then `data4`), as .NET's `new Guid(byte[])` and Python's
    /// `uuid.UUID(bytes_le=...)` read them.
    pub const fn from_bytes_le(b: [u8; 16]) -> Self {
        Guid {
            data1: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            data2: u16::from_le_bytes([b[4], b[5]]),
            data3: u16::from_le_bytes([b[6], b[7]]),
            data4: [b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]],
        }
    }

    /// The 16 bytes of a Windows `GUID` in memory (inverse of [`Guid::from_bytes_le`]), as
    /// .NET's `Guid.ToByteArray()` returns them.
    pub const fn to_bytes_le(self) -> [u8; 16] {
        let a = self.data1.to_le_bytes();
        let b = self.data2.to_le_bytes();
        let c = self.data3.to_le_bytes();
        let d = self.data4;
        [
            a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5],
            d[6], d[7],
        ]
    }

    fn write_hex(&self, f: &mut fmt::Formatter<'_>, upper: bool) -> fmt::Result {
        let d = self.data4;
        if upper {
            write!(
                f,
                "{:08X}-{:04X}-{:04X}-{:02X}{:02X}-{:02X}{:02X}{:02X}{:02X}{:02X}{:02X}",
                self.data1, self.data2, self.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
            )
        } else {
            write!(
                f,
                "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
                self.data1, self.data2, self.data3, d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]
            )
        }
    }
}

impl fmt::Display for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_hex(f, false)
    }
}

impl fmt::UpperHex for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_hex(f, true)
    }
}

impl fmt::LowerHex for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_hex(f, false)
    }
}

impl fmt::Debug for Guid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Guid(")?;
        self.write_hex(f, false)?;
        f.write_str(")")
    }
}

/// The text given to [`Guid::from_str`] is not a GUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid guid: expected 32 hex digits as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx, optionally in braces"
)]
pub struct ParseGuidError(());

impl FromStr for Guid {
    type Err = ParseGuidError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = s.as_bytes();
        let inner = match bytes {
            [b'{', inner @ .., b'}'] => inner,
            _ => bytes,
        };
        if inner.len() != 36 {
            return Err(ParseGuidError(()));
        }
        let mut value: u128 = 0;
        for (i, &b) in inner.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if b != b'-' {
                    return Err(ParseGuidError(()));
                }
                continue;
            }
            let digit = char::from(b).to_digit(16).ok_or(ParseGuidError(()))?;
            value = (value << 4) | u128::from(digit);
        }
        Ok(Guid::from_u128(value))
    }
}

/// A conversion between [`DateTime`] / [`TimeSpan`] and `std::time` failed because the
/// value has no counterpart on the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeConversionError {
    /// The `SystemTime` lies outside the range of a Windows `DateTime` (about 29,000 years
    /// either side of 1601).
    #[error("system time is outside the range of a windows datetime")]
    DateTimeOutOfRange,
    /// The `DateTime` lies outside the range of this platform's `SystemTime`.
    #[error("datetime is outside the range of std::time::SystemTime")]
    SystemTimeOutOfRange,
    /// The `Duration` is longer than a `TimeSpan` can hold (`i64::MAX` ticks, about 29,000
    /// years).
    #[error("duration is longer than a windows timespan can hold")]
    TimeSpanOutOfRange,
    /// The `TimeSpan` is negative; `std::time::Duration` cannot be.
    #[error("timespan is negative and std::time::Duration cannot be")]
    NegativeTimeSpan,
}

/// A point in time, as Windows' `Windows.Foundation.DateTime`: a signed count of 100 ns
/// ticks since 1601-01-01T00:00:00 UTC (the Windows `FILETIME` epoch).
///
/// Converts to and from [`SystemTime`] with `TryFrom`; a `SystemTime` is truncated toward
/// the past to a whole tick.
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use appipc_wire::valueset::DateTime;
///
/// let t = UNIX_EPOCH + Duration::from_secs(1);
/// let dt = DateTime::try_from(t).unwrap();
/// assert_eq!(dt.universal_time, 116_444_736_010_000_000);
/// assert_eq!(SystemTime::try_from(dt).unwrap(), t);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct DateTime {
    /// 100 ns ticks since 1601-01-01T00:00:00 UTC (Windows `UniversalTime`); may be negative.
    pub universal_time: i64,
}

impl DateTime {
    /// The Unix epoch, 1970-01-01T00:00:00 UTC.
    pub const UNIX_EPOCH: DateTime = DateTime { universal_time: 116_444_736_000_000_000 };

    /// A `DateTime` from its tick count (Windows `UniversalTime`).
    pub const fn from_universal_time(ticks: i64) -> Self {
        DateTime { universal_time: ticks }
    }

    /// The current time.
    ///
    /// Returns `None` only if the system clock is outside the `DateTime` range.
    pub fn now() -> Option<Self> {
        DateTime::try_from(SystemTime::now()).ok()
    }
}

impl TryFrom<SystemTime> for DateTime {
    type Error = TimeConversionError;

    fn try_from(t: SystemTime) -> Result<Self, Self::Error> {
        let out_of_range = TimeConversionError::DateTimeOutOfRange;
        // Signed nanoseconds since the Unix epoch; a SystemTime's range fits an i128 easily.
        let nanos = match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i128::try_from(d.as_nanos()).map_err(|_| out_of_range)?,
            Err(e) => -i128::try_from(e.duration().as_nanos()).map_err(|_| out_of_range)?,
        };
        let ticks = nanos.div_euclid(i128::from(NANOS_PER_TICK))
            + i128::from(DateTime::UNIX_EPOCH.universal_time);
        i64::try_from(ticks).map(DateTime::from_universal_time).map_err(|_| out_of_range)
    }
}

impl TryFrom<DateTime> for SystemTime {
    type Error = TimeConversionError;

    fn try_from(dt: DateTime) -> Result<Self, Self::Error> {
        let rel = i128::from(dt.universal_time) - i128::from(DateTime::UNIX_EPOCH.universal_time);
        let d = ticks_to_duration(rel.unsigned_abs());
        let t = if rel >= 0 { UNIX_EPOCH.checked_add(d) } else { UNIX_EPOCH.checked_sub(d) };
        t.ok_or(TimeConversionError::SystemTimeOutOfRange)
    }
}

/// A `Duration` of `ticks` × 100 ns; `ticks` is at most 2^64, so the seconds fit a u64.
fn ticks_to_duration(ticks: u128) -> Duration {
    let per_sec = u128::from(TICKS_PER_SECOND.unsigned_abs());
    let secs = u64::try_from(ticks / per_sec).unwrap_or(u64::MAX);
    // The remainder is below 10^7, so the nanoseconds are below 10^9 and fit a u32.
    let sub = u32::try_from(ticks % per_sec).unwrap_or(0) * NANOS_PER_TICK;
    Duration::new(secs, sub)
}

/// A length of time, as Windows' `Windows.Foundation.TimeSpan`: a signed count of 100 ns
/// ticks.
///
/// Converts to and from [`Duration`] with `TryFrom` (a `Duration` is truncated to a whole
/// tick; a negative `TimeSpan` has no `Duration`).
///
/// ```
/// use std::time::Duration;
/// use appipc_wire::valueset::TimeSpan;
///
/// let ts = TimeSpan::try_from(Duration::from_millis(1500)).unwrap();
/// assert_eq!(ts.duration, 15_000_000);
/// assert_eq!(Duration::try_from(ts).unwrap(), Duration::from_millis(1500));
/// assert!(Duration::try_from(TimeSpan::from_ticks(-1)).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TimeSpan {
    /// 100 ns ticks (Windows `Duration`); may be negative.
    pub duration: i64,
}

impl TimeSpan {
    /// The empty time span.
    pub const ZERO: TimeSpan = TimeSpan { duration: 0 };

    /// A `TimeSpan` of `ticks` × 100 ns.
    pub const fn from_ticks(ticks: i64) -> Self {
        TimeSpan { duration: ticks }
    }

    /// The number of 100 ns ticks.
    pub const fn ticks(self) -> i64 {
        self.duration
    }
}

impl TryFrom<Duration> for TimeSpan {
    type Error = TimeConversionError;

    fn try_from(d: Duration) -> Result<Self, Self::Error> {
        i64::try_from(d.as_nanos() / u128::from(NANOS_PER_TICK))
            .map(TimeSpan::from_ticks)
            .map_err(|_| TimeConversionError::TimeSpanOutOfRange)
    }
}

impl TryFrom<TimeSpan> for Duration {
    type Error = TimeConversionError;

    fn try_from(ts: TimeSpan) -> Result<Self, Self::Error> {
        let ticks =
            u64::try_from(ts.duration).map_err(|_| TimeConversionError::NegativeTimeSpan)?;
        Ok(ticks_to_duration(u128::from(ticks)))
    }
}

/// A point, as Windows' `Windows.Foundation.Point`: two `f32` coordinates.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    /// Horizontal coordinate (Windows `X`).
    pub x: f32,
    /// Vertical coordinate (Windows `Y`).
    pub y: f32,
}

impl Point {
    /// A point at (`x`, `y`).
    pub const fn new(x: f32, y: f32) -> Self {
        Point { x, y }
    }
}

/// A size, as Windows' `Windows.Foundation.Size`: two `f32` extents.
///
/// Any `f32` is carried, including negative, infinite and NaN extents.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Size {
    /// Horizontal extent (Windows `Width`).
    pub width: f32,
    /// Vertical extent (Windows `Height`).
    pub height: f32,
}

impl Size {
    /// A size of `width` × `height`.
    pub const fn new(width: f32, height: f32) -> Self {
        Size { width, height }
    }
}

/// A rectangle, as Windows' `Windows.Foundation.Rect`: origin and size as four `f32`.
///
/// Any `f32` is carried, including the infinities of XAML's `Rect.Empty`.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Rect {
    /// Left edge (Windows `X`).
    pub x: f32,
    /// Top edge (Windows `Y`).
    pub y: f32,
    /// Horizontal extent (Windows `Width`).
    pub width: f32,
    /// Vertical extent (Windows `Height`).
    pub height: f32,
}

impl Rect {
    /// A rectangle with origin (`x`, `y`) and size `width` × `height`.
    pub const fn new(x: f32, y: f32, width: f32, height: f32) -> Self {
        Rect { x, y, width, height }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_text_forms() {
        let g = Guid::from_values(
            0x0123_4567,
            0x89ab,
            0xcdef,
            [0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54, 0x32, 0x10],
        );
        assert_eq!(g.to_string(), "01234567-89ab-cdef-fedc-ba9876543210");
        assert_eq!(format!("{g:X}"), "01234567-89AB-CDEF-FEDC-BA9876543210");
        assert_eq!(format!("{g:?}"), "Guid(01234567-89ab-cdef-fedc-ba9876543210)");
        for text in [
            "01234567-89ab-cdef-fedc-ba9876543210",
            "01234567-89AB-CDEF-FEDC-BA9876543210",
            "{01234567-89ab-cdef-FEDC-ba9876543210}",
        ] {
            assert_eq!(text.parse::<Guid>(), Ok(g), "{text}");
        }
    }

    #[test]
    fn guid_rejects_malformed_text() {
        for text in [
            "",
            "{}",
            "01234567-89ab-cdef-fedc-ba987654321",
            "01234567-89ab-cdef-fedc-ba98765432100",
            "01234567089ab-cdef-fedc-ba9876543210",
            "0123456g-89ab-cdef-fedc-ba9876543210",
            "{01234567-89ab-cdef-fedc-ba9876543210",
            "01234567-89ab-cdef-fedc-ba9876543210}",
            "(01234567-89ab-cdef-fedc-ba9876543210)",
            "+1234567-89ab-cdef-fedc-ba9876543210",
            "0123456é-89ab-cdef-fedc-ba987654321",
            "0123456789abcdeffedcba9876543210",
        ] {
            assert!(text.parse::<Guid>().is_err(), "{text:?} parsed");
        }
    }

    #[test]
    fn guid_byte_orders() {
        let g: Guid = "00112233-4455-6677-8899-aabbccddeeff".parse().unwrap();
        assert_eq!(
            g.to_bytes(),
            [
                0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        assert_eq!(
            g.to_bytes_le(),
            [
                0x33, 0x22, 0x11, 0x00, 0x55, 0x44, 0x77, 0x66, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
                0xee, 0xff
            ]
        );
        assert_eq!(Guid::from_bytes(g.to_bytes()), g);
        assert_eq!(Guid::from_bytes_le(g.to_bytes_le()), g);
        assert_eq!(Guid::from_u128(g.to_u128()), g);
        assert_eq!(g.to_u128(), 0x00112233_4455_6677_8899_aabbccddeeff);
        assert_eq!(Guid::NULL, Guid::default());
    }

    #[test]
    fn datetime_system_time_round_trip() {
        let cases = [
            UNIX_EPOCH,
            UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_700),
            UNIX_EPOCH - Duration::new(11_644_473_600, 0), // 1601-01-01
            UNIX_EPOCH - Duration::new(20_000_000_000, 500),
        ];
        for t in cases {
            let dt = DateTime::try_from(t).unwrap();
            assert_eq!(SystemTime::try_from(dt).unwrap(), t);
        }
        assert_eq!(
            DateTime::try_from(UNIX_EPOCH - Duration::new(11_644_473_600, 0)),
            Ok(DateTime::from_universal_time(0))
        );
    }

    #[test]
    fn datetime_truncates_toward_the_past() {
        let after = UNIX_EPOCH + Duration::from_nanos(150);
        assert_eq!(
            DateTime::try_from(after).unwrap().universal_time,
            DateTime::UNIX_EPOCH.universal_time + 1
        );
        let before = UNIX_EPOCH - Duration::from_nanos(50);
        assert_eq!(
            DateTime::try_from(before).unwrap().universal_time,
            DateTime::UNIX_EPOCH.universal_time - 1
        );
    }

    #[test]
    fn datetime_extremes_convert_to_system_time() {
        for ticks in [i64::MIN, -1, 0, i64::MAX] {
            let dt = DateTime::from_universal_time(ticks);
            let t = SystemTime::try_from(dt).unwrap();
            assert_eq!(DateTime::try_from(t), Ok(dt));
        }
    }

    #[test]
    fn datetime_out_of_range() {
        let far = UNIX_EPOCH + Duration::from_secs(i64::MAX.unsigned_abs() / 4);
        assert_eq!(DateTime::try_from(far), Err(TimeConversionError::DateTimeOutOfRange));
        assert!(DateTime::now().is_some());
    }

    #[test]
    fn timespan_duration_conversions() {
        assert_eq!(TimeSpan::try_from(Duration::from_nanos(199)), Ok(TimeSpan::from_ticks(1)));
        assert_eq!(
            Duration::try_from(TimeSpan::from_ticks(i64::MAX)).unwrap(),
            Duration::new(922_337_203_685, 477_580_700)
        );
        assert_eq!(TimeSpan::try_from(Duration::MAX), Err(TimeConversionError::TimeSpanOutOfRange));
        assert_eq!(
            Duration::try_from(TimeSpan::from_ticks(-1)),
            Err(TimeConversionError::NegativeTimeSpan)
        );
        assert_eq!(Duration::try_from(TimeSpan::ZERO), Ok(Duration::ZERO));
    }
}
