//! The embedded stores considered for durable topics, on the write a durable emit makes:
//! a small record (topic and sequence number as key, 64 B) appended and synced to disk,
//! one per commit and 64 per commit (group commit); and on a topic's life as a queue: each
//! synced commit appends 64 records, removes the 64 oldest (acked by every consumer) and
//! reads the 64 now oldest (a consumer reading from its ack floor) — interleaved round by
//! round.
//!
//! ```text
//! cargo run --release -p hardlight-benchmarks --features stores --bin stores -- [--rounds N]
//! ```
//!
//! - redb: one write transaction per commit, `Durability::Immediate` (fsync);
//! - fjall: one write batch per commit, then `persist(SyncAll)` (fsync of the journal);
//! - SQLite (rusqlite, bundled): WAL mode, `synchronous = FULL`, one transaction per commit.

#![allow(clippy::expect_used, clippy::unwrap_used)]

use redb::ReadableTable;

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use hardlight_benchmarks::stats::Summary;

/// Records per measurement.
const RECORDS: u64 = 2_048;
/// Records per commit in the group-commit measurement.
const GROUP: u64 = 64;

/// One store: a name, an append of `records` records, `per_commit` per synced commit,
/// into a new store under `dir`, and `commits` commits of queue churn.
struct Candidate {
    name: &'static str,
    append: fn(&Path, u64, u64),
    churn: fn(&Path, u64),
}

fn key(seq: u64) -> Vec<u8> {
    let mut key = b"inbox/bob\0".to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

fn value(seq: u64) -> Vec<u8> {
    vec![(seq % 251) as u8; 64]
}

fn redb_append(dir: &Path, records: u64, per_commit: u64) {
    const EVENTS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("events");
    let db = redb::Database::create(dir.join("store.redb")).unwrap();
    for first in (0..records).step_by(per_commit as usize) {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(EVENTS).unwrap();
            for seq in first..(first + per_commit).min(records) {
                table
                    .insert(key(seq).as_slice(), value(seq).as_slice())
                    .unwrap();
            }
        }
        txn.commit().unwrap();
    }
}

fn redb_churn(dir: &Path, commits: u64) {
    const EVENTS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("events");
    let db = redb::Database::create(dir.join("store.redb")).unwrap();
    for commit in 0..commits {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(EVENTS).unwrap();
            for seq in commit * GROUP..(commit + 1) * GROUP {
                table
                    .insert(key(seq).as_slice(), value(seq).as_slice())
                    .unwrap();
            }
            for seq in commit.saturating_sub(1) * GROUP..commit * GROUP {
                table.remove(key(seq).as_slice()).unwrap();
            }
            let read = table
                .range(key(0).as_slice()..)
                .unwrap()
                .take(GROUP as usize)
                .count();
            assert_eq!(read, GROUP as usize);
        }
        txn.commit().unwrap();
    }
}

fn fjall_churn(dir: &Path, commits: u64) {
    let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
    let events = db
        .keyspace("events", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    for commit in 0..commits {
        let mut batch = db.batch();
        for seq in commit * GROUP..(commit + 1) * GROUP {
            batch.insert(&events, key(seq), value(seq));
        }
        for seq in commit.saturating_sub(1) * GROUP..commit * GROUP {
            batch.remove(&events, key(seq));
        }
        batch.commit().unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
        let read = events.range(key(0)..).take(GROUP as usize).count();
        assert_eq!(read, GROUP as usize);
    }
}

fn sqlite_churn(dir: &Path, commits: u64) {
    let mut db = sqlite(dir);
    for commit in 0..commits {
        let txn = db.transaction().unwrap();
        {
            let mut insert = txn
                .prepare_cached("INSERT INTO events (key, value) VALUES (?1, ?2)")
                .unwrap();
            for seq in commit * GROUP..(commit + 1) * GROUP {
                insert.execute((key(seq), value(seq))).unwrap();
            }
            let mut remove = txn
                .prepare_cached("DELETE FROM events WHERE key = ?1")
                .unwrap();
            for seq in commit.saturating_sub(1) * GROUP..commit * GROUP {
                remove.execute((key(seq),)).unwrap();
            }
            let mut read = txn
                .prepare_cached("SELECT key, value FROM events ORDER BY key LIMIT ?1")
                .unwrap();
            let rows = read.query_map((GROUP as i64,), |_| Ok(())).unwrap().count();
            assert_eq!(rows, GROUP as usize);
        }
        txn.commit().unwrap();
    }
}

fn sqlite(dir: &Path) -> rusqlite::Connection {
    let db = rusqlite::Connection::open(dir.join("store.sqlite")).unwrap();
    db.pragma_update(None, "journal_mode", "WAL").unwrap();
    db.pragma_update(None, "synchronous", "FULL").unwrap();
    db.execute(
        "CREATE TABLE events (key BLOB PRIMARY KEY, value BLOB NOT NULL)",
        (),
    )
    .unwrap();
    db
}

fn fjall_append(dir: &Path, records: u64, per_commit: u64) {
    let db = fjall::Database::builder(dir.join("fjall")).open().unwrap();
    let events = db
        .keyspace("events", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    for first in (0..records).step_by(per_commit as usize) {
        let mut batch = db.batch();
        for seq in first..(first + per_commit).min(records) {
            batch.insert(&events, key(seq), value(seq));
        }
        batch.commit().unwrap();
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
}

fn sqlite_append(dir: &Path, records: u64, per_commit: u64) {
    let mut db = sqlite(dir);
    for first in (0..records).step_by(per_commit as usize) {
        let txn = db.transaction().unwrap();
        {
            let mut insert = txn
                .prepare_cached("INSERT INTO events (key, value) VALUES (?1, ?2)")
                .unwrap();
            for seq in first..(first + per_commit).min(records) {
                insert.execute((key(seq), value(seq))).unwrap();
            }
        }
        txn.commit().unwrap();
    }
}

/// Records per second appended by `candidate`, `per_commit` per synced commit (0: through
/// a queue).
fn measure(candidate: &Candidate, per_commit: u64, scratch: &Path) -> f64 {
    let dir: PathBuf = scratch.join(format!("{}-{per_commit}", candidate.name));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let started = Instant::now();
    let records = match per_commit {
        0 => {
            let commits = RECORDS * 8 / GROUP;
            (candidate.churn)(&dir, commits);
            commits * GROUP
        }
        1 => {
            (candidate.append)(&dir, RECORDS / 4, 1);
            RECORDS / 4
        }
        n => {
            (candidate.append)(&dir, RECORDS * 8, n);
            RECORDS * 8
        }
    };
    let rate = records as f64 / started.elapsed().as_secs_f64();
    std::fs::remove_dir_all(&dir).unwrap();
    rate
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rounds = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let candidates = [
        Candidate {
            name: "redb 4 (B-tree, copy-on-write)",
            append: redb_append,
            churn: redb_churn,
        },
        Candidate {
            name: "fjall 3 (LSM, journal)",
            append: fjall_append,
            churn: fjall_churn,
        },
        Candidate {
            name: "SQLite 3 via rusqlite (WAL, synchronous=FULL)",
            append: sqlite_append,
            churn: sqlite_churn,
        },
    ];
    let scratch = std::env::temp_dir().join(format!("hardlight-stores-{}", std::process::id()));
    let kinds = [1, GROUP, 0];
    let mut results = vec![vec![Vec::new(); kinds.len()]; candidates.len()];
    for round in 0..rounds {
        eprintln!("[stores] round {}/{rounds}", round + 1);
        for (candidate, rates) in candidates.iter().zip(&mut results) {
            for (kind, rate) in kinds.iter().zip(rates.iter_mut()) {
                rate.push(measure(candidate, *kind, &scratch));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&scratch);
    println!(
        "| store | records/s, 1 per synced commit | records/s, {GROUP} per synced commit | records/s through a queue ({GROUP} in, {GROUP} out, {GROUP} read per synced commit) |"
    );
    println!("|---|---:|---:|---:|");
    for (candidate, rates) in candidates.iter().zip(&results) {
        let cells: Vec<String> = rates
            .iter()
            .map(|rate| {
                let s = Summary::of(rate);
                format!("{:.0} ({:.0}–{:.0})", s.median, s.min, s.max)
            })
            .collect();
        println!("| {} | {} |", candidate.name, cells.join(" | "));
    }
}
