//! [`PropertyValue`], one typed value of a [`ValueSet`], and [`PropertyType`], the
//! Windows `Windows.Foundation.PropertyType` enumeration that names its kind.

use core::fmt;

use super::ValueSet;
use super::types::{DateTime, Guid, Point, Rect, Size, TimeSpan};

macro_rules! property_types {
    ($( $(#[$doc:meta])* $name:ident = $code:literal, )*) => {
        /// The kind of a [`PropertyValue`], with the numeric values of Windows'
        /// `Windows.Foundation.PropertyType`.
        ///
        /// All Windows values are listed, including the four that cannot cross a process
        /// boundary and therefore never occur in a [`PropertyValue`]: `Inspectable` (13),
        /// `OtherType` (20), `InspectableArray` (1037) and `OtherTypeArray` (1044)
        /// (see [`PropertyType::can_cross_process`]).
        ///
        /// [`PropertyType::ValueSet`] (`0x8000`) is an appipc addition for a nested
        /// [`ValueSet`]. Windows has no `PropertyType` for it: a nested `ValueSet` is a
        /// plain `IInspectable` there, which does not implement `IPropertyValue`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u16)]
        pub enum PropertyType {
            $( $(#[$doc])* $name = $code, )*
        }

        impl PropertyType {
            /// Every `PropertyType`, in ascending numeric order.
            pub const ALL: &'static [PropertyType] = &[$(PropertyType::$name,)*];

            /// The `PropertyType` with the numeric value `code`, or `None` if there is none.
            pub const fn from_u16(code: u16) -> Option<PropertyType> {
                match code {
                    $( $code => Some(PropertyType::$name), )*
                    _ => None,
                }
            }

            /// The Windows name, such as `"UInt8Array"` (`"ValueSet"` for the appipc
            /// addition).
            pub const fn name(self) -> &'static str {
                match self {
                    $( PropertyType::$name => stringify!($name), )*
                }
            }
        }
    };
}

property_types! {
    /// No value (Windows `PropertyValue.CreateEmpty()`, a null reference).
    Empty = 0,
    /// `u8`.
    UInt8 = 1,
    /// `i16`.
    Int16 = 2,
    /// `u16`.
    UInt16 = 3,
    /// `i32`.
    Int32 = 4,
    /// `u32`.
    UInt32 = 5,
    /// `i64`.
    Int64 = 6,
    /// `u64`.
    UInt64 = 7,
    /// `f32`.
    Single = 8,
    /// `f64`.
    Double = 9,
    /// One UTF-16 code unit (`u16`); lone surrogates included.
    Char16 = 10,
    /// `bool`.
    Boolean = 11,
    /// Text.
    String = 12,
    /// An arbitrary object; cannot cross a process boundary.
    Inspectable = 13,
    /// A [`DateTime`].
    DateTime = 14,
    /// A [`TimeSpan`].
    TimeSpan = 15,
    /// A [`Guid`].
    Guid = 16,
    /// A [`Point`].
    Point = 17,
    /// A [`Size`].
    Size = 18,
    /// A [`Rect`].
    Rect = 19,
    /// A value type Windows cannot name; cannot cross a process boundary.
    OtherType = 20,
    /// Array of `u8`.
    UInt8Array = 1025,
    /// Array of `i16`.
    Int16Array = 1026,
    /// Array of `u16`.
    UInt16Array = 1027,
    /// Array of `i32`.
    Int32Array = 1028,
    /// Array of `u32`.
    UInt32Array = 1029,
    /// Array of `i64`.
    Int64Array = 1030,
    /// Array of `u64`.
    UInt64Array = 1031,
    /// Array of `f32`.
    SingleArray = 1032,
    /// Array of `f64`.
    DoubleArray = 1033,
    /// Array of UTF-16 code units (`u16`).
    Char16Array = 1034,
    /// Array of `bool`.
    BooleanArray = 1035,
    /// Array of text.
    StringArray = 1036,
    /// Array of objects; cannot cross a process boundary (Windows refuses it in a
    /// `ValueSet`).
    InspectableArray = 1037,
    /// Array of [`DateTime`].
    DateTimeArray = 1038,
    /// Array of [`TimeSpan`].
    TimeSpanArray = 1039,
    /// Array of [`Guid`].
    GuidArray = 1040,
    /// Array of [`Point`].
    PointArray = 1041,
    /// Array of [`Size`].
    SizeArray = 1042,
    /// Array of [`Rect`].
    RectArray = 1043,
    /// Array of unnamed value types; cannot cross a process boundary.
    OtherTypeArray = 1044,
    /// A nested [`ValueSet`]: appipc's addition, outside Windows' range (see the type's
    /// documentation).
    ValueSet = 0x8000,
}

impl PropertyType {
    /// Offset between a scalar type and its array type (`Int32Array` = `Int32` + 1024).
    pub const ARRAY_OFFSET: u16 = 1024;

    /// The numeric value, as on Windows and on the wire.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }

    /// Whether this is one of the array kinds (1025 ..= 1044).
    pub const fn is_array(self) -> bool {
        let code = self.as_u16();
        code > Self::ARRAY_OFFSET && code <= Self::ARRAY_OFFSET + 20
    }

    /// For an array kind, the kind of its elements (`Int32Array` → `Int32`); otherwise
    /// `None`.
    pub const fn element_type(self) -> Option<PropertyType> {
        if self.is_array() {
            PropertyType::from_u16(self.as_u16() - Self::ARRAY_OFFSET)
        } else {
            None
        }
    }

    /// Whether a value of this kind can be carried by value to another process, and so
    /// can be a [`PropertyValue`]. False only for `Inspectable`, `OtherType`,
    /// `InspectableArray` and `OtherTypeArray`.
    pub const fn can_cross_process(self) -> bool {
        !matches!(
            self,
            PropertyType::Inspectable
                | PropertyType::OtherType
                | PropertyType::InspectableArray
                | PropertyType::OtherTypeArray
        )
    }
}

impl fmt::Display for PropertyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl From<PropertyType> for u16 {
    fn from(t: PropertyType) -> u16 {
        t.as_u16()
    }
}

/// One value of a [`ValueSet`]: a Windows `PropertyValue` of a kind that can cross a
/// process boundary, or a nested `ValueSet`.
///
/// Every variant keeps its exact type across an encode/decode round trip: an `Int16`
/// stays an `Int16`, a `Char16` stays a `Char16` (not a `UInt16`), `Single` stays `f32`.
/// Floats keep their bit patterns, NaN payloads included (so `PartialEq`, which follows
/// IEEE 754, reports a NaN as unequal to itself).
///
/// Build values with `From`/`Into` from ordinary Rust types (`5_i32.into()` is an
/// `Int32`, `"x".into()` a `String`, `vec![1_u8]` a `UInt8Array`, `None::<i32>` is
/// `Empty`), or name the variant when the Rust type alone is ambiguous: a `u16` converts
/// to `UInt16`, so a UTF-16 code unit is written `PropertyValue::Char16(0xd800)`.
///
/// Read them with the `as_*` accessors, which return `Some` only for exactly that kind
/// (there is no numeric coercion: `as_int64` of an `Int32` is `None`).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PropertyValue {
    /// No value (code 0); what Windows' `PropertyValue.CreateEmpty()` (null) stands for.
    #[default]
    Empty,
    /// Code 1.
    UInt8(u8),
    /// Code 2.
    Int16(i16),
    /// Code 3.
    UInt16(u16),
    /// Code 4.
    Int32(i32),
    /// Code 5.
    UInt32(u32),
    /// Code 6.
    Int64(i64),
    /// Code 7.
    UInt64(u64),
    /// Code 8.
    Single(f32),
    /// Code 9.
    Double(f64),
    /// Code 10: one UTF-16 code unit, which may be a lone surrogate (so not a `char`).
    Char16(u16),
    /// Code 11.
    Boolean(bool),
    /// Code 12. Unicode text; a Windows string holding a lone surrogate has no `String`
    /// form (send it as a `Char16Array`).
    String(String),
    /// Code 14.
    DateTime(DateTime),
    /// Code 15.
    TimeSpan(TimeSpan),
    /// Code 16.
    Guid(Guid),
    /// Code 17.
    Point(Point),
    /// Code 18.
    Size(Size),
    /// Code 19.
    Rect(Rect),
    /// Code 1025.
    UInt8Array(Vec<u8>),
    /// Code 1026.
    Int16Array(Vec<i16>),
    /// Code 1027.
    UInt16Array(Vec<u16>),
    /// Code 1028.
    Int32Array(Vec<i32>),
    /// Code 1029.
    UInt32Array(Vec<u32>),
    /// Code 1030.
    Int64Array(Vec<i64>),
    /// Code 1031.
    UInt64Array(Vec<u64>),
    /// Code 1032.
    SingleArray(Vec<f32>),
    /// Code 1033.
    DoubleArray(Vec<f64>),
    /// Code 1034: UTF-16 code units, as Windows' `Char16Array`.
    Char16Array(Vec<u16>),
    /// Code 1035.
    BooleanArray(Vec<bool>),
    /// Code 1036.
    StringArray(Vec<String>),
    /// Code 1038.
    DateTimeArray(Vec<DateTime>),
    /// Code 1039.
    TimeSpanArray(Vec<TimeSpan>),
    /// Code 1040.
    GuidArray(Vec<Guid>),
    /// Code 1041.
    PointArray(Vec<Point>),
    /// Code 1042.
    SizeArray(Vec<Size>),
    /// Code 1043.
    RectArray(Vec<Rect>),
    /// Code `0x8000`: a nested [`ValueSet`] (appipc's code; see [`PropertyType::ValueSet`]).
    ValueSet(ValueSet),
}

impl PropertyValue {
    /// The kind of this value. A nested set reports [`PropertyType::ValueSet`].
    pub const fn property_type(&self) -> PropertyType {
        use PropertyValue as V;
        match self {
            V::Empty => PropertyType::Empty,
            V::UInt8(_) => PropertyType::UInt8,
            V::Int16(_) => PropertyType::Int16,
            V::UInt16(_) => PropertyType::UInt16,
            V::Int32(_) => PropertyType::Int32,
            V::UInt32(_) => PropertyType::UInt32,
            V::Int64(_) => PropertyType::Int64,
            V::UInt64(_) => PropertyType::UInt64,
            V::Single(_) => PropertyType::Single,
            V::Double(_) => PropertyType::Double,
            V::Char16(_) => PropertyType::Char16,
            V::Boolean(_) => PropertyType::Boolean,
            V::String(_) => PropertyType::String,
            V::DateTime(_) => PropertyType::DateTime,
            V::TimeSpan(_) => PropertyType::TimeSpan,
            V::Guid(_) => PropertyType::Guid,
            V::Point(_) => PropertyType::Point,
            V::Size(_) => PropertyType::Size,
            V::Rect(_) => PropertyType::Rect,
            V::UInt8Array(_) => PropertyType::UInt8Array,
            V::Int16Array(_) => PropertyType::Int16Array,
            V::UInt16Array(_) => PropertyType::UInt16Array,
            V::Int32Array(_) => PropertyType::Int32Array,
            V::UInt32Array(_) => PropertyType::UInt32Array,
            V::Int64Array(_) => PropertyType::Int64Array,
            V::UInt64Array(_) => PropertyType::UInt64Array,
            V::SingleArray(_) => PropertyType::SingleArray,
            V::DoubleArray(_) => PropertyType::DoubleArray,
            V::Char16Array(_) => PropertyType::Char16Array,
            V::BooleanArray(_) => PropertyType::BooleanArray,
            V::StringArray(_) => PropertyType::StringArray,
            V::DateTimeArray(_) => PropertyType::DateTimeArray,
            V::TimeSpanArray(_) => PropertyType::TimeSpanArray,
            V::GuidArray(_) => PropertyType::GuidArray,
            V::PointArray(_) => PropertyType::PointArray,
            V::SizeArray(_) => PropertyType::SizeArray,
            V::RectArray(_) => PropertyType::RectArray,
            V::ValueSet(_) => PropertyType::ValueSet,
        }
    }

    /// Whether this is [`PropertyValue::Empty`].
    pub const fn is_empty(&self) -> bool {
        matches!(self, PropertyValue::Empty)
    }

    /// Whether this is one of the array kinds.
    pub const fn is_array(&self) -> bool {
        self.property_type().is_array()
    }

    /// The text if this is a `String`.
    pub fn as_string(&self) -> Option<&str> {
        match self {
            PropertyValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The nested set if this is a `ValueSet`.
    pub fn as_value_set(&self) -> Option<&ValueSet> {
        match self {
            PropertyValue::ValueSet(v) => Some(v),
            _ => None,
        }
    }

    /// The nested set, mutably, if this is a `ValueSet`.
    pub fn as_value_set_mut(&mut self) -> Option<&mut ValueSet> {
        match self {
            PropertyValue::ValueSet(v) => Some(v),
            _ => None,
        }
    }
}

macro_rules! scalar_accessors {
    ($($fn_name:ident => $variant:ident: $t:ty,)*) => {
        impl PropertyValue {
            $(
                #[doc = concat!("The value if this is a `", stringify!($variant),
                    "`, otherwise `None` (no conversion between kinds).")]
                pub const fn $fn_name(&self) -> Option<$t> {
                    match self {
                        PropertyValue::$variant(x) => Some(*x),
                        _ => None,
                    }
                }
            )*
        }
    };
}

scalar_accessors! {
    as_uint8 => UInt8: u8,
    as_int16 => Int16: i16,
    as_uint16 => UInt16: u16,
    as_int32 => Int32: i32,
    as_uint32 => UInt32: u32,
    as_int64 => Int64: i64,
    as_uint64 => UInt64: u64,
    as_single => Single: f32,
    as_double => Double: f64,
    as_char16 => Char16: u16,
    as_boolean => Boolean: bool,
    as_date_time => DateTime: DateTime,
    as_time_span => TimeSpan: TimeSpan,
    as_guid => Guid: Guid,
    as_point => Point: Point,
    as_size => Size: Size,
    as_rect => Rect: Rect,
}

macro_rules! array_accessors {
    ($($fn_name:ident => $variant:ident: $t:ty,)*) => {
        impl PropertyValue {
            $(
                #[doc = concat!("The elements if this is a `", stringify!($variant),
                    "`, otherwise `None`.")]
                pub fn $fn_name(&self) -> Option<&[$t]> {
                    match self {
                        PropertyValue::$variant(x) => Some(x),
                        _ => None,
                    }
                }
            )*
        }
    };
}

array_accessors! {
    as_uint8_array => UInt8Array: u8,
    as_int16_array => Int16Array: i16,
    as_uint16_array => UInt16Array: u16,
    as_int32_array => Int32Array: i32,
    as_uint32_array => UInt32Array: u32,
    as_int64_array => Int64Array: i64,
    as_uint64_array => UInt64Array: u64,
    as_single_array => SingleArray: f32,
    as_double_array => DoubleArray: f64,
    as_char16_array => Char16Array: u16,
    as_boolean_array => BooleanArray: bool,
    as_string_array => StringArray: String,
    as_date_time_array => DateTimeArray: DateTime,
    as_time_span_array => TimeSpanArray: TimeSpan,
    as_guid_array => GuidArray: Guid,
    as_point_array => PointArray: Point,
    as_size_array => SizeArray: Size,
    as_rect_array => RectArray: Rect,
}

macro_rules! from_impls {
    ($($t:ty => $variant:ident,)*) => {
        $(
            impl From<$t> for PropertyValue {
                fn from(v: $t) -> Self {
                    PropertyValue::$variant(v)
                }
            }
        )*
    };
}

from_impls! {
    u8 => UInt8,
    i16 => Int16,
    u16 => UInt16,
    i32 => Int32,
    u32 => UInt32,
    i64 => Int64,
    u64 => UInt64,
    f32 => Single,
    f64 => Double,
    bool => Boolean,
    String => String,
    DateTime => DateTime,
    TimeSpan => TimeSpan,
    Guid => Guid,
    Point => Point,
    Size => Size,
    Rect => Rect,
    Vec<u8> => UInt8Array,
    Vec<i16> => Int16Array,
    Vec<u16> => UInt16Array,
    Vec<i32> => Int32Array,
    Vec<u32> => UInt32Array,
    Vec<i64> => Int64Array,
    Vec<u64> => UInt64Array,
    Vec<f32> => SingleArray,
    Vec<f64> => DoubleArray,
    Vec<bool> => BooleanArray,
    Vec<String> => StringArray,
    Vec<DateTime> => DateTimeArray,
    Vec<TimeSpan> => TimeSpanArray,
    Vec<Guid> => GuidArray,
    Vec<Point> => PointArray,
    Vec<Size> => SizeArray,
    Vec<Rect> => RectArray,
    ValueSet => ValueSet,
}

impl From<&str> for PropertyValue {
    fn from(v: &str) -> Self {
        PropertyValue::String(v.to_owned())
    }
}

impl From<&String> for PropertyValue {
    fn from(v: &String) -> Self {
        PropertyValue::String(v.clone())
    }
}

impl From<&[u8]> for PropertyValue {
    fn from(v: &[u8]) -> Self {
        PropertyValue::UInt8Array(v.to_vec())
    }
}

impl<const N: usize> From<[u8; N]> for PropertyValue {
    fn from(v: [u8; N]) -> Self {
        PropertyValue::UInt8Array(v.to_vec())
    }
}

impl From<Vec<&str>> for PropertyValue {
    fn from(v: Vec<&str>) -> Self {
        PropertyValue::StringArray(v.into_iter().map(str::to_owned).collect())
    }
}

impl From<&[&str]> for PropertyValue {
    fn from(v: &[&str]) -> Self {
        PropertyValue::StringArray(v.iter().map(|s| (*s).to_owned()).collect())
    }
}

/// `None` is [`PropertyValue::Empty`], as a null reference is on Windows.
impl<T: Into<PropertyValue>> From<Option<T>> for PropertyValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(PropertyValue::Empty, Into::into)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn property_type_codes_are_windows_values() {
        let expected: &[(PropertyType, u16)] = &[
            (PropertyType::Empty, 0),
            (PropertyType::UInt8, 1),
            (PropertyType::Int16, 2),
            (PropertyType::UInt16, 3),
            (PropertyType::Int32, 4),
            (PropertyType::UInt32, 5),
            (PropertyType::Int64, 6),
            (PropertyType::UInt64, 7),
            (PropertyType::Single, 8),
            (PropertyType::Double, 9),
            (PropertyType::Char16, 10),
            (PropertyType::Boolean, 11),
            (PropertyType::String, 12),
            (PropertyType::Inspectable, 13),
            (PropertyType::DateTime, 14),
            (PropertyType::TimeSpan, 15),
            (PropertyType::Guid, 16),
            (PropertyType::Point, 17),
            (PropertyType::Size, 18),
            (PropertyType::Rect, 19),
            (PropertyType::OtherType, 20),
            (PropertyType::UInt8Array, 1025),
            (PropertyType::StringArray, 1036),
            (PropertyType::InspectableArray, 1037),
            (PropertyType::DateTimeArray, 1038),
            (PropertyType::RectArray, 1043),
            (PropertyType::OtherTypeArray, 1044),
            (PropertyType::ValueSet, 0x8000),
        ];
        for &(t, code) in expected {
            assert_eq!(t.as_u16(), code, "{t}");
            assert_eq!(PropertyType::from_u16(code), Some(t));
        }
        assert_eq!(PropertyType::ALL.len(), 21 + 20 + 1);
        for code in [21, 1024, 1045, 0x7fff, 0x8001, u16::MAX] {
            assert_eq!(PropertyType::from_u16(code), None, "{code}");
        }
    }

    #[test]
    fn array_types_are_scalar_plus_1024() {
        for &t in PropertyType::ALL {
            match t.element_type() {
                Some(e) => {
                    assert!(t.is_array());
                    assert_eq!(e.as_u16() + 1024, t.as_u16());
                    assert_eq!(t.name(), format!("{}Array", e.name()));
                }
                None => assert!(!t.is_array(), "{t}"),
            }
        }
        assert!(!PropertyType::ValueSet.is_array());
    }

    #[test]
    fn only_four_types_cannot_cross_a_process() {
        let refused: Vec<_> = PropertyType::ALL
            .iter()
            .filter(|t| !t.can_cross_process())
            .map(|t| t.as_u16())
            .collect();
        assert_eq!(refused, [13, 20, 1037, 1044]);
    }

    #[test]
    fn conversions_pick_the_windows_kind() {
        let cases: Vec<(PropertyValue, PropertyType)> = vec![
            (7_u8.into(), PropertyType::UInt8),
            (7_i16.into(), PropertyType::Int16),
            (7_u16.into(), PropertyType::UInt16),
            (7_i32.into(), PropertyType::Int32),
            (7_u32.into(), PropertyType::UInt32),
            (7_i64.into(), PropertyType::Int64),
            (7_u64.into(), PropertyType::UInt64),
            (7_f32.into(), PropertyType::Single),
            (7_f64.into(), PropertyType::Double),
            (true.into(), PropertyType::Boolean),
            ("x".into(), PropertyType::String),
            (String::from("x").into(), PropertyType::String),
            (vec![1_u8].into(), PropertyType::UInt8Array),
            ((&[1_u8][..]).into(), PropertyType::UInt8Array),
            ([1_u8, 2].into(), PropertyType::UInt8Array),
            (vec!["a"].into(), PropertyType::StringArray),
            (vec![1.5_f32].into(), PropertyType::SingleArray),
            (Guid::NULL.into(), PropertyType::Guid),
            (ValueSet::new().into(), PropertyType::ValueSet),
            (None::<i32>.into(), PropertyType::Empty),
            (Some(3_i32).into(), PropertyType::Int32),
            (PropertyValue::Char16(0xd800), PropertyType::Char16),
        ];
        for (v, t) in cases {
            assert_eq!(v.property_type(), t, "{v:?}");
        }
    }

    #[test]
    fn accessors_do_not_coerce() {
        let v = PropertyValue::from(5_i32);
        assert_eq!(v.as_int32(), Some(5));
        assert_eq!(v.as_int64(), None);
        assert_eq!(v.as_uint32(), None);
        assert_eq!(PropertyValue::Char16(65).as_uint16(), None);
        assert_eq!(PropertyValue::from("a").as_string(), Some("a"));
        assert_eq!(PropertyValue::from(vec![1_u8, 2]).as_uint8_array(), Some(&[1_u8, 2][..]));
        assert!(PropertyValue::Empty.is_empty());
        assert!(PropertyValue::from(vec![1_i16]).is_array());
    }
}
