//! The reserved data key that lets a stateless store tell what a save
//! changed: written into the record on load, stripped and diffed on save.

use std::collections::HashMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

/// Data key the stores reserve for their own bookkeeping (see the module
/// docs of [`crate::store`]). It is added on load, removed before anything
/// is written, and must not be used by applications.
pub const RESERVED_KEY: &str = "__dbwarden";

/// What the store knew about a session when it loaded (or created) it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct LoadState<'a> {
    /// The version read.
    pub(crate) v: i64,
    /// The last write or touch, epoch ms.
    pub(crate) w: i64,
    /// The stored expiry, epoch ms.
    pub(crate) e: i64,
    /// The absolute expiry, epoch ms.
    pub(crate) a: i64,
    /// The user id read.
    pub(crate) u: Option<&'a str>,
}

/// Puts the meta entry for `state` into `data`: the state and a 64-bit
/// fingerprint of every key's value.
///
/// Shape (an object, so `["v"]` and `["w"]` read naturally in tests):
/// `{"v": version, "w": last write, "h": [expiry, absolute expiry, user id
/// length or null, then per key: key length, fingerprint], "k": user id and
/// keys concatenated}`. One string for all key names and plain numbers for
/// the rest keep a load to a handful of allocations, however many keys the
/// session has.
pub(crate) fn attach(data: &mut HashMap<String, Value>, state: LoadState<'_>) {
    let user = state.u.unwrap_or("");
    let mut names = String::with_capacity(user.len() + data.keys().map(String::len).sum::<usize>());
    names.push_str(user);
    let mut numbers = Vec::with_capacity(3 + 2 * data.len());
    numbers.push(Value::from(state.e));
    numbers.push(Value::from(state.a));
    numbers.push(state.u.map_or(Value::Null, |u| Value::from(u.len())));
    let mut scratch = Vec::with_capacity(256);
    // A stored reserved key is skipped here and replaced below.
    for (key, value) in data.iter().filter(|(k, _)| k.as_str() != RESERVED_KEY) {
        names.push_str(key);
        numbers.push(Value::from(key.len()));
        numbers.push(Value::from(fingerprint(value, &mut scratch)));
    }
    let mut entry = Map::new();
    entry.insert("v".to_owned(), Value::from(state.v));
    entry.insert("w".to_owned(), Value::from(state.w));
    entry.insert("h".to_owned(), Value::Array(numbers));
    entry.insert("k".to_owned(), Value::String(names));
    data.insert(RESERVED_KEY.to_owned(), Value::Object(entry));
}

/// The meta entry of a record, read in place (nothing copied).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LoadMeta<'a> {
    /// The state at load.
    pub(crate) state: LoadState<'a>,
    /// The loaded keys, concatenated (after the user id).
    names: &'a str,
    /// Per loaded key: its length in `names`, its fingerprint.
    keys: &'a [Value],
}

impl<'a> LoadMeta<'a> {
    /// Reads the meta entry of `data`, if there is a well-formed one (an
    /// application that overwrote it gets `None`, as for a record that was
    /// never loaded).
    pub(crate) fn of(data: &'a HashMap<String, Value>) -> Option<LoadMeta<'a>> {
        let entry = data.get(RESERVED_KEY)?.as_object()?;
        let numbers = entry.get("h")?.as_array()?;
        let text = entry.get("k")?.as_str()?;
        let [e, a, user_len, keys @ ..] = numbers.as_slice() else {
            return None;
        };
        let (user, names) = match user_len {
            Value::Null => (None, text),
            len => {
                let len = usize::try_from(len.as_u64()?).ok()?;
                (Some(text.get(..len)?), text.get(len..)?)
            }
        };
        if !keys.len().is_multiple_of(2) {
            return None;
        }
        let meta = LoadMeta {
            state: LoadState {
                v: entry.get("v")?.as_i64()?,
                w: entry.get("w")?.as_i64()?,
                e: e.as_i64()?,
                a: a.as_i64()?,
                u: user,
            },
            names,
            keys,
        };
        // Every length and fingerprint must be a number and the lengths must
        // cover `names` exactly, so `loaded_keys` never has to check again.
        let mut covered = 0usize;
        for (name, _) in meta.entries() {
            covered += name?.len();
        }
        (covered == names.len()).then_some(meta)
    }

    /// The loaded keys with their fingerprints; `None` for a malformed entry.
    fn entries(&self) -> impl Iterator<Item = (Option<&'a str>, u64)> + 'a {
        let names = self.names;
        let mut offset = 0usize;
        self.keys.chunks_exact(2).map(move |pair| {
            let len = pair[0].as_u64().and_then(|n| usize::try_from(n).ok());
            let name = len.and_then(|len| {
                let name = names.get(offset..offset.checked_add(len)?)?;
                offset += len;
                Some(name)
            });
            (name, pair[1].as_u64().unwrap_or(0))
        })
    }

    /// The loaded keys with their fingerprints (the entry was checked by [`LoadMeta::of`]).
    fn loaded_keys(&self) -> impl Iterator<Item = (&'a str, u64)> + 'a {
        self.entries().filter_map(|(name, hash)| Some((name?, hash)))
    }

    /// How many keys were loaded.
    fn key_count(&self) -> usize {
        self.keys.len() / 2
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

/// A 64-bit fingerprint of a value: xxh3 of an unambiguous binary form
/// (type tag, lengths, raw numbers) written into `scratch`, hashed in one
/// call. Two values get the same fingerprint exactly when they serialize to
/// the same JSON (barring a 64-bit collision), at a fraction of the cost of
/// serializing them.
pub(crate) fn fingerprint(value: &Value, scratch: &mut Vec<u8>) -> u64 {
    scratch.clear();
    write_canonical(value, scratch);
    xxhash_rust::xxh3::xxh3_64(scratch)
}

fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.push(b'n'),
        Value::Bool(b) => out.push(if *b { b't' } else { b'f' }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(b'u');
                out.extend_from_slice(&u.to_le_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(b'i');
                out.extend_from_slice(&i.to_le_bytes());
            } else {
                // Bits, not value: -0.0 and 0.0 serialize differently.
                out.push(b'd');
                out.extend_from_slice(&n.as_f64().unwrap_or(f64::NAN).to_bits().to_le_bytes());
            }
        }
        Value::String(s) => write_str(b's', s, out),
        Value::Array(items) => {
            out.push(b'a');
            out.extend_from_slice(&(items.len() as u64).to_le_bytes());
            for item in items {
                write_canonical(item, out);
            }
        }
        Value::Object(map) => {
            // In the map's own order, as serialization writes it.
            out.push(b'o');
            out.extend_from_slice(&(map.len() as u64).to_le_bytes());
            for (key, item) in map {
                write_str(b'k', key, out);
                write_canonical(item, out);
            }
        }
    }
}

fn write_str(tag: u8, s: &str, out: &mut Vec<u8>) {
    out.push(tag);
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// What a request changed in a session's data, borrowed from the record.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Changes<'a> {
    /// Keys set to a new value (added or changed).
    pub(crate) set: Vec<(&'a String, &'a Value)>,
    /// Keys removed.
    pub(crate) removed: Vec<&'a str>,
}

impl Changes<'_> {
    /// Whether nothing changed.
    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty() && self.removed.is_empty()
    }

    /// Applies these changes on top of `base` (another request's newer data).
    pub(crate) fn apply(&self, base: &mut HashMap<String, Value>) {
        for key in &self.removed {
            base.remove(*key);
        }
        for (key, value) in &self.set {
            base.insert((*key).clone(), (*value).clone());
        }
        base.remove(RESERVED_KEY);
    }
}

/// Loaded sessions with more keys than this look keys up through a
/// temporary index instead of a scan.
const SCAN_LIMIT: usize = 16;

/// The keys of `data` whose value differs from what was loaded, and the
/// loaded keys that are gone. Each value is fingerprinted once; nothing is
/// copied.
pub(crate) fn diff<'a>(data: &'a HashMap<String, Value>, meta: &LoadMeta<'a>) -> Changes<'a> {
    let mut changes = Changes::default();
    let mut scratch = Vec::with_capacity(256);
    let loaded_count = meta.key_count();
    let index: Option<HashMap<&str, u64>> = (loaded_count > SCAN_LIMIT).then(|| meta.loaded_keys().collect());
    let mut still_present = 0usize;
    for (key, value) in data.iter().filter(|(k, _)| k.as_str() != RESERVED_KEY) {
        let loaded = match &index {
            Some(index) => index.get(key.as_str()).copied(),
            None => meta.loaded_keys().find(|(name, _)| *name == key.as_str()).map(|(_, hash)| hash),
        };
        if loaded.is_some() {
            still_present += 1;
        }
        if loaded != Some(fingerprint(value, &mut scratch)) {
            changes.set.push((key, value));
        }
    }
    if still_present < loaded_count {
        changes.removed.extend(meta.loaded_keys().map(|(name, _)| name).filter(|name| !data.contains_key(*name)));
    }
    changes
}

/// The user id held under `key` in `data`: a string as is, a number in its
/// decimal form; anything else (or an empty string) is no user.
pub(crate) fn user_id_of(data: &HashMap<String, Value>, key: Option<&str>) -> Option<String> {
    match data.get(key?)? {
        // 255 bytes are at most 255 characters: copy without counting them.
        Value::String(s) if !s.is_empty() && s.len() <= 255 => Some(s.clone()),
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
        let mut now = map(&[("a", json!(1)), ("b", json!({"x": [1, 2]})), ("c", json!("s"))]);
        attach(&mut now, LoadState { v: 3, ..LoadState::default() });
        let loaded = now.clone();
        let meta = LoadMeta::of(&loaded).expect("meta");
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
    fn diff_of_many_keys_uses_the_index_and_finds_the_same_changes() {
        let pairs: Vec<(String, Value)> = (0..40).map(|i| (format!("key{i}"), json!({"i": i}))).collect();
        let mut now: HashMap<String, Value> = pairs.into_iter().collect();
        attach(&mut now, LoadState::default());
        let loaded = now.clone();
        let meta = LoadMeta::of(&loaded).expect("meta");
        assert!(diff(&now, &meta).is_empty());
        now.insert("key7".into(), json!({"i": 700}));
        now.remove("key30");
        let changes = diff(&now, &meta);
        assert_eq!(changes.set.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["key7"]);
        assert_eq!(changes.removed, ["key30"]);
    }

    #[test]
    fn fingerprints_tell_apart_what_serializes_differently() {
        let mut scratch = Vec::new();
        let distinct = [
            json!(null),
            json!(false),
            json!(true),
            json!(0),
            json!(-1),
            json!(u64::MAX),
            json!(0.0),
            json!(-0.0),
            json!(1.5),
            json!(""),
            json!("0"),
            json!([]),
            json!({}),
            json!(["a", "b"]),
            json!(["ab"]),
            json!({"a": "b"}),
            json!({"ab": ""}),
            json!([[], []]),
            json!([[[]]]),
        ];
        let prints: Vec<u64> = distinct.iter().map(|v| fingerprint(v, &mut scratch)).collect();
        for (i, a) in prints.iter().enumerate() {
            for (j, b) in prints.iter().enumerate().skip(i + 1) {
                assert_ne!(a, b, "{} and {} share a fingerprint", distinct[i], distinct[j]);
            }
        }
        let parsed: Value = serde_json::from_str(r#"{"b": [1, {"c": null}], "a": "x"}"#).expect("json");
        assert_eq!(fingerprint(&parsed, &mut scratch), fingerprint(&parsed.clone(), &mut scratch));
    }

    #[test]
    fn meta_round_trips_and_is_never_serialized() {
        let mut data = map(&[("k", json!(true)), ("ünï", json!(1))]);
        let state = LoadState { v: 9, w: 1, e: 2, a: 3, u: Some("üser") };
        attach(&mut data, state);
        let meta = LoadMeta::of(&data).expect("meta");
        assert_eq!(meta.state, state);
        let mut keys: Vec<&str> = meta.loaded_keys().map(|(k, _)| k).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["k", "ünï"]);
        assert_eq!(data[RESERVED_KEY]["v"], json!(9));
        assert_eq!(data[RESERVED_KEY]["w"], json!(1));
        let encoded = serde_json::to_string(&WithoutMeta(&data)).expect("encode");
        assert!(encoded == r#"{"k":true,"ünï":1}"# || encoded == r#"{"ünï":1,"k":true}"#, "{encoded}");

        let mut no_user = map(&[("k", json!(true))]);
        attach(&mut no_user, LoadState::default());
        assert_eq!(LoadMeta::of(&no_user).expect("meta").state.u, None);
    }

    #[test]
    fn a_meta_entry_an_application_overwrote_is_ignored() {
        let mut data = map(&[("k", json!(true))]);
        attach(&mut data, LoadState { u: Some("u"), ..LoadState::default() });
        let good = data[RESERVED_KEY].clone();
        let broken = [
            json!("x"),
            json!({"v": 1, "w": 1, "h": [1, 1, null, 1], "k": "k"}),
            json!({"v": 1, "w": 1, "h": [1, 1, null, 5, 7], "k": "k"}),
            json!({"v": 1, "w": 1, "h": [1, 1, 9, 1, 7], "k": "k"}),
            json!({"v": 1, "w": 1, "h": [1, 1, null, 1, 7], "k": "kk"}),
            json!({"v": 1, "w": 1, "h": [1, 1, null, "1", 7], "k": "k"}),
            json!({"v": 1, "w": 1, "h": [1, 1, 1, 1, 7], "k": "ü"}),
            json!({"v": "1", "w": 1, "h": [1, 1, null], "k": ""}),
        ];
        for value in broken {
            data.insert(RESERVED_KEY.to_owned(), value.clone());
            assert!(LoadMeta::of(&data).is_none(), "accepted {value}");
        }
        data.insert(RESERVED_KEY.to_owned(), good);
        assert!(LoadMeta::of(&data).is_some());
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
