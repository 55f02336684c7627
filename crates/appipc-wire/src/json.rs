//! The JSON mapping of [`ValueSet`] that `appipc app-service call` reads and prints
//! (`docs/wire.md`, "JSON mapping of ValueSet").
//!
//! Output is always *typed*: every value is `{"<PropertyType>": payload}`, so the exact
//! type survives (`{"Int16": 3}`, `{"Guid": "…"}`, `{"ValueSet": {…}}`). Input accepts the
//! typed form and plain JSON, which maps as: string → String, true/false → Boolean, null →
//! Empty, integer → Int32 (Int64 or UInt64 when it does not fit), other number → Double,
//! object → nested ValueSet, array of one plain kind → that kind's array.
//!
//! ```
//! use appipc_wire::json::{value_set_from_json, value_set_to_json};
//! use appipc_wire::PropertyValue;
//! let v: serde_json::Value = serde_json::from_str(r#"{"n": 5, "w": {"Int16": 3}}"#).unwrap();
//! let set = value_set_from_json(&v).unwrap();
//! assert_eq!(set.get("w"), Some(&PropertyValue::Int16(3)));
//! assert_eq!(value_set_to_json(&set), serde_json::json!({"n": {"Int32": 5}, "w": {"Int16": 3}}));
//! ```
//!
//! Reading typed output back gives the same set, except that a NaN loses its payload bits
//! (JSON has one `"NaN"`). This module does not limit nesting: `serde_json` stops at 128
//! levels, and a receiver refuses a set nested deeper than its
//! [`DecodeLimits`](crate::DecodeLimits).

use crate::{DateTime, Guid, Point, PropertyValue, Rect, Size, TimeSpan, ValueSet};
use serde_json::{Map, Number, Value, json};

/// JSON that is not a ValueSet: what was wrong, under which key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct JsonError {
    message: String,
}

type Result<T> = std::result::Result<T, JsonError>;

/// `anyhow!`-like: a [`JsonError`] from a format string.
macro_rules! error {
    ($($t:tt)*) => {
        JsonError { message: format!($($t)*) }
    };
}

/// `bail!`-like: returns a [`JsonError`] from a format string.
macro_rules! bail {
    ($($t:tt)*) => {
        return Err(error!($($t)*))
    };
}

/// Reads a JSON object (typed or plain values) as a ValueSet.
pub fn value_set_from_json(v: &Value) -> Result<ValueSet> {
    let Value::Object(map) = v else { bail!("a ValueSet is a JSON object, not {v}") };
    let mut set = ValueSet::new();
    for (k, v) in map {
        set.insert(k.clone(), value_from_json(v).map_err(|e| error!("key {k:?}: {e}"))?);
    }
    Ok(set)
}

fn float(v: &Value) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| error!("{n} is not a number")),
        Value::String(s) if s == "NaN" => Ok(f64::NAN),
        Value::String(s) if s == "Infinity" => Ok(f64::INFINITY),
        Value::String(s) if s == "-Infinity" => Ok(f64::NEG_INFINITY),
        _ => bail!("{v} is not a number"),
    }
}

fn int<T: TryFrom<i128>>(v: &Value) -> Result<T> {
    let n = match v {
        Value::Number(n) => n
            .as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .ok_or_else(|| error!("{n} is not an integer"))?,
        _ => bail!("{v} is not an integer"),
    };
    T::try_from(n).map_err(|_| error!("{n} is out of range for {}", std::any::type_name::<T>()))
}

fn floats<const N: usize>(v: &Value) -> Result<[f32; N]> {
    let Value::Array(a) = v else { bail!("expected an array of {N} numbers") };
    if a.len() != N {
        bail!("expected {N} numbers, got {}", a.len());
    }
    let mut out = [0f32; N];
    for (o, x) in out.iter_mut().zip(a) {
        *o = float(x)? as f32;
    }
    Ok(out)
}

fn array<T>(v: &Value, f: impl Fn(&Value) -> Result<T>) -> Result<Vec<T>> {
    let Value::Array(a) = v else { bail!("expected an array") };
    a.iter().map(f).collect()
}

fn guid(v: &Value) -> Result<Guid> {
    v.as_str()
        .ok_or_else(|| error!("a Guid is a string"))?
        .parse()
        .map_err(|_| error!("{v} is not a GUID"))
}

fn point(v: &Value) -> Result<Point> {
    let [x, y] = floats::<2>(v)?;
    Ok(Point::new(x, y))
}

fn size(v: &Value) -> Result<Size> {
    let [width, height] = floats::<2>(v)?;
    Ok(Size { width, height })
}

fn rect(v: &Value) -> Result<Rect> {
    let [x, y, width, height] = floats::<4>(v)?;
    Ok(Rect { x, y, width, height })
}

fn typed(kind: &str, p: &Value) -> Result<Option<PropertyValue>> {
    use PropertyValue as P;
    Ok(Some(match kind {
        "Empty" => P::Empty,
        "UInt8" => P::UInt8(int(p)?),
        "Int16" => P::Int16(int(p)?),
        "UInt16" => P::UInt16(int(p)?),
        "Int32" => P::Int32(int(p)?),
        "UInt32" => P::UInt32(int(p)?),
        "Int64" => P::Int64(int(p)?),
        "UInt64" => P::UInt64(int(p)?),
        "Single" => P::Single(float(p)? as f32),
        "Double" => P::Double(float(p)?),
        "Char16" => P::Char16(int(p)?),
        "Boolean" => P::Boolean(p.as_bool().ok_or_else(|| error!("{p} is not a boolean"))?),
        "String" => P::String(p.as_str().ok_or_else(|| error!("{p} is not a string"))?.to_owned()),
        "DateTime" => P::DateTime(DateTime::from_universal_time(int(p)?)),
        "TimeSpan" => P::TimeSpan(TimeSpan::from_ticks(int(p)?)),
        "Guid" => P::Guid(guid(p)?),
        "Point" => P::Point(point(p)?),
        "Size" => P::Size(size(p)?),
        "Rect" => P::Rect(rect(p)?),
        "UInt8Array" => P::UInt8Array(array(p, int)?),
        "Int16Array" => P::Int16Array(array(p, int)?),
        "UInt16Array" => P::UInt16Array(array(p, int)?),
        "Int32Array" => P::Int32Array(array(p, int)?),
        "UInt32Array" => P::UInt32Array(array(p, int)?),
        "Int64Array" => P::Int64Array(array(p, int)?),
        "UInt64Array" => P::UInt64Array(array(p, int)?),
        "SingleArray" => P::SingleArray(array(p, |x| float(x).map(|f| f as f32))?),
        "DoubleArray" => P::DoubleArray(array(p, float)?),
        "Char16Array" => P::Char16Array(array(p, int)?),
        "BooleanArray" => P::BooleanArray(array(p, |x| {
            x.as_bool().ok_or_else(|| error!("{x} is not a boolean"))
        })?),
        "StringArray" => P::StringArray(array(p, |x| {
            x.as_str().map(str::to_owned).ok_or_else(|| error!("{x} is not a string"))
        })?),
        "DateTimeArray" => {
            P::DateTimeArray(array(p, |x| int(x).map(DateTime::from_universal_time))?)
        }
        "TimeSpanArray" => P::TimeSpanArray(array(p, |x| int(x).map(TimeSpan::from_ticks))?),
        "GuidArray" => P::GuidArray(array(p, guid)?),
        "PointArray" => P::PointArray(array(p, point)?),
        "SizeArray" => P::SizeArray(array(p, size)?),
        "RectArray" => P::RectArray(array(p, rect)?),
        "ValueSet" => P::ValueSet(value_set_from_json(p)?),
        "Inspectable" | "InspectableArray" | "OtherType" | "OtherTypeArray" => {
            bail!("{kind} cannot cross a process boundary")
        }
        _ => return Ok(None),
    }))
}

fn value_from_json(v: &Value) -> Result<PropertyValue> {
    Ok(match v {
        Value::Null => PropertyValue::Empty,
        Value::Bool(b) => PropertyValue::Boolean(*b),
        Value::String(s) => PropertyValue::String(s.clone()),
        Value::Number(n) => plain_number(n),
        Value::Object(m) => {
            if m.len() == 1 {
                let (k, p) = m.iter().next().expect("one entry");
                if let Some(t) = typed(k, p)? {
                    return Ok(t);
                }
            }
            PropertyValue::ValueSet(value_set_from_json(v)?)
        }
        Value::Array(a) => {
            if a.iter().all(Value::is_string) {
                PropertyValue::StringArray(
                    a.iter().filter_map(|x| x.as_str().map(str::to_owned)).collect(),
                )
            } else if a.iter().all(Value::is_boolean) {
                PropertyValue::BooleanArray(a.iter().filter_map(Value::as_bool).collect())
            } else if a.iter().all(|x| x.as_i64().is_some_and(|i| i32::try_from(i).is_ok())) {
                PropertyValue::Int32Array(
                    a.iter().filter_map(|x| x.as_i64().map(|i| i as i32)).collect(),
                )
            } else if a.iter().all(|x| x.as_i64().is_some()) {
                PropertyValue::Int64Array(a.iter().filter_map(Value::as_i64).collect())
            } else if a.iter().all(Value::is_number) {
                PropertyValue::DoubleArray(a.iter().filter_map(Value::as_f64).collect())
            } else {
                bail!(
                    "an array must hold one kind of plain value; use the typed form, e.g. {{\"GuidArray\": [...]}}"
                )
            }
        }
    })
}

fn plain_number(n: &Number) -> PropertyValue {
    if let Some(i) = n.as_i64() {
        match i32::try_from(i) {
            Ok(x) => PropertyValue::Int32(x),
            Err(_) => PropertyValue::Int64(i),
        }
    } else if let Some(u) = n.as_u64() {
        PropertyValue::UInt64(u)
    } else {
        PropertyValue::Double(n.as_f64().unwrap_or(f64::NAN))
    }
}

fn f(x: f64) -> Value {
    if x.is_nan() {
        json!("NaN")
    } else if x.is_infinite() {
        json!(if x > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(x)
    }
}

fn g(x: &Guid) -> Value {
    json!(x.to_string())
}

/// The typed JSON form of a ValueSet: `{"key": {"<PropertyType>": payload}, …}`.
pub fn value_set_to_json(set: &ValueSet) -> Value {
    let mut m = Map::new();
    for (k, v) in set.iter() {
        m.insert(k.to_owned(), value_to_json(v));
    }
    Value::Object(m)
}

fn value_to_json(v: &PropertyValue) -> Value {
    use PropertyValue as P;
    let (kind, payload) = match v {
        P::Empty => ("Empty", Value::Null),
        P::UInt8(x) => ("UInt8", json!(x)),
        P::Int16(x) => ("Int16", json!(x)),
        P::UInt16(x) => ("UInt16", json!(x)),
        P::Int32(x) => ("Int32", json!(x)),
        P::UInt32(x) => ("UInt32", json!(x)),
        P::Int64(x) => ("Int64", json!(x)),
        P::UInt64(x) => ("UInt64", json!(x)),
        P::Single(x) => ("Single", f(f64::from(*x))),
        P::Double(x) => ("Double", f(*x)),
        P::Char16(x) => ("Char16", json!(x)),
        P::Boolean(x) => ("Boolean", json!(x)),
        P::String(x) => ("String", json!(x)),
        P::DateTime(x) => ("DateTime", json!(x.universal_time)),
        P::TimeSpan(x) => ("TimeSpan", json!(x.duration)),
        P::Guid(x) => ("Guid", g(x)),
        P::Point(p) => ("Point", json!([f(f64::from(p.x)), f(f64::from(p.y))])),
        P::Size(s) => ("Size", json!([f(f64::from(s.width)), f(f64::from(s.height))])),
        P::Rect(r) => (
            "Rect",
            json!([
                f(f64::from(r.x)),
                f(f64::from(r.y)),
                f(f64::from(r.width)),
                f(f64::from(r.height))
            ]),
        ),
        P::UInt8Array(a) => ("UInt8Array", json!(a)),
        P::Int16Array(a) => ("Int16Array", json!(a)),
        P::UInt16Array(a) => ("UInt16Array", json!(a)),
        P::Int32Array(a) => ("Int32Array", json!(a)),
        P::UInt32Array(a) => ("UInt32Array", json!(a)),
        P::Int64Array(a) => ("Int64Array", json!(a)),
        P::UInt64Array(a) => ("UInt64Array", json!(a)),
        P::SingleArray(a) => {
            ("SingleArray", Value::Array(a.iter().map(|x| f(f64::from(*x))).collect()))
        }
        P::DoubleArray(a) => ("DoubleArray", Value::Array(a.iter().map(|x| f(*x)).collect())),
        P::Char16Array(a) => ("Char16Array", json!(a)),
        P::BooleanArray(a) => ("BooleanArray", json!(a)),
        P::StringArray(a) => ("StringArray", json!(a)),
        P::DateTimeArray(a) => {
            ("DateTimeArray", json!(a.iter().map(|d| d.universal_time).collect::<Vec<_>>()))
        }
        P::TimeSpanArray(a) => {
            ("TimeSpanArray", json!(a.iter().map(|d| d.duration).collect::<Vec<_>>()))
        }
        P::GuidArray(a) => ("GuidArray", Value::Array(a.iter().map(g).collect())),
        P::PointArray(a) => (
            "PointArray",
            Value::Array(a.iter().map(|p| json!([f(f64::from(p.x)), f(f64::from(p.y))])).collect()),
        ),
        P::SizeArray(a) => (
            "SizeArray",
            Value::Array(
                a.iter().map(|s| json!([f(f64::from(s.width)), f(f64::from(s.height))])).collect(),
            ),
        ),
        P::RectArray(a) => (
            "RectArray",
            Value::Array(
                a.iter()
                    .map(|r| {
                        json!([
                            f(f64::from(r.x)),
                            f(f64::from(r.y)),
                            f(f64::from(r.width)),
                            f(f64::from(r.height))
                        ])
                    })
                    .collect(),
            ),
        ),
        P::ValueSet(s) => ("ValueSet", value_set_to_json(s)),
    };
    let mut m = Map::new();
    m.insert(kind.to_owned(), payload);
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_typed_input() {
        let v: Value = serde_json::from_str(
            r#"{"s":"x","b":true,"n":null,"i":5,"big":5000000000,"d":1.5,"o":{"a":1},
                "u16":{"UInt16":7},"g":{"Guid":"6b29fc40-ca47-1067-b31d-00dd010662da"},
                "arr":[1,2],"strs":["a"],"p":{"Point":[1,2]},"vs":{"ValueSet":{"String":1}}}"#,
        )
        .unwrap();
        let s = value_set_from_json(&v).unwrap();
        assert_eq!(s.get("s"), Some(&PropertyValue::String("x".into())));
        assert_eq!(s.get("n"), Some(&PropertyValue::Empty));
        assert_eq!(s.get("i"), Some(&PropertyValue::Int32(5)));
        assert_eq!(s.get("big"), Some(&PropertyValue::Int64(5_000_000_000)));
        assert_eq!(s.get("d"), Some(&PropertyValue::Double(1.5)));
        assert_eq!(s.get("u16"), Some(&PropertyValue::UInt16(7)));
        assert_eq!(s.get("arr"), Some(&PropertyValue::Int32Array(vec![1, 2])));
        assert!(matches!(s.get("o"), Some(PropertyValue::ValueSet(_))));
        // {"ValueSet": …} forces a nested set even when its only key names a type.
        let PropertyValue::ValueSet(inner) = s.get("vs").unwrap() else { panic!() };
        assert_eq!(inner.get("String"), Some(&PropertyValue::Int32(1)));
        // Typed output reads back to the same set.
        assert_eq!(value_set_from_json(&value_set_to_json(&s)).unwrap(), s);
    }

    #[test]
    fn printed_doubles_read_back_exactly() {
        // The json_valueset fuzz target's find: without serde_json's float_roundtrip,
        // "5e+35" (as the typed output prints 5e35) read back as 4.9999999999999995e35.
        for x in
            [5e35, 0.1, 1.0 / 3.0, f64::MAX, f64::MIN_POSITIVE, 5e-324, -2.2250738585072014e-308]
        {
            let mut s = ValueSet::new();
            s.insert("x", PropertyValue::Double(x));
            let text = value_set_to_json(&s).to_string();
            let back = value_set_from_json(&serde_json::from_str(&text).unwrap()).unwrap();
            assert_eq!(back.get("x"), Some(&PropertyValue::Double(x)), "{text}");
        }
    }

    #[test]
    fn errors_name_the_key() {
        let v: Value = serde_json::from_str(r#"{"x":{"UInt8":300}}"#).unwrap();
        let e = value_set_from_json(&v).unwrap_err().to_string();
        assert!(e.contains("\"x\"") && e.contains("300"), "{e}");
        assert!(value_set_from_json(&json!([1])).is_err());
    }
}
