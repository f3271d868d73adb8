//! What the store acknowledged survives: a restart, and a `kill -9` of the
//! process in the middle of a stream of registrations.

use habla_message::{Message, Method, RequestBuilder, Uri};
use habla_registrar::{
    address_of_record, process_register, LocationService, RegisterDecision, RegistrarConfig,
};
use habla_store::{SqliteLocationService, StoreConfig, User, UserStore};
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::mpsc;

const NOW: u64 = 1_800_000_000;

/// A REGISTER of `user` (Call-ID `user-call`, CSeq `n`) binding a contact
/// on port 5000 + `n` for an hour.
fn register(user: &str, n: u32) -> Message {
    register_contact(
        user,
        n,
        &format!("<sip:{user}@192.0.2.4:{}>;expires=3600", 5000 + n),
    )
}

/// Registers through the store; returns once the change is durable.
fn register_durably(store: &SqliteLocationService, user: &str, n: u32) {
    let d = apply_durably(store, &register(user, n));
    assert!(matches!(d, RegisterDecision::Update { .. }), "{d:?}");
}

fn temp_db(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("habla-store-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("habla.db")
}

/// Whether the database at `db` has a table `name`.
fn has_table(db: &std::path::Path, name: &str) -> bool {
    let conn = rusqlite::Connection::open(db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
            [name],
            |r| r.get(0),
        )
        .unwrap();
    n > 0
}

#[test]
fn bindings_survive_a_restart_and_expired_ones_do_not_come_back() {
    let db = temp_db("restart");
    let cfg = StoreConfig::new(&db);
    {
        let store = SqliteLocationService::open(&cfg, NOW).unwrap();
        register_durably(&store, "alice", 1);
        register_durably(&store, "alice", 2); // refresh: same contact? no, new port
        register_durably(&store, "bob", 1);
        assert_eq!(store.lookup("sip:alice@example.org", NOW).len(), 2);
    }
    let store = SqliteLocationService::open(&cfg, NOW + 10).unwrap();
    let alice = store.lookup("sip:alice@example.org", NOW + 10);
    assert_eq!(alice.len(), 2);
    assert_eq!(&*alice[1].contact, "sip:alice@192.0.2.4:5002");
    assert_eq!(alice[1].cseq, 2);
    assert_eq!(store.lookup("sip:bob@example.org", NOW + 10).len(), 1);
    drop(store);
    // Opened after everything expired: nothing is loaded.
    let store = SqliteLocationService::open(&cfg, NOW + 3601).unwrap();
    assert_eq!(store.aors(), 0);
}

/// A REGISTER of `user` with Call-ID `user-call`, CSeq `n` and the given
/// Contact header value (and `Expires: 0` for `*`).
fn register_contact(user: &str, n: u32, contact: &str) -> Message {
    let mut b = RequestBuilder::new(Method::Register, &Uri::parse("sip:example.org").unwrap())
        .via("UDP", "192.0.2.4:5060", &format!("z9hG4bK{user}{n}"), true)
        .max_forwards(70)
        .to(&format!("<sip:{user}@example.org>"))
        .from(&format!("<sip:{user}@example.org>;tag=t{n}"))
        .call_id(&format!("{user}-call"))
        .cseq(n)
        .header("Contact", contact);
    if contact == "*" {
        b = b.header("Expires", "0");
    }
    b.build().unwrap()
}

/// Applies a REGISTER through the store; returns the decision once the
/// change (if any) is durable.
fn apply_durably(store: &SqliteLocationService, req: &Message) -> RegisterDecision {
    let aor = address_of_record(req.to().unwrap().uri()).unwrap();
    let (tx, rx) = mpsc::channel();
    let d = store.register(
        &aor,
        NOW,
        &mut |current| process_register(&RegistrarConfig::default(), NOW, req, current).unwrap(),
        Box::new(move |r| tx.send(r).unwrap()),
    );
    rx.recv().unwrap().unwrap();
    d
}

/// The store writes only what a REGISTER changed; after a restart the
/// database must still hold exactly what memory held: refreshed bindings
/// with their new expiry, removed ones gone, `*` clearing the AOR.
#[test]
fn refreshes_and_removals_reach_the_database() {
    let db = temp_db("delta");
    let cfg = StoreConfig::new(&db);
    let before;
    {
        let store = SqliteLocationService::open(&cfg, NOW).unwrap();
        for (user, cseq, contact) in [
            ("carol", 1, "<sip:carol@192.0.2.4:5001>;expires=600"),
            ("carol", 2, "<sip:carol@192.0.2.4:5002>;expires=600"),
            ("carol", 3, "<sip:carol@192.0.2.4:5003>"),
            // Refresh the first with a longer expiry, remove the second.
            ("carol", 4, "<sip:carol@192.0.2.4:5001>;expires=1800"),
            ("carol", 5, "<sip:carol@192.0.2.4:5002>;expires=0"),
            ("dave", 1, "<sip:dave@192.0.2.4:6001>"),
            ("dave", 2, "<sip:dave@192.0.2.4:6002>"),
            ("dave", 3, "*"),
        ] {
            apply_durably(&store, &register_contact(user, cseq, contact));
        }
        before = store.lookup("sip:carol@example.org", NOW);
        assert_eq!(before.len(), 2);
        assert!(store.lookup("sip:dave@example.org", NOW).is_empty());
    }
    let store = SqliteLocationService::open(&cfg, NOW).unwrap();
    let mut after = store.lookup("sip:carol@example.org", NOW);
    let mut before = before;
    before.sort_by(|x, y| x.contact.cmp(&y.contact));
    after.sort_by(|x, y| x.contact.cmp(&y.contact));
    assert_eq!(after, before);
    assert_eq!(&*after[0].contact, "sip:carol@192.0.2.4:5001");
    assert_eq!(after[0].expires_at, NOW + 1800);
    assert_eq!(after[0].cseq, 4);
    assert!(store.lookup("sip:dave@example.org", NOW).is_empty());
}

#[test]
fn users_are_stored_as_hashes() {
    let db = temp_db("users");
    let users = UserStore::open(&StoreConfig::new(&db)).unwrap();
    let alice = User {
        username: "alice".into(),
        domain: "example.org".into(),
        ha1_md5: "0".repeat(32),
        ha1_sha256: "1".repeat(64),
    };
    users.put(&alice).unwrap();
    drop(users);
    let users = UserStore::open(&StoreConfig::new(&db)).unwrap();
    assert_eq!(
        users
            .get("alice", "example.org")
            .unwrap()
            .as_deref()
            .cloned(),
        Some(alice.clone())
    );
    assert_eq!(users.list().unwrap(), vec![alice]);
    assert!(users.remove("alice", "example.org").unwrap());
    assert_eq!(
        users
            .get("alice", "example.org")
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
}

/// A server's cached lookups follow changes made by another connection
/// (a `habla user` command in another process) within the recheck period,
/// and changes made through the same store at once.
#[test]
fn user_lookups_follow_changes_made_elsewhere() {
    let db = temp_db("usercache");
    let cfg = StoreConfig::new(&db);
    let server = UserStore::open(&cfg).unwrap();
    let admin = UserStore::open(&cfg).unwrap();
    let user = |ha1: &str| User {
        username: "dave".into(),
        domain: "example.org".into(),
        ha1_md5: ha1.into(),
        ha1_sha256: ha1.into(),
    };
    assert_eq!(
        server
            .get("dave", "example.org")
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    admin.put(&user("aa")).unwrap();
    let seen = |want: Option<User>| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let got = server
                .get("dave", "example.org")
                .unwrap()
                .as_deref()
                .cloned();
            if got == want {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "still {got:?}");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    };
    // The unknown user was cached; the new one shows within the recheck.
    seen(Some(user("aa")));
    admin.put(&user("bb")).unwrap();
    seen(Some(user("bb")));
    assert!(admin.remove("dave", "example.org").unwrap());
    seen(None);
    // Through the same store, or one sharing its cache: at once.
    let sibling = server.another_connection(&cfg).unwrap();
    assert_eq!(
        sibling
            .get("dave", "example.org")
            .unwrap()
            .as_deref()
            .cloned(),
        None
    );
    server.put(&user("cc")).unwrap();
    assert_eq!(
        server
            .get("dave", "example.org")
            .unwrap()
            .as_deref()
            .cloned(),
        Some(user("cc"))
    );
    assert_eq!(
        sibling
            .get("dave", "example.org")
            .unwrap()
            .as_deref()
            .cloned(),
        Some(user("cc"))
    );
}

/// The child side of the crash test: registers users 0.. as fast as it can
/// and prints `ack N` once registration N is durable, until it is killed.
#[test]
fn crash_child() {
    let Some(db) = std::env::var_os("HABLA_STORE_CRASH_DB") else {
        return; // only runs when the crash test spawns it
    };
    let store = SqliteLocationService::open(&StoreConfig::new(PathBuf::from(db)), NOW).unwrap();
    let (tx, rx) = mpsc::channel::<u32>();
    let printer = std::thread::spawn(move || {
        let mut out = std::io::stdout().lock();
        for n in rx {
            writeln!(out, "ack {n}").unwrap();
            out.flush().unwrap();
        }
    });
    for n in 0..1_000_000u32 {
        let req = register(&format!("u{n}"), 1);
        let aor = address_of_record(req.to().unwrap().uri()).unwrap();
        let tx = tx.clone();
        store.register(
            &aor,
            NOW,
            &mut |current| {
                process_register(&RegistrarConfig::default(), NOW, &req, current).unwrap()
            },
            Box::new(move |r| {
                if r.is_ok() {
                    let _ = tx.send(n);
                }
            }),
        );
    }
    drop(tx);
    printer.join().unwrap();
}

/// Changes staged within a commit window of the last commit share the
/// next commit (group commit), and every one is acknowledged, once, after
/// it is durable; a flush does not wait for the window. Reopened, the
/// database holds them all.
#[test]
fn changes_within_a_window_share_a_commit_and_all_are_acknowledged() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let db = temp_db("window");
    let cfg = StoreConfig {
        // Long enough that the changes below are staged within one window.
        commit_window: std::time::Duration::from_secs(3),
        ..StoreConfig::new(&db)
    };
    let acked = std::sync::Arc::new(AtomicUsize::new(0));
    let groups = std::sync::Arc::new(AtomicUsize::new(0));
    {
        let counted = groups.clone();
        let store = std::sync::Arc::new(
            SqliteLocationService::open(
                &StoreConfig {
                    acknowledge: Some(std::sync::Arc::new(move |run: &mut dyn FnMut()| {
                        counted.fetch_add(1, Ordering::SeqCst);
                        run()
                    })),
                    ..cfg.clone()
                },
                NOW,
            )
            .unwrap(),
        );
        // The first change is committed at once (nothing was for a window).
        register_durably(&store, "first", 1);
        assert_eq!(groups.load(Ordering::SeqCst), 1);
        let started = std::time::Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (store, acked) = (store.clone(), acked.clone());
                std::thread::spawn(move || {
                    for n in 0..250u32 {
                        let req = register(&format!("t{t}u{n}"), 1);
                        let aor = address_of_record(req.to().unwrap().uri()).unwrap();
                        let acked = acked.clone();
                        store.register(
                            &aor,
                            NOW,
                            &mut |current| {
                                process_register(&RegistrarConfig::default(), NOW, &req, current)
                                    .unwrap()
                            },
                            Box::new(move |r| {
                                r.unwrap();
                                acked.fetch_add(1, Ordering::SeqCst);
                            }),
                        );
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Staged within the window after the first commit: not written yet.
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert_eq!(acked.load(Ordering::SeqCst), 0);
        store.flush().unwrap();
        assert_eq!(acked.load(Ordering::SeqCst), 1000);
        assert_eq!(groups.load(Ordering::SeqCst), 2, "one commit for the 1000");
    }
    let store = SqliteLocationService::open(&cfg, NOW).unwrap();
    assert_eq!(store.aors(), 1001);
}

#[test]
fn acknowledged_registrations_survive_kill_9() {
    let db = temp_db("kill9");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("HABLA_STORE_CRASH_DB", &db)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut acked = Vec::new();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Kill in the middle of the stream, once a good number were acknowledged.
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("ack ") {
            acked.push(n.parse::<u32>().unwrap());
            if acked.len() == 2000 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL: no destructor, no flush
    child.wait().unwrap();
    // Anything printed before the kill was acknowledged too.
    for line in lines.map_while(Result::ok) {
        if let Some(n) = line.strip_prefix("ack ") {
            acked.push(n.parse().unwrap());
        }
    }
    assert!(
        acked.len() >= 2000,
        "the child acknowledged only {}",
        acked.len()
    );
    let store = SqliteLocationService::open(&StoreConfig::new(&db), NOW).unwrap();
    let lost: Vec<u32> = acked
        .iter()
        .copied()
        .filter(|n| {
            store
                .lookup(&format!("sip:u{n}@example.org"), NOW)
                .is_empty()
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged registrations lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    println!(
        "kill -9 after {} acknowledged registrations: none lost ({} AORs stored)",
        acked.len(),
        store.aors()
    );
}

/// Refreshes (with a q change, then without) reach the database, even
/// when the row they refresh went missing (an earlier write lost).
#[test]
fn a_refresh_writes_its_row_even_when_it_went_missing() {
    let db = temp_db("refresh");
    let cfg = StoreConfig::new(&db);
    let contact = "<sip:frank@192.0.2.4:7001>";
    {
        let store = SqliteLocationService::open(&cfg, NOW).unwrap();
        apply_durably(&store, &register_contact("frank", 1, contact));
        apply_durably(
            &store,
            &register_contact("frank", 2, &format!("{contact};q=0.5")),
        );
        // The row disappears behind the store's back...
        rusqlite::Connection::open(&db)
            .unwrap()
            .execute(
                "DELETE FROM registrations WHERE aor = 'sip:frank@example.org'",
                [],
            )
            .unwrap();
        // ...and the next refresh (same q, new CSeq and expiry) writes it
        // again.
        apply_durably(
            &store,
            &register_contact("frank", 3, &format!("{contact};q=0.5;expires=900")),
        );
        apply_durably(
            &store,
            &register_contact("frank", 4, &format!("{contact};q=0.5;expires=1200")),
        );
    }
    let store = SqliteLocationService::open(&cfg, NOW).unwrap();
    let frank = store.lookup("sip:frank@example.org", NOW);
    assert_eq!(frank.len(), 1, "{frank:?}");
    assert_eq!(frank[0].q, 500);
    assert_eq!(frank[0].cseq, 4);
    assert_eq!(frank[0].expires_at, NOW + 1200);
    assert_eq!(&*frank[0].call_id, "frank-call");
}

/// A refresh over another flow (a NAT rebinding) stores the new flow.
#[test]
fn a_refresh_stores_the_flow_it_came_over() {
    let db = temp_db("flow");
    let cfg = StoreConfig::new(&db);
    {
        let store = SqliteLocationService::open(&cfg, NOW).unwrap();
        for (n, flow) in [
            (1, "udp:192.0.2.1:5060->203.0.113.7:4000"),
            (2, "udp:192.0.2.1:5060->203.0.113.7:4001"),
        ] {
            let req = register_contact("gina", n, "<sip:gina@192.0.2.4:7002>");
            let (tx, rx) = mpsc::channel();
            store.register(
                "sip:gina@example.org",
                NOW,
                &mut |current| {
                    habla_registrar::process_register_from(
                        &RegistrarConfig::default(),
                        NOW,
                        &req,
                        current,
                        Some(flow),
                    )
                    .unwrap()
                },
                Box::new(move |r| tx.send(r).unwrap()),
            );
            rx.recv().unwrap().unwrap();
        }
    }
    let store = SqliteLocationService::open(&cfg, NOW).unwrap();
    let gina = store.lookup("sip:gina@example.org", NOW);
    assert_eq!(gina.len(), 1);
    assert_eq!(
        gina[0].source.as_deref(),
        Some("udp:192.0.2.1:5060->203.0.113.7:4001")
    );
    assert_eq!(gina[0].cseq, 2);
}

/// Databases of earlier versions kept a row per binding, in `bindings`
/// (a rowid table with an index) and then in `location` (WITHOUT ROWID):
/// their registrations move over once. An AOR's bindings (with Path, flow
/// and User-Agent) come back as one set, expired ones stay out, and the
/// old table is gone.
#[test]
fn bindings_of_the_old_tables_are_migrated() {
    for (table, layout) in [
        (
            "bindings",
            "; CREATE INDEX bindings_expiry ON bindings (expires_at);",
        ),
        ("location", " WITHOUT ROWID;"),
    ] {
        let db = temp_db(&format!("migrate-{table}"));
        {
            let conn = rusqlite::Connection::open(&db).unwrap();
            conn.execute_batch(&format!(
                "CREATE TABLE {table} (aor TEXT NOT NULL, contact TEXT NOT NULL,
                   q INTEGER NOT NULL, expires_at INTEGER NOT NULL, call_id TEXT NOT NULL,
                   cseq INTEGER NOT NULL, path TEXT NOT NULL, source TEXT, user_agent TEXT,
                   PRIMARY KEY (aor, contact)){layout}"
            ))
            .unwrap();
            for (contact, q, expires, path, source, ua) in [
                ("sip:hal@192.0.2.9", 1000, 60, "", None, None),
                (
                    "sip:hal@192.0.2.10",
                    500,
                    600,
                    "<sip:p1.example.org;lr>\n<sip:p2.example.org;lr>",
                    Some("udp:192.0.2.1:5060->192.0.2.10:5060"),
                    Some("phone/2"),
                ),
                ("sip:hal@192.0.2.11", 1000, -10, "", None, None),
            ] {
                conn.execute(
                    &format!(
                        "INSERT INTO {table}
                           VALUES ('sip:hal@example.org', ?1, ?2, ?3, 'hal-call', 4, ?4, ?5, ?6)"
                    ),
                    rusqlite::params![contact, q, NOW as i64 + expires, path, source, ua],
                )
                .unwrap();
            }
        }
        let store = SqliteLocationService::open(&StoreConfig::new(&db), NOW).unwrap();
        let mut hal = store.lookup("sip:hal@example.org", NOW);
        hal.sort_by(|a, b| a.contact.cmp(&b.contact));
        assert_eq!(hal.len(), 2, "{table}: {hal:?}");
        assert_eq!(&*hal[0].contact, "sip:hal@192.0.2.10");
        assert_eq!(hal[0].q, 500);
        assert_eq!(hal[0].expires_at, NOW + 600);
        assert_eq!(
            hal[0].path.iter().map(|p| &**p).collect::<Vec<_>>(),
            ["<sip:p1.example.org;lr>", "<sip:p2.example.org;lr>"]
        );
        assert_eq!(
            hal[0].source.as_deref(),
            Some("udp:192.0.2.1:5060->192.0.2.10:5060")
        );
        assert_eq!(hal[0].user_agent.as_deref(), Some("phone/2"));
        assert_eq!(&*hal[1].contact, "sip:hal@192.0.2.9");
        assert_eq!(hal[1].cseq, 4);
        drop(store);
        // Moved, not copied: a second open finds no old table to migrate.
        assert!(!has_table(&db, table), "{table}");
    }
}

/// A row that cannot be read (a damaged value, or one of another type)
/// is skipped: the server starts, and the other AORs' bindings load.
#[test]
fn an_unreadable_row_is_skipped_and_the_rest_loads() {
    let db = temp_db("damaged");
    let cfg = StoreConfig::new(&db);
    {
        let store = SqliteLocationService::open(&cfg, NOW).unwrap();
        register_durably(&store, "ivan", 1);
    }
    {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute(
            "INSERT INTO registrations VALUES ('sip:judy@example.org', ?1, x'01ff00')",
            [NOW as i64 + 600],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO registrations VALUES ('sip:ken@example.org', ?1, 'text, not a value')",
            [NOW as i64 + 600],
        )
        .unwrap();
    }
    let store = SqliteLocationService::open(&cfg, NOW).unwrap();
    assert_eq!(store.lookup("sip:ivan@example.org", NOW).len(), 1);
    assert!(store.lookup("sip:judy@example.org", NOW).is_empty());
    assert!(store.lookup("sip:ken@example.org", NOW).is_empty());
}

/// A group the database refuses is reported to each of its REGISTERs (so
/// that they are answered 503, not 200) and leaves no transaction open:
/// the next group is written.
#[test]
fn a_refused_group_is_reported_and_the_next_one_is_written() {
    let db = temp_db("refused");
    let cfg = StoreConfig::new(&db);
    let store = SqliteLocationService::open(&cfg, NOW).unwrap();
    // Another connection makes the database refuse one AOR's row.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON registrations
             WHEN NEW.aor = 'sip:mallory@example.org'
             BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
        )
        .unwrap();
    let req = register("mallory", 1);
    let aor = address_of_record(req.to().unwrap().uri()).unwrap();
    let (tx, rx) = mpsc::channel();
    store.register(
        &aor,
        NOW,
        &mut |current| process_register(&RegistrarConfig::default(), NOW, &req, current).unwrap(),
        Box::new(move |r| tx.send(r).unwrap()),
    );
    assert!(rx.recv().unwrap().is_err(), "the refusal is reported");
    register_durably(&store, "alice", 1);
    drop(store);
    let store = SqliteLocationService::open(&cfg, NOW).unwrap();
    assert_eq!(store.lookup("sip:alice@example.org", NOW).len(), 1);
    assert!(store.lookup("sip:mallory@example.org", NOW).is_empty());
}
