//! Data-driven fingerprint tests: SQL in, normalized text, kind and table out;
//! hostile inputs; and properties that no literal survives and that
//! normalizing is stable.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

fn norm(sql: &str) -> String {
    Fingerprint::of(sql).text().to_owned()
}

/// (input, normalized text)
const CASES: &[(&str, &str)] = &[
    // comments
    ("SELECT a -- trailing\nFROM t", "SELECT a FROM t"),
    ("SELECT a --\nFROM t", "SELECT a FROM t"),
    ("SELECT /* c */ a FROM t", "SELECT a FROM t"),
    ("SELECT/**/a/**/FROM/**/t", "SELECT a FROM t"),
    ("SELECT /* a /* nested */ still */ a FROM t", "SELECT a FROM t"),
    ("SELECT a FROM t /* unterminated", "SELECT a FROM t"),
    ("SELECT a FROM t /* a /* b */ unterminated", "SELECT a FROM t"),
    ("SELECT a FROM t # mysql comment\nWHERE b = 1", "SELECT a FROM t WHERE b = ?"),
    ("# leading\nSELECT 1", "SELECT ?"),
    ("SELECT 1\n  # indented line comment\n", "SELECT ?"),
    ("SELECT a#b FROM t", "SELECT a #b FROM t"),
    ("SELECT a #> '{x}' FROM t", "SELECT a #> ? FROM t"),
    ("SELECT '-- not a comment', '/* nor */' FROM t", "SELECT ?, ? FROM t"),
    ("SELECT a /* 'quoted' \"words\" */ FROM t", "SELECT a FROM t"),
    ("SELECT a -- it's\nFROM t", "SELECT a FROM t"),
    // whitespace and case
    ("  SELECT\n\t a ,b\r\n FROM   t  ", "SELECT a, b FROM t"),
    ("select Name, t1.col_2 from Users", "SELECT Name, t1.col_2 FROM Users"),
    ("SELECT a\0FROM t", "SELECT a FROM t"),
    ("SELECT 1;", "SELECT ?"),
    ("SELECT 1; SELECT 2;;", "SELECT ?; SELECT ?"),
    ("", ""),
    (" \n\t ", ""),
    // strings
    ("SELECT 'abc' FROM t", "SELECT ? FROM t"),
    ("SELECT 'it''s' FROM t", "SELECT ? FROM t"),
    ("SELECT E'\\\\', E'a\\'b' FROM t", "SELECT ?, ? FROM t"),
    ("SELECT 'a\\\\' FROM t", "SELECT ? FROM t"),
    ("SELECT N'x', X'1F', B'101', n'y', U&'d\\0061t' FROM t", "SELECT ?, ?, ?, ?, ? FROM t"),
    ("SELECT '日本語', 'emoji 😀' FROM t", "SELECT ?, ? FROM t"),
    ("SELECT 'unterminated FROM t", "SELECT ?"),
    ("SELECT DATE '2024-01-01', INTERVAL '1 day'", "SELECT DATE ?, INTERVAL ?"),
    // backslash before a quote: the two dialects disagree, the rest goes
    ("SELECT 'a\\'b' FROM t WHERE x = 1", "SELECT ?"),
    ("SELECT a FROM t WHERE p = 'C:\\' AND q = 'x'", "SELECT a FROM t WHERE p = ?"),
    // dollar quoting
    ("SELECT $$abc$$, $tag$a $ b $x$ c$tag$ FROM t", "SELECT ?, ? FROM t"),
    ("SELECT $$ unterminated", "SELECT ?"),
    ("SELECT a$b, $ FROM t", "SELECT a$b, $ FROM t"),
    // numbers
    ("SELECT 42, 3.14, .5, 1e10, 1.5E-3, 0x1F, 0b101, 5. FROM t", "SELECT ?, ?, ?, ?, ?, ?, ?, ? FROM t"),
    ("SELECT t1.c2, col_2 FROM t1", "SELECT t1.c2, col_2 FROM t1"),
    ("SELECT * FROM t WHERE a = -5 AND b = +5", "SELECT * FROM t WHERE a = ? AND b = ?"),
    ("SELECT a - 5, a-5, 1-5, (a)-5, -a FROM t", "SELECT a - ?, a - ?, ? - ?, (a) - ?, - a FROM t"),
    ("SELECT * FROM t WHERE a<-5", "SELECT * FROM t WHERE a < ?"),
    ("SELECT CASE WHEN a THEN -1 ELSE - 2 END - 3", "SELECT CASE WHEN a THEN ? ELSE ? END - ?"),
    ("SELECT TRUE, false, NULL FROM t", "SELECT ?, ?, NULL FROM t"),
    // placeholders
    ("SELECT * FROM t WHERE a = $1 AND b = ? AND c = ?2", "SELECT * FROM t WHERE a = ? AND b = ? AND c = ?"),
    (
        "SELECT * FROM t WHERE a = :name AND b = %s AND c = %(c)s AND d = @p1",
        "SELECT * FROM t WHERE a = ? AND b = ? AND c = ? AND d = ?",
    ),
    ("SELECT a::text, b :: int FROM t", "SELECT a::text, b::int FROM t"),
    ("SELECT @@session.sql_mode", "SELECT @@session.sql_mode"),
    // operators and spacing
    ("SELECT a->>'k', b||c, d<>e, count(*), t.* FROM t", "SELECT a ->> ?, b || c, d <> e, count(*), t.* FROM t"),
    ("SELECT f (a), f(b) FROM t", "SELECT f (a), f(b) FROM t"),
    ("SELECT a[1], ARRAY[1,2], ARRAY [3] FROM t", "SELECT a[?], ARRAY[?], ARRAY[?] FROM t"),
    // double quotes
    ("SELECT * FROM users WHERE name = \"secret\"", "SELECT * FROM users WHERE name = ?"),
    ("SELECT \"user\".\"id\" FROM \"user\"", "SELECT \"user\".\"id\" FROM \"user\""),
    ("INSERT INTO t (a, b) VALUES (\"x\", \"y\")", "INSERT INTO t (a, b) VALUES (?)"),
    ("INSERT INTO \"t\" (\"a\", \"b\") VALUES ($1, $2)", "INSERT INTO \"t\" (\"a\", \"b\") VALUES (?)"),
    (
        "UPDATE \"t\" SET \"a\" = \"x\", \"b\" = 2 WHERE \"t\".\"id\" = 1",
        "UPDATE \"t\" SET \"a\" = ?, \"b\" = ? WHERE \"t\".\"id\" = ?",
    ),
    ("SELECT a AS \"A\" FROM t ORDER BY \"b\", \"c\" DESC", "SELECT a AS \"A\" FROM t ORDER BY \"b\", \"c\" DESC"),
    ("SELECT \"f\"(1), \"x\" FROM t", "SELECT \"f\"(?), ? FROM t"),
    (
        "SELECT * FROM a JOIN b ON (\"a\".\"id\" = \"b\".\"a_id\") WHERE x LIKE \"%s%\"",
        "SELECT * FROM a JOIN b ON (\"a\".\"id\" = \"b\".\"a_id\") WHERE x LIKE ?",
    ),
    ("SELECT CASE WHEN a = 1 THEN \"p\" ELSE \"q\" END FROM t", "SELECT CASE WHEN a = ? THEN ? ELSE ? END FROM t"),
    ("SELECT * FROM t WHERE a IN (\"x\", \"y\")", "SELECT * FROM t WHERE a IN (?)"),
    ("SELECT t.\"naïve\", \"naïve\" FROM t", "SELECT t.\"naïve\", ? FROM t"),
    ("SELECT \"unterminated FROM t", "SELECT ?"),
    ("SELECT \"a\\\"b\" FROM t", "SELECT ?"),
    (
        "CREATE TABLE \"t\" (\"id\" int DEFAULT \"x\", PRIMARY KEY (\"id\"))",
        "CREATE TABLE \"t\" (\"id\" int DEFAULT ?, PRIMARY KEY (\"id\"))",
    ),
    // backticks
    ("SELECT `a`, `b``c` FROM `db`.`t` WHERE `a` = 'x'", "SELECT `a`, `b``c` FROM `db`.`t` WHERE `a` = ?"),
    ("SELECT `unterminated, 'x' FROM t", "SELECT ?"),
    // lists
    ("SELECT * FROM t WHERE a IN (1, 2, 3)", "SELECT * FROM t WHERE a IN (?)"),
    ("SELECT * FROM t WHERE a IN (4)", "SELECT * FROM t WHERE a IN (?)"),
    ("SELECT * FROM t WHERE (a, b) IN ((1, 2), (3, 4))", "SELECT * FROM t WHERE (a, b) IN (?)"),
    ("INSERT INTO t (a, b) VALUES (1, 'a'), (2, 'b')", "INSERT INTO t (a, b) VALUES (?)"),
    ("INSERT INTO t (a, b) VALUES (3, 'c')", "INSERT INTO t (a, b) VALUES (?)"),
    ("INSERT INTO t VALUES (1, now()), (2, now())", "INSERT INTO t VALUES (?, now())"),
    ("INSERT INTO t VALUES (1, now()), (2, 3)", "INSERT INTO t VALUES (?, now()), (?)"),
    ("SELECT f(), g(1, 2), h(a, 1) FROM t", "SELECT f(), g(?), h(a, ?) FROM t"),
    ("SELECT ARRAY[[1, 2], [3, 4]]", "SELECT ARRAY[?]"),
    (
        "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = 1)",
        "SELECT * FROM t WHERE a IN (SELECT b FROM u WHERE c = ?)",
    ),
    ("SELECT (((1)))", "SELECT (?)"),
    ("SELECT (]) [)", "SELECT (])[)"),
    // schema prefix stays in the text
    ("SELECT * FROM public.users", "SELECT * FROM public.users"),
    // BOM
    ("\u{feff}SELECT 1", "SELECT ?"),
];

#[test]
fn normalization_cases() {
    let mut failures = Vec::new();
    for (input, expected) in CASES {
        let got = norm(input);
        if got != *expected {
            failures.push(format!("{input:?}\n   got {got:?}\n  want {expected:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn normalization_cases_are_idempotent() {
    for (input, _) in CASES {
        let fp = Fingerprint::of(input);
        assert_eq!(Fingerprint::of(fp.text()).text(), fp.text(), "{input:?}");
    }
}

/// (input, kind, table)
const KINDS: &[(&str, StatementKind, Option<&str>)] = &[
    ("SELECT 1", StatementKind::Select, None),
    ("select * from public.users u where id = 1", StatementKind::Select, Some("users")),
    ("SELECT * FROM \"public\".\"Users\"", StatementKind::Select, Some("Users")),
    ("SELECT * FROM `db`.`orders`", StatementKind::Select, Some("orders")),
    ("SELECT extract(year FROM ts) FROM events", StatementKind::Select, Some("events")),
    ("SELECT * FROM (SELECT 1 FROM x) s", StatementKind::Select, None),
    ("SELECT * FROM ONLY parent", StatementKind::Select, Some("parent")),
    ("(SELECT a FROM t) UNION (SELECT a FROM u)", StatementKind::Select, Some("t")),
    ("/* app:web */ select 1", StatementKind::Select, None),
    ("VALUES (1), (2)", StatementKind::Select, None),
    ("WITH x AS (SELECT * FROM a) SELECT * FROM x JOIN b ON true", StatementKind::Select, Some("x")),
    ("WITH x AS (SELECT id FROM a) DELETE FROM b WHERE id IN (SELECT id FROM x)", StatementKind::Delete, Some("b")),
    (
        "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n FROM r",
        StatementKind::Select,
        Some("r"),
    ),
    ("WITH u AS (UPDATE t SET a = 1 RETURNING *) INSERT INTO log SELECT * FROM u", StatementKind::Insert, Some("log")),
    ("WITH x AS (SELECT 1)", StatementKind::Other, None),
    ("INSERT INTO users (a) VALUES (1)", StatementKind::Insert, Some("users")),
    ("INSERT IGNORE INTO logs VALUES (1)", StatementKind::Insert, Some("logs")),
    ("INSERT OR REPLACE INTO kv VALUES (1)", StatementKind::Insert, Some("kv")),
    ("REPLACE INTO kv VALUES (1)", StatementKind::Insert, Some("kv")),
    ("INSERT INTO \"s\".\"t\" (\"a\") VALUES ($1)", StatementKind::Insert, Some("t")),
    ("UPDATE accounts SET x = 1", StatementKind::Update, Some("accounts")),
    ("UPDATE ONLY app.accounts SET x = 1", StatementKind::Update, Some("accounts")),
    ("DELETE FROM sessions WHERE id = 1", StatementKind::Delete, Some("sessions")),
    ("DELETE t1 FROM t1 JOIN t2 ON t1.id = t2.id", StatementKind::Delete, Some("t1")),
    ("MERGE INTO target t USING src s ON t.id = s.id WHEN MATCHED THEN DELETE", StatementKind::Merge, Some("target")),
    ("CREATE TABLE IF NOT EXISTS app.items (id int)", StatementKind::Ddl, Some("items")),
    ("CREATE TEMPORARY TABLE tmp (id int)", StatementKind::Ddl, Some("tmp")),
    ("ALTER TABLE items ADD COLUMN x int", StatementKind::Ddl, Some("items")),
    ("DROP TABLE IF EXISTS \"Items\"", StatementKind::Ddl, Some("Items")),
    ("CREATE INDEX i ON items (x)", StatementKind::Ddl, None),
    ("TRUNCATE TABLE items", StatementKind::Ddl, Some("items")),
    ("TRUNCATE items", StatementKind::Ddl, Some("items")),
    ("COPY items (a, b) FROM STDIN", StatementKind::Copy, Some("items")),
    ("COPY (SELECT 1) TO STDOUT", StatementKind::Copy, None),
    ("LOAD DATA INFILE 'f' INTO TABLE items", StatementKind::Copy, Some("items")),
    ("VACUUM (VERBOSE, ANALYZE) items", StatementKind::Vacuum, Some("items")),
    ("VACUUM FULL items", StatementKind::Vacuum, Some("items")),
    ("VACUUM", StatementKind::Vacuum, None),
    ("ANALYZE items", StatementKind::Vacuum, Some("items")),
    ("OPTIMIZE TABLE items", StatementKind::Vacuum, Some("items")),
    ("BEGIN", StatementKind::Transaction, None),
    ("START TRANSACTION ISOLATION LEVEL SERIALIZABLE", StatementKind::Transaction, None),
    ("COMMIT", StatementKind::Transaction, None),
    ("ROLLBACK TO SAVEPOINT a", StatementKind::Transaction, None),
    ("SAVEPOINT a", StatementKind::Transaction, None),
    ("RELEASE SAVEPOINT a", StatementKind::Transaction, None),
    ("SET search_path TO public", StatementKind::Set, None),
    ("SHOW TABLES", StatementKind::Show, None),
    ("EXPLAIN ANALYZE SELECT * FROM t", StatementKind::Explain, None),
    ("CALL proc(1)", StatementKind::Call, None),
    ("LISTEN chan", StatementKind::Other, None),
    ("", StatementKind::Other, None),
    ("42", StatementKind::Other, None),
];

#[test]
fn kinds_and_tables() {
    let mut failures = Vec::new();
    for (input, kind, table) in KINDS {
        let fp = Fingerprint::of(input);
        if fp.kind() != *kind || fp.table() != *table {
            failures.push(format!("{input:?}: got {:?} {:?}, want {kind:?} {table:?}", fp.kind(), fp.table()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn table_is_capped_at_a_char_boundary() {
    let name = "é".repeat(40);
    let fp = Fingerprint::of(&format!("SELECT * FROM {name}"));
    let table = fp.table().unwrap();
    assert_eq!(table.len(), 64);
    assert!(name.starts_with(table));
}

#[test]
fn same_shape_same_id() {
    let groups: &[&[&str]] = &[
        &["SELECT * FROM t WHERE a IN (1, 2, 3)", "select *\nfrom t where a in (4) -- x"],
        &["INSERT INTO t VALUES (1, 'a'), (2, 'b')", "INSERT INTO t VALUES (3, 'c');"],
        &["SELECT a=1", "SELECT a = -2", "SELECT a = 'x'", "SELECT a = $1", "SELECT a = TRUE"],
    ];
    for group in groups {
        let ids: Vec<_> = group.iter().map(|s| Fingerprint::of(s).id()).collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{group:?}");
    }
    assert_ne!(Fingerprint::of("SELECT a FROM t").id(), Fingerprint::of("SELECT b FROM t").id());
}

#[test]
fn id_is_stable_and_displayed_as_hex() {
    let fp = Fingerprint::of("select 1");
    assert_eq!(fp.text(), "SELECT ?");
    assert_eq!(fp.id(), FingerprintId(xxh3_64(b"SELECT ?")));
    let hex = fp.id().to_string();
    assert_eq!(hex.len(), 16);
    assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    assert_eq!(FingerprintId(0xab).to_string(), "00000000000000ab");
}

#[test]
fn serde_shapes() {
    let id = FingerprintId(0x0123_4567_89ab_cdef);
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(json, "\"0123456789abcdef\"");
    assert_eq!(serde_json::from_str::<FingerprintId>(&json).unwrap(), id);
    assert_eq!(serde_json::from_str::<FingerprintId>("\"0123456789ABCDEF\"").unwrap(), id);
    for bad in ["\"123\"", "\"0123456789abcdeg\"", "\"+123456789abcdef\"", "17"] {
        assert!(serde_json::from_str::<FingerprintId>(bad).is_err(), "{bad}");
    }

    let fp = Fingerprint::of("DELETE FROM s.users WHERE id = 7");
    let v = serde_json::to_value(&fp).unwrap();
    assert_eq!(v["id"], fp.id().to_string());
    assert_eq!(v["text"], "DELETE FROM s.users WHERE id = ?");
    assert_eq!(v["kind"], "delete");
    assert_eq!(v["table"], "users");
    assert_eq!(serde_json::to_value(Fingerprint::of("SELECT 1")).unwrap()["table"], serde_json::Value::Null);

    for kind in StatementKind::ALL {
        let json = serde_json::to_string(&kind).unwrap();
        assert_eq!(json, format!("\"{}\"", kind.as_str()));
        assert_eq!(serde_json::from_str::<StatementKind>(&json).unwrap(), kind);
        assert_eq!(kind.to_string(), kind.as_str());
    }
}

#[test]
fn other_bucket() {
    let other = Fingerprint::other();
    assert_eq!(other.id(), FingerprintId(0));
    assert_eq!(other.kind(), StatementKind::Other);
    assert_eq!(other.table(), None);
    assert_ne!(Fingerprint::of(other.text()).text(), other.text());
    assert_ne!(Fingerprint::of("").id(), FingerprintId(0));
}

#[test]
fn keyword_tables_are_consistent() {
    assert!(KEYWORDS.windows(2).all(|w| w[0] < w[1]), "KEYWORDS must be sorted and unique");
    for k in KEYWORDS {
        assert_eq!(*k, k.to_ascii_uppercase());
        assert!(k.len() <= 20);
    }
    for k in IDENT_AFTER.iter().chain(CLAUSE_END) {
        assert!(KEYWORDS.contains(k), "{k} must be a keyword");
    }
    assert_eq!(keyword("select"), Some("SELECT"));
    assert_eq!(keyword("sélect"), None);
}

#[test]
fn long_text_is_capped_but_id_covers_everything() {
    let cols: Vec<String> = (0..2000).map(|i| format!("colonne_é{i}")).collect();
    let sql = format!("SELECT {} FROM t", cols.join(", "));
    let fp = Fingerprint::of(&sql);
    assert!(fp.text().len() <= MAX_TEXT_LEN);
    assert!(fp.text().ends_with('…'));
    let other = Fingerprint::of(&sql.replace("colonne_é1999", "colonne_é2000"));
    assert_eq!(fp.text(), other.text());
    assert_ne!(fp.id(), other.id());
}

// ---------------------------------------------------------------------------
// Hostile input

/// Literal fragments that must never appear in any output.
const SECRETS: &[&str] = &["zq", "98765", "sekrit", "日本", "naïve", "😀"];

fn assert_clean(sql: &str) {
    let fp = Fingerprint::of(sql);
    for secret in SECRETS {
        assert!(!fp.text().contains(secret), "{secret:?} leaked from {sql:?}: {:?}", fp.text());
        assert!(!fp.table().unwrap_or("").contains(secret), "{secret:?} leaked into table from {sql:?}");
    }
}

#[test]
fn hostile_inputs_leak_nothing() {
    let inputs = [
        "SELECT 'it''s zq1' FROM t",
        "SELECT 'a\\'zq2' FROM t WHERE b = 'zq3'",
        "SELECT E'\\\\' , 'zq4' FROM t",
        "SELECT E'zq\\'s' , 'zq5' FROM t",
        "SELECT 'C:\\' AS p, 'zq6' AS q",
        "SELECT \"C:\\\" AS p, \"zq7\" AS q",
        "SELECT $$zq8 $ 'x' $$, $t$ zq9 $$ $t$, 'zq10'",
        "SELECT $a$ zq $b$ zq $a$ FROM t",
        "SELECT '/* zq11', '-- zq12' FROM t",
        "SELECT /* 'zq13 */ 1, 'zq14' FROM t",
        "SELECT /* /* */ 'zq15 */' , 'zq16' FROM t",
        "SELECT a FROM t -- zq17' \n WHERE b = 'zq18'",
        "SELECT a FROM t #it's zq19\n WHERE b = 'zq20'",
        "SELECT a FROM t # don't\n WHERE b = 'zq21'",
        "SELECT a --x'\n, 'zq22' FROM t",
        "SELECT a #> E'x\\'y' 'z\nzq' FROM t",
        "SELECT a # \"it's\" 'z\nzq'",
        "SELECT a#b 'x\\' 'zq'",
        "SELECT a /* /* */ 'x\\' */ 'zq' FROM t",
        "SELECT 'unterminated zq23",
        "SELECT \"unterminated zq24",
        "SELECT `unterminated, 'zq25'",
        "SELECT /* unterminated zq26",
        "SELECT $$ unterminated zq27",
        "SELECT '日本語', 'naïve', '😀' FROM t WHERE x = \"日本\"",
        "SELECT 'sekrit\0zq' FROM t WHERE a = 98765",
        "SELECT * FROM t WHERE name = \"sekrit\"",
        "INSERT INTO t (a, b) VALUES (\"sekrit\", \"zq\")",
        "SELECT * FROM t WHERE a = -98765.5e-3 OR b = 0x98765 OR c = .98765 OR d = 98765abc",
        "SELECT * FROM t WHERE a = N'zq' AND b = X'98765' AND c = U&'zq'",
        "SELECT * FROM t WHERE a LIKE \"%zq%\" OR b IN (\"zq\", 'zq', 98765)",
        "UPDATE t SET a = \"zq\", b = 'zq' WHERE c = \"zq\"",
        "SELECT CASE WHEN a THEN \"zq\" ELSE \"zq\" END",
        "SELECT 1 FROM t WHERE a = 'x\\\\' AND b = 'zq'",
        "SELECT * FROM t WHERE a = 'x''\\'' AND b = 'zq'",
        "'''''''''zq",
        "'''''''''zq'",
        "\"\"\"\"\"zq\"",
        "`````zq",
        "$$$zq$$",
        "$$$$$$$ zq",
        "\\'zq'",
        "SELECT a FROM t /* \n #'zq' */ WHERE b = 'zq'",
        "SELECT 98765",
        "SELECT -98765",
        "SELECT 1.98765",
    ];
    for sql in inputs {
        assert_clean(sql);
    }
}

#[test]
fn quotes_only_and_tiny_inputs() {
    for n in 0..40 {
        for q in ["'", "\"", "`", "$", "\\", "/*", "*/", "--", "#", "(", ")", "$$"] {
            let s = q.repeat(n);
            let _ = Fingerprint::of(&s);
            let _ = Fingerprint::of(&format!("{s}zq"));
            assert_clean(&format!("SELECT '{}zq' FROM t", s.replace('\'', "''")));
        }
    }
    for s in ["", " ", "\n", "\0", "\0\0\0", "'", "\"", "`", "$", "E'", "U&'", "%(", "@", ":", "?", "."] {
        let fp = Fingerprint::of(s);
        assert!(!fp.text().contains("zq"));
    }
}

fn assert_quick(label: &str, start: Instant) {
    // Generous: debug build on a shared machine; quadratic behaviour on a
    // megabyte would take minutes.
    assert!(start.elapsed() < Duration::from_secs(20), "{label} took {:?}", start.elapsed());
}

#[test]
fn megabyte_insert_collapses_quickly() {
    let mut sql = String::from("INSERT INTO events (id, name, payload) VALUES ");
    for i in 0..50_000 {
        if i > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("({i}, 'zq{i}', 'x')"));
    }
    assert!(sql.len() > 1_000_000);
    let start = Instant::now();
    let fp = Fingerprint::of(&sql);
    assert_quick("1 MB insert", start);
    assert_eq!(fp.text(), "INSERT INTO events (id, name, payload) VALUES (?)");
    assert_eq!(fp.id(), Fingerprint::of("INSERT INTO events (id, name, payload) VALUES (1, 'a', 'b')").id());
    assert_eq!(fp.table(), Some("events"));
}

#[test]
fn deep_and_pathological_inputs() {
    let nested = format!("SELECT {}1{}", "(".repeat(10_000), ")".repeat(10_000));
    let start = Instant::now();
    assert_eq!(norm(&nested), "SELECT (?)");
    assert!(norm(&"(".repeat(10_000)).starts_with("(((("));
    assert_eq!(norm("SELECT * FROM t WHERE a IN ((1, 2), (3"), "SELECT * FROM t WHERE a IN (?");
    let _ = norm(&")".repeat(10_000));
    let _ = norm(&"[(".repeat(10_000));
    let _ = norm(&"/*".repeat(100_000));
    let _ = norm(&format!("{}{}", "/*".repeat(10_000), "*/".repeat(9_999)));
    assert_quick("nesting", start);

    // Many `#` on one long line: the line's quote count must not be redone.
    let start = Instant::now();
    let _ = norm(&"a#".repeat(300_000));
    let _ = norm(&"a--x ".repeat(100_000));
    let _ = norm(&"'".repeat(1_000_000));
    let _ = norm(&"a.".repeat(300_000));
    let _ = norm(&"(1),".repeat(200_000));
    let _ = norm(&"((1),(1)),".repeat(100_000));
    assert_quick("long lines", start);

    // Over the 2 MiB cap: the head is normalized, the rest is one `?`.
    let big = format!("SELECT a FROM t WHERE b IN ({}'zq')", "1, ".repeat(800_000));
    let start = Instant::now();
    let fp = Fingerprint::of(&big);
    assert_quick("cap", start);
    assert_eq!(fp.text(), "SELECT a FROM t WHERE b IN (?");
    assert_eq!(fp.table(), Some("t"));
}

#[test]
fn never_splits_characters() {
    let pieces = ["é", "日本", "😀", "'", "\"", "`", "$", "-", "#", "/*", "a", "1", " ", "\n", "(", ")", "\\", "?"];
    // Every pair and triple, so every byte-level boundary case is exercised.
    for a in pieces {
        for b in pieces {
            for c in pieces {
                let _ = Fingerprint::of(&format!("{a}{b}{c}"));
                let _ = Fingerprint::of(&format!("SELECT {a}{b}{c} FROM x"));
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Properties

const STRUCTURE: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "LIKE",
    "AS",
    "JOIN",
    "ON",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "ORDER",
    "BY",
    "GROUP",
    "LIMIT",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "WITH",
    "ARRAY",
    "select",
    "from",
    "t",
    "users",
    "t1",
    "col_2",
    "Name",
    "\"user\"",
    "\"Mixed Case\"",
    "`col`",
    "naive",
    "(",
    ")",
    "(",
    ")",
    "[",
    "]",
    ",",
    ",",
    ".",
    "=",
    "<",
    ">",
    "<=",
    "<>",
    "-",
    "+",
    "*",
    "/",
    "||",
    "::",
    ";",
    "$1",
    "?",
    ":name",
    "%s",
    "%(k)s",
    "@p1",
    "count(*)",
    "f(",
    "E",
    "N",
    "\\",
    "$",
    "%",
    "#",
    "a#b",
    "#>",
    "--x",
    "/* c */",
];

/// Comments and literals that both dialects read the same way.
fn literal() -> impl Strategy<Value = String> {
    (0u32..1_000_000, 0usize..15).prop_map(|(n, form)| match form {
        0 => format!("'v{n}'"),
        1 => format!("'it''s {n}'"),
        2 => format!("E'a\\\\{n}'"),
        3 => format!("'{n}\\\\'"),
        4 => format!("$$ {n} $ $$"),
        5 => format!("$tg$ {n} $tg$"),
        6 => format!("N'{n}'"),
        7 => format!("{n}"),
        8 => format!("{n}.5e-3"),
        9 => format!("0x{n:x}"),
        10 => format!("/* {n} */"),
        11 => format!("-- {n}\n"),
        12 => format!("'日本 {n} 😀'"),
        13 => "TRUE".to_owned(),
        _ => format!("= \"{n}\" AND"),
    })
}

/// Literals embedding the `zq` / `98765` markers, including forms the
/// dialects disagree on.
fn marked() -> impl Strategy<Value = String> {
    (0u32..1_000_000, 0usize..21).prop_map(|(n, form)| {
        let m = format!("zq{n}");
        match form {
            0 => format!("'{m}'"),
            1 => format!("'{m} it''s'"),
            2 => format!("E'{m}\\\\'"),
            3 => format!("'{m}\\\\'"),
            4 => format!("$${m}$$"),
            5 => format!("$tg${m} $ $t$tg$"),
            6 => format!("N'{m}'"),
            7 => format!("= \"{m}\" AND"),
            8 => format!("'{m}\\'x {m}'"),
            9 => format!("98765{n}"),
            10 => format!("98765.{n}e-3"),
            11 => format!("0x98765{n:x}"),
            12 => format!("- 98765{n}"),
            13 => format!("'日本 {m} 😀'"),
            14 => format!("X'{m}'"),
            15 => format!("/* '{m} */"),
            16 => format!("-- {m}'\n"),
            17 => format!("# {m}\n"),
            18 => format!("'{m}\0\n{m}'"),
            19 => format!("VALUES (\"{m}\", \"{m}\")"),
            _ => format!("\"a\\\"{m}\""),
        }
    })
}

fn sqlish(piece: BoxedStrategy<String>) -> impl Strategy<Value = String> {
    let structure = prop::sample::select(STRUCTURE).prop_map(str::to_owned);
    let sep = prop::sample::select(&[" ", "\n", "\t", "  ", " /**/ "][..]);
    prop::collection::vec((prop_oneof![3 => structure, 2 => piece], sep), 0..40).prop_map(|parts| {
        let mut s = String::new();
        for (p, sep) in parts {
            s.push_str(&p);
            s.push_str(sep);
        }
        s
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn markers_never_survive(body in sqlish(marked().boxed()), tail in 0usize..6, n in 0u32..1000) {
        // An unterminated literal only makes sense last: earlier, it would
        // turn the quotes of the literals after it into openers.
        let tail = ["", "'zq", "\"zq", "$$ zq", "/* zq", "E'zq\\\\'"][tail];
        let sql = format!("{body}{tail}{n}");
        let fp = Fingerprint::of(&sql);
        prop_assert!(!fp.text().contains("zq"), "{:?} -> {:?}", sql, fp.text());
        prop_assert!(!fp.text().contains("98765"), "{:?} -> {:?}", sql, fp.text());
    }

    #[test]
    fn normalizing_is_idempotent(sql in sqlish(prop_oneof![literal(), marked()].boxed())) {
        let fp = Fingerprint::of(&sql);
        prop_assume!(fp.text().len() < MAX_TEXT_LEN);
        let again = Fingerprint::of(fp.text());
        prop_assert_eq!(again.text(), fp.text(), "from {:?}", sql);
        prop_assert_eq!(again.id(), fp.id());
    }

    #[test]
    fn arbitrary_text_never_panics(sql in ".{0,200}") {
        let fp = Fingerprint::of(&sql);
        prop_assert!(fp.text().len() <= MAX_TEXT_LEN);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let _ = Fingerprint::of(&String::from_utf8_lossy(&bytes));
    }
}

// ---------------------------------------------------------------------------
// Cache

#[test]
fn cache_returns_the_same_arc() {
    let cache = FingerprintCache::new(100);
    assert!(cache.is_empty());
    let a = cache.get("SELECT * FROM t WHERE id = 1");
    let b = cache.get("SELECT * FROM t WHERE id = 1");
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!((cache.hits(), cache.misses(), cache.len()), (1, 1, 1));
    // Same fingerprint, different raw text: a separate entry.
    let c = cache.get("SELECT * FROM t WHERE id = 2");
    assert!(!Arc::ptr_eq(&a, &c));
    assert_eq!(a.id(), c.id());
    assert_eq!(cache.capacity(), 100);
}

#[test]
fn cache_stays_within_capacity() {
    for capacity in [1, 5, 100, 1000, 2048] {
        let cache = FingerprintCache::new(capacity);
        for i in 0..capacity * 10 {
            let fp = cache.get(&format!("SELECT c{i} FROM t"));
            assert_eq!(fp.text(), format!("SELECT c{i} FROM t"));
            assert!(cache.len() <= capacity);
        }
        assert_eq!(cache.len(), capacity);
        assert_eq!(cache.misses(), (capacity * 10) as u64);
    }
}

#[test]
fn cache_keeps_hot_entries() {
    let cache = FingerprintCache::new(64);
    let hot = cache.get("SELECT hot FROM t");
    for i in 0..1000 {
        let again = cache.get("SELECT hot FROM t");
        assert!(Arc::ptr_eq(&hot, &again), "evicted after {i}");
        let _ = cache.get(&format!("SELECT cold{i} FROM t"));
    }
}

#[test]
fn cache_long_and_uncacheable_texts() {
    let cache = FingerprintCache::new(10);
    let medium = format!("SELECT {} FROM t", "a, ".repeat(1000));
    assert!(medium.len() > CACHE_INLINE_SQL_LEN && medium.len() < CACHE_MAX_SQL_LEN);
    assert!(Arc::ptr_eq(&cache.get(&medium), &cache.get(&medium)));
    // Same length, different text: verified by the 128-bit hash.
    let other = medium.replacen("a, ", "b, ", 1);
    assert_eq!(cache.get(&other).text(), Fingerprint::of(&other).text());
    assert_ne!(cache.get(&other).text(), cache.get(&medium).text());

    let huge = format!("SELECT {} FROM t", "a, ".repeat(10_000));
    assert!(huge.len() > CACHE_MAX_SQL_LEN);
    let before = cache.len();
    assert!(!Arc::ptr_eq(&cache.get(&huge), &cache.get(&huge)));
    assert_eq!(cache.len(), before);

    let disabled = FingerprintCache::new(0);
    assert_eq!(disabled.get("SELECT 1").text(), "SELECT ?");
    assert!(disabled.is_empty());
}

#[test]
fn cache_verifies_the_raw_text_on_a_key_collision() {
    let cache = FingerprintCache::new(16);
    let a = "SELECT a FROM t";
    let b = "SELECT b FROM t";
    // Force both texts onto one key, as a 64-bit collision would.
    let key = 42;
    let mut shard = lock(&cache.shards[0]);
    let fa = Arc::new(Fingerprint::of(a));
    shard.insert(key, Check::Text(a.into()), Arc::clone(&fa));
    assert!(shard.lookup(key, b, None).is_none());
    assert!(Arc::ptr_eq(&shard.lookup(key, a, None).unwrap(), &fa));
    let fb = shard.insert(key, Check::Text(b.into()), Arc::new(Fingerprint::of(b)));
    assert_eq!(fb.text(), "SELECT b FROM t");
    assert!(shard.lookup(key, a, None).is_none());
    assert_eq!(shard.lookup(key, b, None).unwrap().text(), "SELECT b FROM t");
}

#[test]
fn cache_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<FingerprintCache>();
    assert_send_sync::<Fingerprint>();

    let cache = FingerprintCache::new(256);
    std::thread::scope(|s| {
        for t in 0..4 {
            let cache = &cache;
            s.spawn(move || {
                for i in 0..2000 {
                    let fp = cache.get(&format!("SELECT * FROM t{} WHERE a = {t}", i % 300));
                    assert_eq!(fp.table(), Some(format!("t{}", i % 300).as_str()));
                }
            });
        }
    });
    assert!(cache.len() <= 256);
    assert_eq!(cache.hits() + cache.misses(), 8000);
    assert!(format!("{cache:?}").contains("capacity: 256"));
}
