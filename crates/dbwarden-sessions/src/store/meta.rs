//! The reserved data key that lets a stateless store tell what a save
//! changed: written into the record on load, stripped and diffed on save.

use std::collections::HashMap;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};

use super::json;

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

/// The session id a record was loaded (or created) under and its SHA-256,
/// kept so a save of the same id does not hash it again: SHA-256 costs a
/// few thousand instructions on CPUs without SHA extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct IdHash {
    /// The session id.
    pub(crate) id: i128,
    /// `hash_session_id` of it.
    pub(crate) hash: [u8; 32],
}

thread_local! {
    /// The buffer values are written into to be fingerprinted, reused so a
    /// load or save does not allocate one.
    static FINGERPRINT_SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
}

/// A scratch buffer kept this big at most between uses: one huge value
/// must not pin its size on every thread for good.
const SCRATCH_KEEP: usize = 64 * 1024;

/// Runs `f` with this thread's fingerprint scratch buffer (a fresh one if it
/// is in use further up the stack, so nesting never panics).
pub(crate) fn with_scratch<T>(f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
    FINGERPRINT_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => {
            let out = f(&mut scratch);
            if scratch.capacity() > SCRATCH_KEEP {
                *scratch = Vec::with_capacity(256);
            }
            out
        }
        Err(_) => f(&mut Vec::with_capacity(256)),
    })
}

/// Numbers in `"h"` before the per-key ones: expiry, absolute expiry, user
/// id length or null, the id (two words) and its hash (four words).
const HEADER: usize = 9;
/// Numbers per loaded key in `"h"`: name length, fingerprint, and where the
/// key's `"name":value` text is in the stored document (start in the high 32
/// bits, length in the low ones; 0 when there is no stored text to reuse).
/// Few numbers keep the array small enough for the allocator's fast path.
const PER_KEY: usize = 3;

/// Puts the meta entry for `state` into `data`, with a fingerprint of every
/// key's value and no stored text to reuse (after a create, or for Redis,
/// which stores each key on its own).
///
/// Shape (an object, so `["v"]` and `["w"]` read naturally in tests):
/// `{"v": version, "w": last write, "h": [header numbers, then per key:
/// name length, fingerprint, text position, and last the user id, key names
/// and stored document concatenated]}`. One string for all text and plain
/// numbers for the rest keep a load to a handful of allocations, however
/// many keys the session has.
pub(crate) fn attach(data: &mut HashMap<String, Value>, state: LoadState<'_>, id: IdHash) {
    let user = state.u.unwrap_or("");
    let mut text = String::with_capacity(user.len() + data.keys().map(String::len).sum::<usize>());
    let mut numbers = header(state, id, user, &mut text, data.len());
    with_scratch(|scratch| {
        // A stored reserved key is skipped here and replaced below.
        for (key, value) in data.iter().filter(|(k, _)| k.as_str() != RESERVED_KEY) {
            text.push_str(key);
            numbers.extend([Value::from(key.len()), Value::from(fingerprint(value, scratch)), 0.into()]);
        }
    });
    data.insert(RESERVED_KEY.to_owned(), entry(state, numbers, text));
}

/// Decodes a stored document (a JSON object, see [`json::for_each_member`])
/// into a loaded record's data, with the meta entry, which also keeps the
/// document and where each member sits in it: a save copies the members it
/// did not change instead of encoding them again.
pub(crate) fn attach_stored(
    stored: &[u8],
    state: LoadState<'_>,
    id: IdHash,
) -> Result<HashMap<String, Value>, json::JsonError> {
    let user = state.u.unwrap_or("");
    // The names are a part of the document: half of it is room enough for
    // them in all but odd cases, which grow the string once.
    let mut text = String::with_capacity(user.len() + stored.len() + stored.len() / 2);
    let mut numbers = header(state, id, user, &mut text, 8);
    // Room for the meta entry and a few keys the request adds: a full table
    // grows even to replace a key.
    let mut data = HashMap::with_capacity(14);
    let mut repeated = false;
    let doc = json::for_each_member(stored, |member| {
        if member.name == RESERVED_KEY {
            return;
        }
        text.push_str(&member.name);
        numbers.extend([
            Value::from(member.name.len()),
            Value::from(member.fingerprint),
            Value::from(text_position(&member.span)),
        ]);
        repeated |= data.insert(member.name, member.value).is_some();
    })?;
    if repeated {
        // A name given twice keeps its last value; the entry listing both is
        // rebuilt from the map, without stored text.
        attach(&mut data, state, id);
        return Ok(data);
    }
    text.push_str(doc);
    data.insert(RESERVED_KEY.to_owned(), entry(state, numbers, text));
    Ok(data)
}

/// A member's text position as stored in `"h"`, or 0 (no text) for a
/// document past 4 GiB.
fn text_position(span: &std::ops::Range<usize>) -> u64 {
    match (u32::try_from(span.start), u32::try_from(span.len())) {
        (Ok(start), Ok(len)) => (u64::from(start) << 32) | u64::from(len),
        _ => 0,
    }
}

fn header(state: LoadState<'_>, id: IdHash, user: &str, text: &mut String, keys: usize) -> Vec<Value> {
    text.push_str(user);
    let mut numbers = Vec::with_capacity(HEADER + PER_KEY * keys);
    let raw_id = id.id as u128;
    numbers.extend([
        Value::from(state.e),
        Value::from(state.a),
        state.u.map_or(Value::Null, |u| Value::from(u.len())),
        Value::from(raw_id as u64),
        Value::from((raw_id >> 64) as u64),
    ]);
    for word in id.hash.chunks_exact(8) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(word);
        numbers.push(Value::from(u64::from_le_bytes(bytes)));
    }
    numbers
}

fn entry(state: LoadState<'_>, mut numbers: Vec<Value>, text: String) -> Value {
    numbers.push(Value::String(text));
    let mut entry = Map::new();
    entry.insert("v".to_owned(), Value::from(state.v));
    entry.insert("w".to_owned(), Value::from(state.w));
    entry.insert("h".to_owned(), Value::Array(numbers));
    Value::Object(entry)
}

/// The meta entry of a record, read in place (no text copied).
#[derive(Debug, Clone)]
pub(crate) struct LoadMeta<'a> {
    /// The state at load.
    pub(crate) state: LoadState<'a>,
    /// The id loaded and its hash.
    id: IdHash,
    /// The loaded keys, decoded once.
    keys: Vec<LoadedKey<'a>>,
}

/// One loaded key as the meta entry records it.
#[derive(Debug, Clone, Copy, PartialEq)]
struct LoadedKey<'a> {
    name: &'a str,
    fingerprint: u64,
    /// Its `"name":value` text in the stored document, when there is one.
    text: Option<&'a str>,
}

impl<'a> LoadMeta<'a> {
    /// Reads the meta entry of `data`, if there is a well-formed one (an
    /// application that overwrote it gets `None`, as for a record that was
    /// never loaded).
    pub(crate) fn of(data: &'a HashMap<String, Value>) -> Option<LoadMeta<'a>> {
        let entry = data.get(RESERVED_KEY)?.as_object()?;
        let (text, numbers) = entry.get("h")?.as_array()?.split_last()?;
        let text = text.as_str()?;
        let (head, per_key) = numbers.split_at_checked(HEADER)?;
        let [e, a, user_len, id_low, id_high, hash @ ..] = head else {
            return None;
        };
        let (user, rest) = match user_len {
            Value::Null => (None, text),
            len => {
                let len = usize::try_from(len.as_u64()?).ok()?;
                (Some(text.get(..len)?), text.get(len..)?)
            }
        };
        if !per_key.len().is_multiple_of(PER_KEY) {
            return None;
        }
        let mut hash_bytes = [0u8; 32];
        for (word, out) in hash.iter().zip(hash_bytes.chunks_exact_mut(8)) {
            out.copy_from_slice(&word.as_u64()?.to_le_bytes());
        }
        let mut names_len = 0usize;
        for key in per_key.chunks_exact(PER_KEY) {
            names_len = names_len.checked_add(usize::try_from(key[0].as_u64()?).ok()?)?;
        }
        let (names, doc) = (rest.get(..names_len)?, rest.get(names_len..)?);
        let mut keys = Vec::with_capacity(per_key.len() / PER_KEY);
        let mut offset = 0usize;
        for key in per_key.chunks_exact(PER_KEY) {
            let len = usize::try_from(key[0].as_u64()?).ok()?;
            let name = names.get(offset..offset + len)?;
            offset += len;
            let position = key[2].as_u64()?;
            let (start, text_len) = ((position >> 32) as usize, (position & u64::from(u32::MAX)) as usize);
            let text = match text_len {
                0 => None,
                _ => Some(doc.get(start..start + text_len)?),
            };
            keys.push(LoadedKey { name, fingerprint: key[1].as_u64()?, text });
        }
        Some(LoadMeta {
            state: LoadState {
                v: entry.get("v")?.as_i64()?,
                w: entry.get("w")?.as_i64()?,
                e: e.as_i64()?,
                a: a.as_i64()?,
                u: user,
            },
            id: IdHash {
                id: ((u128::from(id_high.as_u64()?) << 64) | u128::from(id_low.as_u64()?)) as i128,
                hash: hash_bytes,
            },
            keys,
        })
    }

    /// The hash of `id` when the record was loaded under it (a record whose
    /// id changed since needs hashing again).
    pub(crate) fn hash_of(&self, id: i128) -> Option<[u8; 32]> {
        (self.id.id == id).then_some(self.id.hash)
    }

    /// The loaded keys.
    fn loaded_keys(&self) -> impl Iterator<Item = LoadedKey<'a>> + '_ {
        self.keys.iter().copied()
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

/// Appends the canonical form of `value` to `out` (see [`fingerprint`]).
pub(crate) fn write_canonical(value: &Value, out: &mut Vec<u8>) {
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
            write_container(b'a', items.len(), out);
            for item in items {
                write_canonical(item, out);
            }
        }
        Value::Object(map) => {
            // In the map's own order, as serialization writes it.
            write_container(b'o', map.len(), out);
            for (key, item) in map {
                write_name(key, out);
                write_canonical(item, out);
            }
        }
    }
}

/// Appends the start of an array's (`b'a'`) or object's (`b'o'`) canonical
/// form; returns where its item count sits, for [`set_count`] when the
/// count is not known yet.
pub(crate) fn write_container(tag: u8, count: usize, out: &mut Vec<u8>) -> usize {
    out.push(tag);
    out.extend_from_slice(&(count as u64).to_le_bytes());
    out.len() - 8
}

/// Sets the item count [`write_container`] left at `at`.
pub(crate) fn set_count(out: &mut [u8], at: usize, count: usize) {
    if let Some(slot) = out.get_mut(at..at + 8) {
        slot.copy_from_slice(&(count as u64).to_le_bytes());
    }
}

/// Appends the canonical form of an object member's name.
pub(crate) fn write_name(name: &str, out: &mut Vec<u8>) {
    write_str(b'k', name, out);
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
    /// The stored `"name":value` text of unchanged keys that have one.
    pub(crate) kept_text: Vec<&'a str>,
    /// Unchanged keys without stored text.
    pub(crate) kept: Vec<(&'a String, &'a Value)>,
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

    /// The whole data as a JSON object: the stored text of unchanged keys
    /// copied as it is, the rest encoded.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.push(b'{');
        let mut first = true;
        for text in &self.kept_text {
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(text.as_bytes());
        }
        for (key, value) in self.kept.iter().chain(&self.set) {
            if !first {
                out.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, value)?;
        }
        out.push(b'}');
        Ok(())
    }
}

/// Loaded sessions with more keys than this look keys up through a
/// temporary index instead of a scan.
const SCAN_LIMIT: usize = 16;

/// The keys of `data` whose value differs from what was loaded, the loaded
/// keys that are gone, and the unchanged rest. Each value is fingerprinted
/// once; nothing is copied.
pub(crate) fn diff<'a>(data: &'a HashMap<String, Value>, meta: &LoadMeta<'a>) -> Changes<'a> {
    let loaded_count = meta.keys.len();
    let mut changes = Changes { kept_text: Vec::with_capacity(loaded_count), ..Changes::default() };
    let index: Option<HashMap<&str, LoadedKey<'a>>> =
        (loaded_count > SCAN_LIMIT).then(|| meta.loaded_keys().map(|key| (key.name, key)).collect());
    let mut still_present = 0usize;
    with_scratch(|scratch| {
        for (key, value) in data.iter().filter(|(k, _)| k.as_str() != RESERVED_KEY) {
            let loaded = match &index {
                Some(index) => index.get(key.as_str()),
                None => meta.keys.iter().find(|loaded| loaded.name == key.as_str()),
            };
            let Some(loaded) = loaded else {
                changes.set.push((key, value));
                continue;
            };
            still_present += 1;
            if loaded.fingerprint != fingerprint(value, scratch) {
                changes.set.push((key, value));
            } else if let Some(text) = loaded.text {
                changes.kept_text.push(text);
            } else {
                changes.kept.push((key, value));
            }
        }
    });
    if still_present < loaded_count {
        changes.removed.extend(meta.loaded_keys().map(|key| key.name).filter(|name| !data.contains_key(*name)));
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
        attach(&mut now, LoadState { v: 3, ..LoadState::default() }, IdHash::default());
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
        attach(&mut now, LoadState::default(), IdHash::default());
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
        let id = IdHash { id: -5, hash: [7; 32] };
        attach(&mut data, state, id);
        let meta = LoadMeta::of(&data).expect("meta");
        assert_eq!(meta.state, state);
        assert_eq!(meta.hash_of(-5), Some([7; 32]));
        assert_eq!(meta.hash_of(5), None);
        let mut keys: Vec<&str> = meta.loaded_keys().map(|k| k.name).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["k", "ünï"]);
        assert_eq!(data[RESERVED_KEY]["v"], json!(9));
        assert_eq!(data[RESERVED_KEY]["w"], json!(1));
        let encoded = serde_json::to_string(&WithoutMeta(&data)).expect("encode");
        assert!(encoded == r#"{"k":true,"ünï":1}"# || encoded == r#"{"ünï":1,"k":true}"#, "{encoded}");

        let mut no_user = map(&[("k", json!(true))]);
        attach(&mut no_user, LoadState::default(), IdHash::default());
        assert_eq!(LoadMeta::of(&no_user).expect("meta").state.u, None);
    }

    #[test]
    fn a_meta_entry_an_application_overwrote_is_ignored() {
        let mut data = map(&[("k", json!(true))]);
        attach(&mut data, LoadState { u: Some("u"), ..LoadState::default() }, IdHash::default());
        let good = data[RESERVED_KEY].clone();
        // Header numbers, then `keys`, then the text.
        let h = |user: Value, keys: &[Value], text: &str| {
            let mut numbers =
                vec![json!(1), json!(1), user, json!(0), json!(0), json!(0), json!(0), json!(0), json!(0)];
            numbers.extend_from_slice(keys);
            numbers.push(json!(text));
            Value::Array(numbers)
        };
        let broken = [
            json!("x"),
            json!({"v": 1, "w": 1, "h": [1, 1, null, 0, 0, 0, 0, 0, ""]}),
            json!({"v": 1, "w": 1, "h": [1, 1, null, 0, 0, 0, 0, 0, 0, 0]}),
            json!({"v": 1, "w": 1, "h": h(json!(null), &[json!(1), json!(7)], "k")}),
            json!({"v": 1, "w": 1, "h": h(json!(null), &[json!(5), json!(7), json!(0)], "k")}),
            json!({"v": 1, "w": 1, "h": h(json!(9), &[json!(1), json!(7), json!(0)], "k")}),
            json!({"v": 1, "w": 1, "h": h(json!(null), &[json!("1"), json!(7), json!(0)], "k")}),
            json!({"v": 1, "w": 1, "h": h(json!(1), &[json!(1), json!(7), json!(0)], "ü")}),
            json!({"v": 1, "w": 1, "h": h(json!(null), &[json!(1), json!(7), json!(9)], "k{}")}),
            json!({"v": 1, "w": 1, "h": h(json!(null), &[json!(1), json!(7), json!((1u64 << 32) | 1)], "kü")}),
            json!({"v": "1", "w": 1, "h": h(json!(null), &[], "")}),
        ];
        for value in broken {
            data.insert(RESERVED_KEY.to_owned(), value.clone());
            assert!(LoadMeta::of(&data).is_none(), "accepted {value}");
        }
        let fine = json!({"v": 1, "w": 1, "h": h(json!(null), &[json!(1), json!(7), json!(2)], "k{}")});
        data.insert(RESERVED_KEY.to_owned(), fine);
        assert!(LoadMeta::of(&data).is_some());
        data.insert(RESERVED_KEY.to_owned(), good);
        assert!(LoadMeta::of(&data).is_some());
    }

    #[test]
    fn loaded_data_keeps_member_text_and_unchanged_keys_are_copied_on_encode() {
        let doc = r#"{"a":1,"b":{"x":[1,2]},"c":"s","ü":  [true]}"#;
        let state = LoadState { v: 2, u: Some("alice"), ..LoadState::default() };
        let mut now = attach_stored(doc.as_bytes(), state, IdHash::default()).expect("decode");
        assert_eq!(now.len(), 5);
        let loaded = now.clone();
        let meta = LoadMeta::of(&loaded).expect("meta");
        assert_eq!(meta.state, state);
        let unchanged = diff(&now, &meta);
        assert!(unchanged.is_empty());
        assert_eq!(unchanged.kept_text.len(), 4);

        now.insert("a".into(), json!(2));
        now.insert("d".into(), json!("new"));
        now.remove("c");
        let changes = diff(&now, &meta);
        let mut kept = changes.kept_text.clone();
        kept.sort_unstable();
        assert_eq!(kept, [r#""b":{"x":[1,2]}"#, r#""ü":  [true]"#]);
        assert_eq!(changes.removed, ["c"]);
        let mut bytes = Vec::new();
        changes.encode(&mut bytes).expect("encode");
        let written: Value = serde_json::from_slice(&bytes).expect("valid json");
        assert_eq!(written, json!({"a": 2, "b": {"x": [1, 2]}, "d": "new", "ü": [true]}));
    }

    #[test]
    fn a_name_given_twice_keeps_its_last_value_and_no_stored_text() {
        let doc = r#"{"a":1,"a":2,"b":3}"#;
        let mut now = attach_stored(doc.as_bytes(), LoadState::default(), IdHash::default()).expect("decode");
        assert_eq!(now["a"], json!(2));
        let loaded = now.clone();
        let meta = LoadMeta::of(&loaded).expect("meta");
        assert!(meta.loaded_keys().all(|key| key.text.is_none()));
        now.insert("b".into(), json!(4));
        let mut bytes = Vec::new();
        diff(&now, &meta).encode(&mut bytes).expect("encode");
        assert_eq!(serde_json::from_slice::<Value>(&bytes).expect("json"), json!({"a": 2, "b": 4}));
    }

    #[test]
    fn the_scratch_buffer_nests_and_does_not_keep_a_huge_size() {
        let inner_len = with_scratch(|outer| {
            outer.resize(SCRATCH_KEEP * 2, 0);
            with_scratch(|inner| {
                inner.push(1);
                inner.len()
            })
        });
        assert_eq!(inner_len, 1);
        assert!(with_scratch(|scratch| scratch.capacity()) <= SCRATCH_KEEP);
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
