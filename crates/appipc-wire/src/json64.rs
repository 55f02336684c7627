//! The JSON form of the protocol types is their `serde::Serialize` derive (`appipc … --json`
//! prints it; `docs/cli.md` describes it): field names as in `docs/wire.md`, enumerations as
//! lower-case names. An integer is a JSON number, except where the value may exceed 2^53 (the
//! largest integer a JavaScript number, or any IEEE double, holds exactly): there it is a
//! decimal string, always, so that a reader need not guess. Which fields those are is said in
//! their documentation; today the sizes of file mappings (a mapping of a sparse file may be
//! larger), while ids, times (seconds or milliseconds since 1970), pids and counts stay numbers.

/// `#[serde(serialize_with = "crate::json64::string")]`: the integer as a decimal string.
pub fn string<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}
