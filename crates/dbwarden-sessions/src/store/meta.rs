//! The reserved data key that lets a stateless store tell what a save
//! changed: written into the record on load, stripped and diffed on save.

use std::collections::HashMap;

use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

/// Data key the stores reserve for their own bookkeeping (see the module
/// docs of [`crate::store`]). It is added on load, removed before anything
/// is written, and must not be used by applications.
pub const RESERVED_KEY: &str = "__dbwarden";

/// What the store knew about a session when it loaded it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct LoadMeta {
    /// The version read.
    pub(crate) v: i64,
    /// The last write or touch, epoch ms.
    pub(crate) w: i64,
    /// The stored expiry, epoch ms.
    pub(crate) e: i64,
    /// The absolute expiry, epoch ms.
    pub(crate) a: i64,
    /// The user id read.
    #[serde(default)]
    pub(crate) u: Option<String>,
    /// A 64-bit hash of each key's value.
    pub(crate) h: HashMap<String, u64>,
}

impl LoadMeta {
    /// Reads the meta entry of `data`, if there is a well-formed one.
    pub(crate) fn of(data: &HashMap<String, Value>) -> Option<LoadMeta> {
        data.get(RESERVED_KEY).and_then(|v| LoadMeta::deserialize(v).ok())
    }

    /// Puts this meta entry into `data`.
    pub(crate) fn attach(self, data: &mut HashMap<String, Value>) {
        if let Ok(value) = serde_json::to_value(self) {
            data.insert(RESERVED_KEY.to_owned(), value);
        }
    }
}

/// Serializes a data map without the reserved key.
pub(crate) struct WithoutMeta<'a>(pub(crate) &'a HashMap<String, Value>);

impl Serialize for WithoutMeta<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let len = self.0.len() - usize::from(self.0.contains_key(RESERVED_KEY));
        let mut map = serializer.serialize_map(Some(len))?;
        for (key, value) in self.0.iter().filter(|(k, _)| k.as_str() != RESERVED_KEY) {
            map.serialize_entry(key, value)?;
        }
        map.end()
    }
}

/// A 64-bit hash of a value's JSON form, streamed into the hasher (no
/// buffer per value).
pub(crate) fn value_hash(value: &Value) -> u64 {
    struct HashWriter(xxhash_rust::xxh3::Xxh3);
    impl std::io::Write for HashWriter {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.update(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(xxhash_rust::xxh3::Xxh3::new());
    // Writing a `Value` into an infallible writer cannot fail.
    let _ = serde_json::to_writer(&mut writer, value);
    writer.0.digest()
}

/// Hashes of every key of `data` but the reserved one.
pub(crate) fn hashes(data: &HashMap<String, Value>) -> HashMap<String, u64> {
    data.iter().filter(|(k, _)| k.as_str() != RESERVED_KEY).map(|(k, v)| (k.clone(), value_hash(v))).collect()
}

/// What a request changed in a session's data.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes {
    /// Keys set to a new value (added or changed).
    pub(crate) set: Vec<(String, Value)>,
    /// Keys removed.
    pub(crate) removed: Vec<String>,
}

impl Changes {
    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// Applies these changes on top of `base` (another request's newer data).
    pub(crate) fn apply(&self, base: &mut HashMap<String, Value>) {
        for key in &self.removed {
            base.remove(key);
        }
        for (key, value) in &self.set {
            base.insert(key.clone(), value.clone());
        }
        base.remove(RESERVED_KEY);
    }
}

/// The keys of `data` whose value differs from what was loaded, and the
/// loaded keys that are gone.
pub(crate) fn diff(data: &HashMap<String, Value>, meta: &LoadMeta) -> Changes {
    let mut changes = Changes::default();
    for (key, value) in data.iter().filter(|(k, _)| k.as_str() != RESERVED_KEY) {
        if meta.h.get(key) != Some(&value_hash(value)) {
            changes.set.push((key.clone(), value.clone()));
        }
    }
    for key in meta.h.keys() {
        if !data.contains_key(key) {
            changes.removed.push(key.clone());
        }
    }
    changes
}

/// The user id held under `key` in `data`: a string as is, a number in its
/// decimal form; anything else (or an empty string) is no user.
pub(crate) fn user_id_of(data: &HashMap<String, Value>, key: Option<&str>) -> Option<String> {
    match data.get(key?)? {
        Value::String(s) if !s.is_empty() => Some(s.chars().take(255).collect()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(pairs: &[(&str, Value)]) -> HashMap<String, Value> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    #[test]
    fn diff_finds_set_and_removed_keys_only() {
        let loaded = map(&[("a", json!(1)), ("b", json!({"x": [1, 2]})), ("c", json!("s"))]);
        let meta = LoadMeta { v: 3, h: hashes(&loaded), ..LoadMeta::default() };
        let mut now = loaded.clone();
        meta.clone().attach(&mut now);
        assert!(diff(&now, &meta).is_empty(), "unchanged data must diff empty");

        now.insert("a".into(), json!(2));
        now.insert("d".into(), json!(null));
        now.remove("c");
        let changes = diff(&now, &meta);
        let mut set: Vec<&str> = changes.set.iter().map(|(k, _)| k.as_str()).collect();
        set.sort_unstable();
        assert_eq!(set, ["a", "d"]);
        assert_eq!(changes.removed, ["c"]);

        let mut other = map(&[("a", json!(1)), ("c", json!("s")), ("e", json!(5))]);
        changes.apply(&mut other);
        assert_eq!(other, map(&[("a", json!(2)), ("d", json!(null)), ("e", json!(5))]));
    }

    #[test]
    fn meta_round_trips_and_is_never_serialized() {
        let mut data = map(&[("k", json!(true))]);
        let meta = LoadMeta { v: 9, w: 1, e: 2, a: 3, u: Some("u".into()), h: hashes(&data) };
        meta.clone().attach(&mut data);
        assert_eq!(LoadMeta::of(&data), Some(meta));
        let encoded = serde_json::to_string(&WithoutMeta(&data)).expect("encode");
        assert_eq!(encoded, r#"{"k":true}"#);
    }

    #[test]
    fn user_ids_come_from_strings_and_numbers() {
        let data = map(&[("uid", json!(42)), ("name", json!("alice")), ("bad", json!([1]))]);
        assert_eq!(user_id_of(&data, Some("uid")).as_deref(), Some("42"));
        assert_eq!(user_id_of(&data, Some("name")).as_deref(), Some("alice"));
        assert_eq!(user_id_of(&data, Some("bad")), None);
        assert_eq!(user_id_of(&data, None), None);
    }
}
