//! SQL fingerprinting: a statement becomes a normalized text with every
//! literal replaced by `?`, a stable 64-bit id, its kind and its main table.
//!
//! Everything dbwarden publishes about a query (metric labels, logs, the API,
//! stored history) is keyed by a fingerprint and never by the raw text,
//! because raw SQL carries user data in its literals. The normalizer is
//! written for hostile input:
//!
//! - a hand-written, single-pass lexer over bytes. Tokens only begin and end
//!   on ASCII bytes (bytes of multi-byte characters always count as
//!   identifier characters), so slicing can never split a character;
//! - explicit stacks instead of recursion, and linear time;
//! - where SQL dialects disagree about where a literal ends (a backslash
//!   before a quote: an escape in MySQL, an ordinary character in standard
//!   PostgreSQL strings; `#` and `--x`, comments in MySQL only; nested
//!   `/* */`, PostgreSQL only), the rest of the statement becomes one `?`
//!   instead of a guess, unless both readings provably agree.
//!
//! Normalization: comments are dropped; tokens are re-spaced canonically
//! (one space between tokens, none inside brackets, before `,` `;` `.`, or
//! around `.` and `::`; a name followed by `(` keeps whether it had a space);
//! known keywords are uppercased; literals and placeholders become `?`; a
//! unary sign before a number disappears; bracketed lists of placeholders
//! become `(?)` / `[?]`; a repeated row (`VALUES (…), (…)`) is kept once;
//! trailing `;` are dropped. Identifiers keep their case and their quotes
//! (`"user"`, `` `user` ``), which keeps normalization idempotent: unquoting
//! `"order"` would turn it into the keyword `ORDER`.
//!
//! Double-quoted text is an identifier in PostgreSQL and SQLite but a string
//! in MySQL, so it is kept only in positions where a string cannot be valid
//! (`"t"."c"`, after `FROM`/`JOIN`/`INTO`/`UPDATE`/`AS`/`BY`…, column lists of
//! `INSERT INTO t (…)`, the left side of `SET "c" =`, a function name); in
//! every other position it becomes `?`.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::{self, Visitor};
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed, xxh3_128_with_seed};

#[cfg(test)]
mod tests;

/// Longest normalized text kept in a [`Fingerprint`], in bytes, including the
/// trailing `…` that marks a cut.
pub const MAX_TEXT_LEN: usize = 4096;

/// Longest table name reported by [`Fingerprint::table`], in bytes.
const MAX_TABLE_LEN: usize = 64;

/// Statements are normalized up to this many bytes and the rest becomes one
/// `?`: normalization allocates a few dozen bytes per token, and this bounds
/// what one pathological statement can make it allocate (about 100 MiB).
const MAX_SQL_LEN: usize = 2 * 1024 * 1024;

/// Stable identifier of a normalized statement: the XXH3-64 (seed 0) of the
/// full normalized text.
///
/// The same normalized text gets the same id forever, across processes and
/// versions, so ids can be stored and compared with history. `0` is reserved
/// for [`Fingerprint::other`]; a text that would hash to 0 gets 1.
/// Displayed and serialized as 16 lowercase hexadecimal digits (parsed in
/// either case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FingerprintId(pub u64);

impl fmt::Display for FingerprintId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl Serialize for FingerprintId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FingerprintId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(IdVisitor)
    }
}

struct IdVisitor;

impl Visitor<'_> for IdVisitor {
    type Value = FingerprintId;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a fingerprint id of 16 hexadecimal digits")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<FingerprintId, E> {
        let parsed = (v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| u64::from_str_radix(v, 16).ok())
            .flatten();
        parsed.map(FingerprintId).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

/// What a statement does, from its first keyword (for `WITH …`, from the
/// statement after the common table expressions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum StatementKind {
    /// `SELECT`, also `VALUES` and `TABLE t`.
    Select,
    /// `INSERT`, also MySQL `REPLACE`.
    Insert,
    /// `UPDATE`.
    Update,
    /// `DELETE`.
    Delete,
    /// `MERGE`.
    Merge,
    /// `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT`,
    /// `SAVEPOINT`, `RELEASE`.
    Transaction,
    /// `CREATE`, `ALTER`, `DROP`, `TRUNCATE`, `RENAME`, `COMMENT`.
    Ddl,
    /// `SET`, `RESET`.
    Set,
    /// `SHOW`.
    Show,
    /// `EXPLAIN`, `DESCRIBE`, `DESC`.
    Explain,
    /// `CALL`, `EXEC`, `EXECUTE`.
    Call,
    /// `COPY`, MySQL `LOAD DATA`.
    Copy,
    /// `VACUUM`, `ANALYZE`, `OPTIMIZE`.
    Vacuum,
    /// Anything else, including empty input.
    Other,
}

impl StatementKind {
    /// Every kind, in a stable order (used to lay out per-kind counters).
    pub const ALL: [StatementKind; 14] = [
        StatementKind::Select,
        StatementKind::Insert,
        StatementKind::Update,
        StatementKind::Delete,
        StatementKind::Merge,
        StatementKind::Transaction,
        StatementKind::Ddl,
        StatementKind::Set,
        StatementKind::Show,
        StatementKind::Explain,
        StatementKind::Call,
        StatementKind::Copy,
        StatementKind::Vacuum,
        StatementKind::Other,
    ];

    /// The stable snake_case name, used in labels and JSON.
    pub const fn as_str(self) -> &'static str {
        match self {
            StatementKind::Select => "select",
            StatementKind::Insert => "insert",
            StatementKind::Update => "update",
            StatementKind::Delete => "delete",
            StatementKind::Merge => "merge",
            StatementKind::Transaction => "transaction",
            StatementKind::Ddl => "ddl",
            StatementKind::Set => "set",
            StatementKind::Show => "show",
            StatementKind::Explain => "explain",
            StatementKind::Call => "call",
            StatementKind::Copy => "copy",
            StatementKind::Vacuum => "vacuum",
            StatementKind::Other => "other",
        }
    }

    fn from_keyword(word: &str) -> StatementKind {
        use StatementKind::*;
        const MAP: &[(StatementKind, &[&str])] = &[
            (Select, &["SELECT", "VALUES", "TABLE"]),
            (Insert, &["INSERT", "REPLACE"]),
            (Update, &["UPDATE"]),
            (Delete, &["DELETE"]),
            (Merge, &["MERGE"]),
            (Transaction, &["BEGIN", "START", "COMMIT", "END", "ROLLBACK", "ABORT", "SAVEPOINT", "RELEASE"]),
            (Ddl, &["CREATE", "ALTER", "DROP", "TRUNCATE", "RENAME", "COMMENT"]),
            (Set, &["SET", "RESET"]),
            (Show, &["SHOW"]),
            (Explain, &["EXPLAIN", "DESCRIBE", "DESC"]),
            (Call, &["CALL", "EXEC", "EXECUTE"]),
            (Copy, &["COPY", "LOAD"]),
            (Vacuum, &["VACUUM", "ANALYZE", "OPTIMIZE"]),
        ];
        MAP.iter().find(|(_, words)| words.iter().any(|w| word.eq_ignore_ascii_case(w))).map_or(Other, |&(k, _)| k)
    }
}

impl fmt::Display for StatementKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A normalized statement: literal-free text, stable id, kind and main table.
///
/// Nothing in a fingerprint comes from a literal of the statement, so it is
/// safe to publish anywhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    id: FingerprintId,
    text: Arc<str>,
    kind: StatementKind,
    table: Option<Arc<str>>,
}

impl Fingerprint {
    /// Normalizes `sql`. Never panics, runs in time linear in the input, and
    /// treats input longer than 2 MiB as its first 2 MiB followed by `?`.
    pub fn of(sql: &str) -> Fingerprint {
        let sql = sql.strip_prefix('\u{feff}').unwrap_or(sql);
        let head = sql.get(..floor_boundary(sql, MAX_SQL_LEN)).unwrap_or("");
        let mut emitter = Emitter::new(head);
        let mut lexer = Lexer::new(head).peekable();
        while let Some(tok) = lexer.next() {
            emitter.token(tok, lexer.peek());
        }
        if head.len() < sql.len() {
            emitter.push(Out::Q);
        }
        emitter.finish();
        let out = emitter.out;
        let text = render(&out);
        let (kind, table) = classify(&out);
        let hash = xxh3_64(text.as_bytes());
        Fingerprint {
            // 0 is Fingerprint::other's; a real text hashing to 0 moves to 1.
            id: FingerprintId(hash.max(1)),
            text: cap_text(text),
            kind,
            table: table.and_then(clean_table),
        }
    }

    /// The stable id, computed over the full normalized text (before the
    /// [`MAX_TEXT_LEN`] cap).
    pub fn id(&self) -> FingerprintId {
        self.id
    }

    /// The normalized text, at most [`MAX_TEXT_LEN`] bytes; a longer text is
    /// cut at a character boundary and ends in `…`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// What the statement does.
    pub fn kind(&self) -> StatementKind {
        self.kind
    }

    /// The main table (`FROM t` of a `SELECT`, `INSERT INTO t`, `UPDATE t`,
    /// `DELETE FROM t`, `MERGE INTO t`, `CREATE/ALTER/DROP TABLE t`,
    /// `TRUNCATE t`, `COPY t`, `VACUUM/ANALYZE/OPTIMIZE t`), without quotes or
    /// schema prefix, at most 64 bytes; `None` when there is none (`SELECT 1`,
    /// a subquery in `FROM`, other kinds).
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The bucket for statements that are not attributed to a fingerprint of
    /// their own (e.g. once a per-fingerprint budget is exhausted): id
    /// `FingerprintId(0)`, which [`Fingerprint::of`] never returns, text
    /// `<other>` (which normalization cannot produce: it would space the
    /// `<` and `>`), kind [`StatementKind::Other`], no table.
    pub fn other() -> Fingerprint {
        Fingerprint { id: FingerprintId(0), text: Arc::from("<other>"), kind: StatementKind::Other, table: None }
    }
}

impl Serialize for Fingerprint {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut st = serializer.serialize_struct("Fingerprint", 4)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("text", &*self.text)?;
        st.serialize_field("kind", &self.kind)?;
        st.serialize_field("table", &self.table.as_deref())?;
        st.end()
    }
}

fn floor_boundary(s: &str, max: usize) -> usize {
    crate::monitor::cut_str(s, max).len()
}

fn cap_text(text: String) -> Arc<str> {
    if text.len() <= MAX_TEXT_LEN {
        return Arc::from(text);
    }
    let cut = floor_boundary(&text, MAX_TEXT_LEN - '…'.len_utf8());
    let mut capped = String::with_capacity(MAX_TEXT_LEN);
    capped.push_str(text.get(..cut).unwrap_or(""));
    capped.push('…');
    Arc::from(capped)
}

fn clean_table(raw: &str) -> Option<Arc<str>> {
    let quoted = |q: char| raw.strip_prefix(q).and_then(|r| r.strip_suffix(q));
    let name = if let Some(inner) = quoted('"') {
        inner.replace("\"\"", "\"")
    } else if let Some(inner) = quoted('`') {
        inner.replace("``", "`")
    } else {
        raw.to_owned()
    };
    let name = name.get(..floor_boundary(&name, MAX_TABLE_LEN))?;
    (!name.is_empty()).then(|| Arc::from(name))
}

// ---------------------------------------------------------------------------
// Lexer

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tk {
    Word,
    /// Backtick identifier: an identifier in every dialect that has it.
    Quoted,
    /// Double-quoted: identifier or string depending on dialect and position.
    DQuote,
    Lit,
    Num,
    Param,
    Op,
    Open,
    Close,
    OpenB,
    CloseB,
    Comma,
    Dot,
    Semi,
}

#[derive(Debug, Clone, Copy)]
struct Tok {
    kind: Tk,
    start: usize,
    end: usize,
    /// Whitespace or a comment came before the token.
    space: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Escapes {
    /// Backticks: only doubling escapes.
    None,
    /// `E'…'`: backslash escapes in every dialect that accepts the syntax.
    Always,
    /// `'…'` and `"…"`: backslash escapes in MySQL, not in standard SQL.
    Ambiguous,
}

enum Scan {
    Closed(usize),
    Unterminated,
    /// The end of the literal depends on the dialect.
    Ambiguous,
}

enum Step {
    /// A comment ended here.
    Skip(usize),
    Tok(Tk, usize),
    /// Everything from here on may be literal in some dialect.
    Rest(usize),
}

struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    space: bool,
    line_start: bool,
    done: bool,
    /// The current line was found to read the same in every dialect up to
    /// here, so further `#` on it need no new check (keeps many `#` on one
    /// line linear).
    safe_to: usize,
}

#[rustfmt::skip]
const OPS: [&str; 33] = [
    "->>", "#>>", "!~*", "<=>", "||/", "<<=", ">>=", "-|-", "->", "#>", "#-", "@>", "<@", "<=",
    ">=", "<>", "!=", "||", "&&", "<<", ">>", "=>", "!~", "~~", "~*", "|/", "@@", "::", ":=",
    "!!", "&<", "&>", "^@",
];

fn op_len(rest: &[u8]) -> usize {
    OPS.iter().find(|op| rest.starts_with(op.as_bytes())).map_or(1, |op| op.len())
}

fn is_blank(c: u8) -> bool {
    c <= b' ' || c == 0x7f
}

fn is_ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn is_tag_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Whether reading `b[from..to]` as code (the reading of a dialect that
/// does not take it for a comment) surely ends outside any literal. Anything
/// whose reading depends on the dialect (a backslash inside quotes, dollar
/// quotes, block comments; in a region that is not a single line, also
/// `#` and `--`) counts as not sure.
fn ends_as_code(b: &[u8], from: usize, to: usize, line: bool) -> bool {
    let mut quote = None;
    let mut i = from;
    while i < to {
        let c = b[i];
        let next = b.get(i + 1).copied().unwrap_or(0);
        match quote {
            Some(_) if c == b'\\' => return false,
            // A doubled quote closes and reopens: same state either way.
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                b'\'' | b'"' | b'`' => quote = Some(c),
                // `$` inside a name (`a$b`) opens nothing.
                c if is_ident_start(c) => {
                    while i + 1 < to && is_ident_char(b[i + 1]) {
                        i += 1;
                    }
                }
                b'$' if next == b'$' || is_ident_start(next) => return false,
                b'/' if next == b'*' => return false,
                b'-' if next == b'-' && line && is_blank(b.get(i + 2).copied().unwrap_or(0)) => return true,
                b'-' | b'#' if !line && (c == b'#' || next == b'-') => return false,
                _ => {}
            },
        }
        i += 1;
    }
    quote.is_none()
}

fn find_eol(b: &[u8], from: usize) -> usize {
    b.get(from..).and_then(|r| r.iter().position(|&c| c == b'\n')).map_or(b.len(), |p| from + p)
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Lexer { s, b: s.as_bytes(), pos: 0, space: false, line_start: true, done: false, safe_to: 0 }
    }

    /// The byte at `i`, or 0 past the end (0 behaves like whitespace).
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    fn scan_while(&self, from: usize, f: impl Fn(u8) -> bool) -> usize {
        let mut i = from;
        while i < self.b.len() && f(self.b[i]) {
            i += 1;
        }
        i
    }

    /// Whether the rest of the line from `from` reads the same whether the
    /// token before it starts a comment (MySQL `#`, `--x`) or not.
    fn line_is_safe(&mut self, from: usize) -> bool {
        if from <= self.safe_to {
            return true;
        }
        let eol = find_eol(self.b, from);
        let safe = ends_as_code(self.b, from, eol, true);
        if safe {
            self.safe_to = eol;
        }
        safe
    }

    fn step(&mut self, start: usize, c: u8) -> Step {
        let next = self.at(start + 1);
        let op = |len: usize| Step::Tok(Tk::Op, start + len);
        match c {
            b'-' if next == b'-' => {
                // MySQL needs a blank after `--`; without one it reads code.
                if !is_blank(self.at(start + 2)) && !self.line_is_safe(start + 2) {
                    return Step::Rest(start);
                }
                Step::Skip(find_eol(self.b, start + 2))
            }
            b'/' if next == b'*' => self.block_comment(start),
            b'#' => {
                // A comment in MySQL, an operator in PostgreSQL.
                let comment = self.line_start || is_blank(next);
                if !self.line_is_safe(start + 1) {
                    Step::Rest(start)
                } else if comment {
                    Step::Skip(find_eol(self.b, start + 1))
                } else {
                    op(op_len(&self.b[start..]))
                }
            }
            b'\'' => self.string(start, start, Escapes::Ambiguous),
            b'"' => match self.quoted(start, b'"', Escapes::Ambiguous) {
                Scan::Closed(end) => Step::Tok(Tk::DQuote, end),
                Scan::Unterminated => Step::Tok(Tk::Lit, self.b.len()),
                Scan::Ambiguous => Step::Rest(start),
            },
            b'`' => match self.quoted(start, b'`', Escapes::None) {
                Scan::Closed(end) => Step::Tok(Tk::Quoted, end),
                // An unclosed identifier would swallow the rest verbatim.
                _ => Step::Tok(Tk::Lit, self.b.len()),
            },
            b'$' => self.dollar(start, next),
            b'?' => Step::Tok(Tk::Param, self.scan_while(start + 1, |c| c.is_ascii_digit())),
            b':' => match next {
                b':' | b'=' => op(2),
                n if is_ident_start(n) => Step::Tok(Tk::Param, self.scan_while(start + 1, is_ident_char)),
                _ => op(1),
            },
            b'@' => {
                if next == b'@' && is_ident_start(self.at(start + 2)) {
                    // MySQL system variable such as @@session.sql_mode.
                    Step::Tok(Tk::Word, self.scan_while(start + 2, is_ident_char))
                } else if is_ident_start(next) {
                    Step::Tok(Tk::Param, self.scan_while(start + 1, is_ident_char))
                } else {
                    op(op_len(&self.b[start..]))
                }
            }
            b'%' => {
                if next == b's' && !is_ident_char(self.at(start + 2)) {
                    return Step::Tok(Tk::Param, start + 2);
                }
                if next == b'(' {
                    let e = self.scan_while(start + 2, is_ident_char);
                    if self.at(e) == b')' && self.at(e + 1) == b's' && !is_ident_char(self.at(e + 2)) {
                        return Step::Tok(Tk::Param, e + 2);
                    }
                }
                op(1)
            }
            b'0'..=b'9' => Step::Tok(Tk::Num, self.number(start)),
            b'.' if next.is_ascii_digit() => Step::Tok(Tk::Num, self.number(start)),
            b'.' => Step::Tok(Tk::Dot, start + 1),
            b'(' => Step::Tok(Tk::Open, start + 1),
            b')' => Step::Tok(Tk::Close, start + 1),
            b'[' => Step::Tok(Tk::OpenB, start + 1),
            b']' => Step::Tok(Tk::CloseB, start + 1),
            b',' => Step::Tok(Tk::Comma, start + 1),
            b';' => Step::Tok(Tk::Semi, start + 1),
            c if is_ident_start(c) => self.word(start),
            _ => op(op_len(&self.b[start..])),
        }
    }

    fn block_comment(&self, start: usize) -> Step {
        let b = self.b;
        let n = b.len();
        let mut depth = 1usize;
        let mut i = start + 2;
        let mut first_close = None;
        let end = loop {
            if i + 1 >= n {
                break n;
            }
            if b[i] == b'*' && b[i + 1] == b'/' {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    break i;
                }
                first_close.get_or_insert(i);
            } else if b[i] == b'/' && b[i + 1] == b'*' {
                depth += 1;
                i += 2;
            } else {
                i += 1;
            }
        };
        // PostgreSQL nests comments, MySQL ends at the first `*/`: what
        // MySQL reads as code must not change which quotes open literals.
        if let Some(fc) = first_close
            && !ends_as_code(b, fc, end, false)
        {
            return Step::Rest(start);
        }
        Step::Skip(end)
    }

    fn quoted(&self, open: usize, q: u8, esc: Escapes) -> Scan {
        let b = self.b;
        let mut i = open + 1;
        loop {
            let Some(rest) = b.get(i..) else {
                return Scan::Unterminated;
            };
            let found = rest.iter().position(|&c| c == q || (c == b'\\' && esc != Escapes::None));
            let Some(off) = found else {
                return Scan::Unterminated;
            };
            let j = i + off;
            if self.at(j) == b'\\' {
                if esc == Escapes::Ambiguous && self.at(j + 1) == q {
                    return Scan::Ambiguous;
                }
                // Both readings agree on `\x` when x is not the quote; skipping
                // the pair keeps `\\'` a backslash followed by the close.
                i = j + 2;
            } else if self.at(j + 1) == q {
                i = j + 2;
            } else {
                return Scan::Closed(j + 1);
            }
        }
    }

    fn string(&self, start: usize, quote: usize, esc: Escapes) -> Step {
        match self.quoted(quote, b'\'', esc) {
            Scan::Closed(end) => Step::Tok(Tk::Lit, end),
            Scan::Unterminated => Step::Tok(Tk::Lit, self.b.len()),
            Scan::Ambiguous => Step::Rest(start),
        }
    }

    fn dollar(&self, start: usize, next: u8) -> Step {
        if next.is_ascii_digit() {
            return Step::Tok(Tk::Param, self.scan_while(start + 1, |c| c.is_ascii_digit()));
        }
        let tag_end = if next == b'$' {
            start + 1
        } else if is_ident_start(next) {
            let e = self.scan_while(start + 1, is_tag_char);
            if self.at(e) != b'$' {
                return Step::Tok(Tk::Op, start + 1);
            }
            e
        } else {
            return Step::Tok(Tk::Op, start + 1);
        };
        let body = tag_end + 1;
        let delim = self.s.get(start..body).unwrap_or("$$");
        let end = self.s.get(body..).and_then(|rest| rest.find(delim)).map_or(self.b.len(), |p| body + p + delim.len());
        Step::Tok(Tk::Lit, end)
    }

    fn number(&self, start: usize) -> usize {
        let hex = self.at(start) == b'0' && matches!(self.at(start + 1), b'x' | b'X' | b'b' | b'B' | b'o' | b'O');
        let mut i = start;
        let mut seen_dot = false;
        let mut alphas = 0u32;
        let mut last = 0u8;
        while i < self.b.len() {
            let c = self.b[i];
            if c.is_ascii_alphabetic() {
                alphas += 1;
            } else if c == b'.' && !seen_dot && alphas == 0 {
                seen_dot = true;
            } else if (c == b'+' || c == b'-')
                && !hex
                && alphas == 1
                && matches!(last, b'e' | b'E')
                && self.at(i + 1).is_ascii_digit()
            {
            } else if !is_ident_char(c) {
                // Digits glued to letters (`1col`, `0x1F`, `1e5`) are all one
                // literal, whatever the dialect makes of them.
                break;
            }
            last = c;
            i += 1;
        }
        i
    }

    fn word(&self, start: usize) -> Step {
        let end = self.scan_while(start + 1, is_ident_char);
        if end == start + 1 {
            let quote = self.at(end) == b'\'';
            match self.b[start] {
                b'e' | b'E' if quote => return self.string(start, end, Escapes::Always),
                b'n' | b'N' | b'x' | b'X' | b'b' | b'B' if quote => {
                    return self.string(start, end, Escapes::Ambiguous);
                }
                b'u' | b'U' if self.at(end) == b'&' && self.at(end + 1) == b'\'' => {
                    return self.string(start, end + 1, Escapes::Ambiguous);
                }
                _ => {}
            }
        }
        Step::Tok(Tk::Word, end)
    }
}

impl Iterator for Lexer<'_> {
    type Item = Tok;

    fn next(&mut self) -> Option<Tok> {
        while !self.done {
            let start = self.pos;
            let Some(&c) = self.b.get(start) else {
                self.done = true;
                break;
            };
            if is_blank(c) {
                if c == b'\n' {
                    self.line_start = true;
                }
                self.space = true;
                self.pos += 1;
                continue;
            }
            match self.step(start, c) {
                Step::Skip(end) => {
                    self.pos = end.max(start + 1);
                    self.space = true;
                }
                Step::Tok(kind, end) => {
                    let end = end.max(start + 1);
                    let tok = Tok { kind, start, end, space: self.space };
                    self.pos = end;
                    self.space = false;
                    self.line_start = false;
                    return Some(tok);
                }
                Step::Rest(from) => {
                    self.done = true;
                    return Some(Tok { kind: Tk::Lit, start: from, end: self.b.len(), space: self.space });
                }
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------
// Emitter: tokens to normalized output tokens

/// Uppercase, sorted (binary search). Kept to words that are rarely column
/// names, since a keyword is uppercased wherever it appears.
#[rustfmt::skip]
const KEYWORDS: &[&str] = &[
    "ABORT", "ADD", "ALL", "ALTER", "ANALYZE", "AND", "ANY", "ARRAY", "AS", "ASC", "BEGIN",
    "BETWEEN", "BY", "CALL", "CASCADE", "CASE", "CHECK", "COLLATE", "COLUMN", "COMMIT",
    "CONFLICT", "CONSTRAINT", "COPY", "CREATE", "CROSS", "CURRENT_DATE", "CURRENT_TIME",
    "CURRENT_TIMESTAMP", "DATABASE", "DEFAULT", "DELETE", "DESC", "DESCRIBE", "DISTINCT", "DO",
    "DROP", "DUPLICATE", "ELSE", "END", "ESCAPE", "EXCEPT", "EXEC", "EXECUTE", "EXISTS",
    "EXPLAIN", "FETCH", "FILTER", "FOR", "FOREIGN", "FROM", "FULL", "GRANT", "GROUP", "HAVING",
    "IF", "IGNORE", "ILIKE", "IN", "INDEX", "INNER", "INSERT", "INTERSECT", "INTERVAL", "INTO",
    "IS", "ISOLATION", "JOIN", "KEY", "LATERAL", "LEFT", "LIKE", "LIMIT", "LOCK", "MATCHED",
    "MATERIALIZED", "MERGE", "NATURAL", "NOT", "NOTHING", "NOWAIT", "NULL", "NULLS", "OF",
    "OFFSET", "ON", "ONLY", "OPTIMIZE", "OR", "ORDER", "OUTER", "OVER", "PARTITION", "PRIMARY",
    "RECURSIVE", "REFERENCES", "RELEASE", "RENAME", "REPLACE", "RESET", "RETURNING", "REVOKE",
    "RIGHT", "ROLLBACK", "SAVEPOINT", "SELECT", "SET", "SHOW", "SIMILAR", "SOME", "START",
    "TABLE", "TEMPORARY", "THEN", "TO", "TRANSACTION", "TRUNCATE", "UNION", "UNIQUE", "UPDATE",
    "USING", "VACUUM", "VALUES", "VIEW", "WHEN", "WHERE", "WINDOW", "WITH", "WITHIN",
];

/// After these, a double-quoted token can only be a name.
#[rustfmt::skip]
const IDENT_AFTER: &[&str] = &[
    "FROM", "JOIN", "INTO", "UPDATE", "TABLE", "AS", "BY", "RETURNING", "INDEX", "VIEW",
    "EXISTS", "ONLY", "COLUMN", "CONSTRAINT", "REFERENCES", "USING", "WITH", "RECURSIVE",
    "TRUNCATE", "COPY", "CALL", "VACUUM", "ANALYZE", "OPTIMIZE", "DATABASE", "DESCRIBE",
];

/// Keywords that end a `SET a = …`, `ORDER BY …` or `VALUES …` clause.
#[rustfmt::skip]
const CLAUSE_END: &[&str] = &[
    "WHERE", "FROM", "RETURNING", "SELECT", "ON", "ORDER", "GROUP", "LIMIT", "OFFSET", "HAVING",
    "UNION", "INTERSECT", "EXCEPT", "JOIN", "USING", "WITH", "INTO", "WINDOW", "FETCH", "FOR",
    "DO", "UPDATE", "INSERT", "DELETE",
];

fn keyword(word: &str) -> Option<&'static str> {
    let mut buf = [0u8; 20];
    if word.len() > buf.len() || !word.is_ascii() {
        return None;
    }
    for (d, c) in buf.iter_mut().zip(word.bytes()) {
        *d = c.to_ascii_uppercase();
    }
    let upper = std::str::from_utf8(buf.get(..word.len())?).ok()?;
    KEYWORDS.binary_search(&upper).ok().and_then(|i| KEYWORDS.get(i).copied())
}

#[derive(Debug, Clone, Copy)]
enum Out<'a> {
    Q,
    Word(&'a str),
    /// Canonical uppercase form, original spelling.
    Kw(&'static str, &'a str),
    /// A quoted identifier, quotes included.
    Quoted(&'a str),
    Op(&'a str),
    Open {
        bracket: bool,
        space: bool,
    },
    /// `open` is the index of the matching `Open`, `usize::MAX` if unmatched.
    Close {
        bracket: bool,
        open: usize,
    },
    Comma,
    Dot,
    Semi,
}

impl<'a> Out<'a> {
    fn text(&self) -> &'a str {
        match *self {
            Out::Q => "?",
            Out::Word(s) | Out::Quoted(s) | Out::Op(s) => s,
            Out::Kw(k, _) => k,
            Out::Open { bracket: true, .. } => "[",
            Out::Open { .. } => "(",
            Out::Close { bracket: true, .. } => "]",
            Out::Close { .. } => ")",
            Out::Comma => ",",
            Out::Dot => ".",
            Out::Semi => ";",
        }
    }

    fn word(&self) -> Option<&'a str> {
        match *self {
            Out::Kw(k, _) => Some(k),
            Out::Word(w) => Some(w),
            _ => None,
        }
    }

    fn is_kw(&self, set: &[&str]) -> bool {
        matches!(self, Out::Kw(k, _) if set.contains(k))
    }

    fn is_name(&self) -> bool {
        matches!(self, Out::Word(_) | Out::Quoted(_))
    }

    /// Same rendering, ignoring bookkeeping (match indices, `(` spacing).
    fn same(&self, other: &Out<'_>) -> bool {
        match (self, other) {
            (Out::Open { bracket: a, .. }, Out::Open { bracket: b, .. })
            | (Out::Close { bracket: a, .. }, Out::Close { bracket: b, .. }) => a == b,
            _ => std::mem::discriminant(self) == std::mem::discriminant(other) && self.text() == other.text(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clause {
    Other,
    Set,
    By,
    Values,
}

#[derive(Debug)]
struct Frame {
    bracket: bool,
    open: usize,
    /// Only placeholders and commas so far.
    pure: bool,
    has_q: bool,
    /// Column list of `INSERT INTO t (…)`, `CREATE TABLE t (…)`, `KEY (…)`…
    ident_list: bool,
    clause: Clause,
}

struct Emitter<'a> {
    s: &'a str,
    out: Vec<Out<'a>>,
    /// frames[0] is the top level and is never popped.
    frames: Vec<Frame>,
}

impl<'a> Emitter<'a> {
    fn new(s: &'a str) -> Self {
        let base = Frame {
            bracket: false,
            open: usize::MAX,
            pure: false,
            has_q: false,
            ident_list: false,
            clause: Clause::Other,
        };
        Emitter { s, out: Vec::new(), frames: vec![base] }
    }

    fn text(&self, t: &Tok) -> &'a str {
        self.s.get(t.start..t.end).unwrap_or("")
    }

    fn top(&mut self) -> &mut Frame {
        let last = self.frames.len() - 1;
        &mut self.frames[last]
    }

    fn push(&mut self, t: Out<'a>) {
        let top = self.top();
        match t {
            Out::Q => top.has_q = true,
            // `;` is neutral so that dropping trailing ones cannot change
            // whether a list left open by the end of input collapses.
            Out::Comma | Out::Semi => {}
            Out::Kw(k, _) => {
                top.pure = false;
                top.clause = match k {
                    "SET" => Clause::Set,
                    "BY" => Clause::By,
                    "VALUES" => Clause::Values,
                    k if CLAUSE_END.contains(&k) => Clause::Other,
                    _ => top.clause,
                };
            }
            _ => top.pure = false,
        }
        self.out.push(t);
    }

    fn token(&mut self, t: Tok, next: Option<&Tok>) {
        let text = self.text(&t);
        match t.kind {
            Tk::Lit | Tk::Num | Tk::Param => self.push(Out::Q),
            Tk::Word if text.eq_ignore_ascii_case("true") || text.eq_ignore_ascii_case("false") => {
                self.push(Out::Q);
            }
            Tk::Word => match keyword(text) {
                Some(k) => self.push(Out::Kw(k, text)),
                None => self.push(Out::Word(text)),
            },
            Tk::Quoted => self.push(Out::Quoted(text)),
            Tk::DQuote if self.dquote_is_name(next) => self.push(Out::Quoted(text)),
            Tk::DQuote => self.push(Out::Q),
            Tk::Op => {
                let unary =
                    (text == "-" || text == "+") && next.is_some_and(|n| n.kind == Tk::Num) && !self.after_value();
                // `= -5` and `= 5` are the same statement shape.
                if !unary {
                    self.push(Out::Op(text));
                }
            }
            Tk::Open | Tk::OpenB => self.open(t.kind == Tk::OpenB, t.space),
            Tk::Close | Tk::CloseB => self.close(t.kind == Tk::CloseB),
            Tk::Comma => self.push(Out::Comma),
            Tk::Dot => self.push(Out::Dot),
            Tk::Semi => self.push(Out::Semi),
        }
    }

    /// Collapses lists left open by the end of input (a statement cut at
    /// 2 MiB in the middle of `IN (…`), as a `)` would have.
    fn finish(&mut self) {
        while self.frames.len() > 1 {
            let Some(frame) = self.frames.pop() else { break };
            if !(frame.pure && frame.has_q) {
                break;
            }
            self.out.truncate(frame.open + 1);
            self.out.push(Out::Q);
            self.top().has_q = true;
        }
    }

    fn after_value(&self) -> bool {
        match self.out.last() {
            Some(Out::Q | Out::Word(_) | Out::Quoted(_) | Out::Close { .. }) => true,
            Some(Out::Kw(k, _)) => *k == "NULL" || *k == "END",
            _ => false,
        }
    }

    /// Whether a double-quoted token stands where only a name can (so it is
    /// kept); anywhere else it may be a MySQL string and becomes `?`.
    fn dquote_is_name(&self, next: Option<&Tok>) -> bool {
        let prev = self.out.last();
        let next_kind = next.map(|n| n.kind);
        if matches!(prev, Some(Out::Dot)) || next_kind == Some(Tk::Dot) {
            return true;
        }
        if next.is_some_and(|n| n.kind == Tk::Open && !n.space) {
            return true;
        }
        if prev.is_some_and(|p| p.is_kw(IDENT_AFTER)) {
            return true;
        }
        let Some(top) = self.frames.last() else {
            return false;
        };
        let next_is_eq = next.is_some_and(|n| n.kind == Tk::Op && self.text(n) == "=");
        let after_comma = matches!(prev, Some(Out::Comma));
        if next_is_eq && (prev.is_some_and(|p| p.is_kw(&["SET"])) || (after_comma && top.clause == Clause::Set)) {
            return true;
        }
        if top.ident_list && (after_comma || matches!(prev, Some(Out::Open { .. }))) {
            return true;
        }
        after_comma && top.clause == Clause::By
    }

    fn opens_ident_list(&self) -> bool {
        let out = &self.out;
        let Some(last) = out.last() else {
            return false;
        };
        if last.is_kw(&["KEY", "UNIQUE", "USING", "CONFLICT", "INDEX"]) {
            return true;
        }
        if !last.is_name() {
            return false;
        }
        let mut j = out.len() - 1;
        // catalog.schema.table at most
        for _ in 0..3 {
            if j >= 2 && matches!(out[j - 1], Out::Dot) && out[j - 2].is_name() {
                j -= 2;
            }
        }
        j >= 1 && out[j - 1].is_kw(&["INTO", "TABLE", "VIEW", "EXISTS", "REFERENCES"])
    }

    fn open(&mut self, bracket: bool, space: bool) {
        let ident_list = !bracket && self.opens_ident_list();
        self.out.push(Out::Open { bracket, space });
        self.frames.push(Frame {
            bracket,
            open: self.out.len() - 1,
            pure: true,
            has_q: false,
            ident_list,
            clause: Clause::Other,
        });
    }

    fn close(&mut self, bracket: bool) {
        let matched = self.frames.len() > 1 && self.frames.last().is_some_and(|f| f.bracket == bracket);
        let Some(frame) = self.frames.pop_if(|_| matched) else {
            self.push(Out::Close { bracket, open: usize::MAX });
            return;
        };
        let g = frame.open;
        let collapsed = frame.pure && frame.has_q;
        if collapsed {
            self.out.truncate(g + 1);
            self.out.push(Out::Q);
        }
        self.out.push(Out::Close { bracket, open: g });
        let parent = self.top();
        if collapsed {
            parent.has_q = true;
        } else {
            parent.pure = false;
        }
        let in_values = parent.clause == Clause::Values;
        // `(?), (?)` and repeated VALUES rows keep one copy, so a batch of
        // any size has one fingerprint.
        if g >= 2
            && matches!(self.out[g - 1], Out::Comma)
            && let Out::Close { bracket: pb, open: p } = self.out[g - 2]
            && pb == bracket
            && p < g
            && (collapsed || in_values)
            && let (Some(a), Some(b)) = (self.out.get(p..g - 1), self.out.get(g..))
            && a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| x.same(y))
        {
            self.out.truncate(g - 1);
        }
    }
}

fn needs_space(a: &Out<'_>, b: &Out<'_>) -> bool {
    if matches!(b, Out::Close { .. } | Out::Comma | Out::Semi | Out::Dot) || matches!(a, Out::Open { .. } | Out::Dot) {
        return false;
    }
    let name_like = |t: &Out<'_>| matches!(t, Out::Word(_) | Out::Kw(..) | Out::Quoted(_));
    match (a, b) {
        // `#` followed by a blank would read back as a MySQL comment.
        (Out::Op("#"), _) => false,
        (Out::Op("::"), b) => !name_like(b),
        (a, Out::Op("::")) => !(name_like(a) || matches!(a, Out::Q | Out::Close { .. })),
        (a, Out::Open { bracket: true, .. }) => !(name_like(a) || matches!(a, Out::Close { .. })),
        (a, Out::Open { space, .. }) if name_like(a) => *space,
        _ => true,
    }
}

fn render(out: &[Out<'_>]) -> String {
    let mut end = out.len();
    while end > 0 && matches!(out[end - 1], Out::Semi) {
        end -= 1;
    }
    let mut text = String::with_capacity(end * 4);
    let mut prev: Option<&Out<'_>> = None;
    for t in &out[..end] {
        if prev.is_some_and(|p| needs_space(p, t)) {
            text.push(' ');
        }
        text.push_str(t.text());
        prev = Some(t);
    }
    text
}

// ---------------------------------------------------------------------------
// Kind and main table

fn classify<'a>(out: &[Out<'a>]) -> (StatementKind, Option<&'a str>) {
    let mut i = 0;
    let mut base = 0usize;
    while let Some(t) = out.get(i) {
        match t {
            Out::Open { bracket: false, .. } => base += 1,
            Out::Semi => {}
            _ => break,
        }
        i += 1;
    }
    let Some(first) = out.get(i).and_then(Out::word) else {
        return (StatementKind::Other, None);
    };
    let main = if first.eq_ignore_ascii_case("WITH") {
        const MAIN: &[&str] = &["SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "VALUES"];
        match find_top(out, i + 1, base, MAIN) {
            Some(j) => j,
            None => return (StatementKind::Other, None),
        }
    } else {
        i
    };
    let word = out.get(main).and_then(Out::word).unwrap_or("");
    let kind = StatementKind::from_keyword(word);
    let after = main + 1;
    let table = match kind {
        StatementKind::Select => {
            find_top(out, after, base, &["FROM"]).and_then(|f| table_after(out, f + 1, &["ONLY", "LATERAL"]))
        }
        // INSERT IGNORE INTO, INSERT OR REPLACE INTO, UPDATE ONLY, REPLACE INTO…
        StatementKind::Insert | StatementKind::Update => table_after(out, after, MODIFIERS),
        StatementKind::Delete => match find_top(out, after, base, &["FROM"]) {
            Some(f) => table_after(out, f + 1, &["ONLY"]),
            None => table_after(out, after, &["LOW_PRIORITY", "QUICK", "IGNORE"]),
        },
        StatementKind::Merge => table_after(out, after, &["INTO"]),
        StatementKind::Ddl if word.eq_ignore_ascii_case("TRUNCATE") => table_after(out, after, &["TABLE", "ONLY"]),
        StatementKind::Ddl => {
            let j = skip_words(out, after, &["OR", "REPLACE", "TEMPORARY", "TEMP", "UNLOGGED", "GLOBAL", "LOCAL"]);
            let is_table = out.get(j).and_then(Out::word).is_some_and(|w| w.eq_ignore_ascii_case("TABLE"));
            if is_table && !word.eq_ignore_ascii_case("COMMENT") {
                table_after(out, j + 1, &["IF", "NOT", "EXISTS", "ONLY"])
            } else {
                None
            }
        }
        StatementKind::Copy if word.eq_ignore_ascii_case("LOAD") => {
            find_top(out, after, base, &["INTO"]).and_then(|j| table_after(out, j + 1, &["TABLE"]))
        }
        StatementKind::Copy => table_after(out, after, &[]),
        StatementKind::Vacuum => {
            let mut j = after;
            // VACUUM (VERBOSE, ANALYZE) t
            if matches!(out.get(j), Some(Out::Open { .. })) {
                let close = out.iter().skip(j + 1).position(|t| matches!(t, Out::Close { open, .. } if *open == j));
                j = close.map_or(out.len(), |c| j + 2 + c);
            }
            table_after(
                out,
                j,
                &["FULL", "FREEZE", "VERBOSE", "ANALYZE", "TABLE", "NO_WRITE_TO_BINLOG", "LOCAL", "SKIP_LOCKED"],
            )
        }
        _ => None,
    };
    (kind, table)
}

#[rustfmt::skip]
const MODIFIERS: &[&str] = &[
    "INTO", "ONLY", "IGNORE", "LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "OR", "REPLACE", "ROLLBACK", "ABORT", "FAIL",
];

/// First keyword of `set` at nesting depth `base`, before the statement ends.
fn find_top(out: &[Out<'_>], from: usize, base: usize, set: &[&str]) -> Option<usize> {
    let mut depth = base;
    for (j, t) in out.iter().enumerate().skip(from) {
        match t {
            Out::Open { .. } => depth += 1,
            Out::Close { .. } => depth = depth.saturating_sub(1),
            Out::Semi if depth <= base => return None,
            t if depth == base && t.is_kw(set) => return Some(j),
            _ => {}
        }
    }
    None
}

fn skip_words(out: &[Out<'_>], from: usize, skip: &[&str]) -> usize {
    let mut j = from;
    while out.get(j).and_then(Out::word).is_some_and(|w| skip.iter().any(|s| w.eq_ignore_ascii_case(s))) {
        j += 1;
    }
    j
}

/// The last part of the (possibly qualified) name at `from`, after the words
/// in `skip`.
fn table_after<'a>(out: &[Out<'a>], from: usize, skip: &[&str]) -> Option<&'a str> {
    let mut j = skip_words(out, from, skip);
    let mut name = match out.get(j)? {
        Out::Word(w) | Out::Quoted(w) => *w,
        _ => return None,
    };
    while matches!(out.get(j + 1), Some(Out::Dot)) {
        match out.get(j + 2) {
            Some(Out::Word(w) | Out::Quoted(w) | Out::Kw(_, w)) => name = w,
            _ => break,
        }
        j += 2;
    }
    Some(name)
}

// ---------------------------------------------------------------------------
// Cache

/// Raw statements longer than this are normalized on every call, never stored.
const CACHE_MAX_SQL_LEN: usize = 16 * 1024;
/// Raw statements up to this long are stored verbatim to verify hits; longer
/// ones as their length and a 128-bit hash.
const CACHE_INLINE_SQL_LEN: usize = 1024;

/// A bounded, thread-safe map from raw statement text to its fingerprint, so
/// that each distinct text is normalized once.
///
/// Entries are spread over up to 16 shards, each a `Mutex` with CLOCK
/// (second-chance) eviction. Lookups are keyed by a per-cache seeded XXH3-64
/// of the raw text and verified against the stored text (or, above 1 KiB,
/// its length and a seeded XXH3-128), so a hash collision never returns
/// another statement's fingerprint.
///
/// Memory: at most `capacity` entries, each holding at most 1 KiB of raw
/// text, one [`Fingerprint`] (≤ [`MAX_TEXT_LEN`] bytes of text, ≤ 64 of
/// table) and about 150 bytes of overhead, so under `capacity × 5.3 KiB`.
/// Statements over 16 KiB are not cached at all.
pub struct FingerprintCache {
    shards: Box<[Mutex<Shard>]>,
    capacity: usize,
    key_seed: u64,
    check_seed: u64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The map keys are already uniform hashes; hashing them again is waste.
#[derive(Debug, Default)]
struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Check {
    Text(Box<str>),
    Hash { len: usize, hash: u128 },
}

impl Check {
    fn matches(&self, sql: &str, long_hash: Option<u128>) -> bool {
        match self {
            Check::Text(t) => **t == *sql,
            Check::Hash { len, hash } => *len == sql.len() && long_hash == Some(*hash),
        }
    }
}

#[derive(Debug)]
struct Slot {
    key: u64,
    check: Check,
    fp: Arc<Fingerprint>,
    referenced: bool,
}

#[derive(Debug)]
struct Shard {
    index: HashMap<u64, usize, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Slot>,
    cap: usize,
    hand: usize,
}

impl Shard {
    fn lookup(&mut self, key: u64, sql: &str, long_hash: Option<u128>) -> Option<Arc<Fingerprint>> {
        let i = *self.index.get(&key)?;
        let slot = self.slots.get_mut(i)?;
        if !slot.check.matches(sql, long_hash) {
            return None;
        }
        slot.referenced = true;
        Some(Arc::clone(&slot.fp))
    }

    fn insert(&mut self, key: u64, check: Check, fp: Arc<Fingerprint>) -> Arc<Fingerprint> {
        if self.cap == 0 {
            return fp;
        }
        let new = Slot { key, check, fp: Arc::clone(&fp), referenced: false };
        if let Some(slot) = self.index.get(&key).and_then(|&i| self.slots.get_mut(i)) {
            if slot.check == new.check {
                // Another thread normalized the same text meanwhile: share it.
                slot.referenced = true;
                return Arc::clone(&slot.fp);
            }
            // Same 64-bit key, different text: the newer one takes the slot.
            *slot = new;
            return fp;
        }
        if self.slots.len() < self.cap {
            self.index.insert(key, self.slots.len());
            self.slots.push(new);
            return fp;
        }
        // CLOCK: one sweep clears every bit, so this ends within two sweeps.
        for _ in 0..=2 * self.slots.len() {
            let i = self.hand;
            self.hand = (self.hand + 1) % self.slots.len();
            let Some(victim) = self.slots.get_mut(i) else { break };
            if victim.referenced {
                victim.referenced = false;
                continue;
            }
            self.index.remove(&victim.key);
            self.index.insert(key, i);
            *victim = new;
            break;
        }
        fp
    }
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    // No critical section can leave a shard inconsistent, so a panic
    // elsewhere while holding the lock is no reason to stop caching.
    shard.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FingerprintCache {
    /// A cache holding at most `capacity` fingerprints (0 disables caching).
    pub fn new(capacity: usize) -> Self {
        let mut shard_count = 16;
        while shard_count > 1 && capacity < shard_count * 64 {
            shard_count /= 2;
        }
        let shards = (0..shard_count)
            .map(|i| {
                let cap = capacity / shard_count + usize::from(i < capacity % shard_count);
                Mutex::new(Shard {
                    index: HashMap::with_capacity_and_hasher(cap.min(1024), BuildHasherDefault::default()),
                    slots: Vec::with_capacity(cap.min(1024)),
                    cap,
                    hand: 0,
                })
            })
            .collect();
        // Seeds unknown to callers keep crafted collisions from being useful.
        let state = RandomState::new();
        FingerprintCache {
            shards,
            capacity,
            key_seed: state.hash_one(1u8),
            check_seed: state.hash_one(2u8),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The fingerprint of `sql`: the cached `Arc` when this exact text was
    /// seen and is still cached, otherwise a fresh normalization (stored when
    /// `sql` is at most 16 KiB).
    pub fn get(&self, sql: &str) -> Arc<Fingerprint> {
        if self.capacity == 0 || sql.len() > CACHE_MAX_SQL_LEN {
            self.misses.fetch_add(1, Ordering::Relaxed);
            return Arc::new(Fingerprint::of(sql));
        }
        let key = xxh3_64_with_seed(sql.as_bytes(), self.key_seed);
        let long_hash = (sql.len() > CACHE_INLINE_SQL_LEN).then(|| xxh3_128_with_seed(sql.as_bytes(), self.check_seed));
        // Bits 32..36: the map uses the low bits for buckets and the top 7
        // for tags, so these stay independent of both.
        let shard = &self.shards[(key >> 32) as usize & (self.shards.len() - 1)];
        if let Some(fp) = lock(shard).lookup(key, sql, long_hash) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return fp;
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        // Normalize outside the lock; a racing thread is resolved in insert.
        let fp = Arc::new(Fingerprint::of(sql));
        let check = match long_hash {
            Some(hash) => Check::Hash { len: sql.len(), hash },
            None => Check::Text(sql.into()),
        };
        lock(shard).insert(key, check, fp)
    }

    /// Number of cached fingerprints (takes every shard lock in turn).
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| lock(s).slots.len()).sum()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The maximum number of cached fingerprints.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Lookups answered from the cache.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Lookups that had to normalize (including uncacheable statements).
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for FingerprintCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FingerprintCache")
            .field("capacity", &self.capacity)
            .field("shards", &self.shards.len())
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish_non_exhaustive()
    }
}
