//! Architecture invariants, checked on the source tree (ARCHITECTURE.md):
//! dependencies between habla crates point down the layers only, and no
//! crate below the driver reads a clock, sleeps, or touches sockets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of every crate: a crate may depend only on crates of a lower
/// layer. A new crate must be added here (and to ARCHITECTURE.md).
const LAYERS: &[(&str, u8)] = &[
    ("habla-message", 0),
    ("habla-sdp", 0),
    ("habla-media", 1),
    ("habla-transaction", 1),
    ("habla-dialog", 2),
    ("habla-auth", 1),
    ("habla-locate", 2),
    ("habla-registrar", 2),
    ("habla-proxy", 3),
    ("habla-store", 4),
    ("habla-tokio", 5),
    // Beside the driver (it does I/O), one step up: it drives habla-tokio.
    ("habla-ua", 6),
    ("habla", 7),
];

/// Crates allowed to do I/O and read clocks.
const DRIVERS: &[&str] = &["habla-store", "habla-tokio", "habla-ua", "habla"];

/// What sans-IO code must not contain.
const BANNED: &[&str] = &[
    "Instant::now",
    "SystemTime::now",
    "thread::sleep",
    "tokio::",
    "UdpSocket",
    "TcpStream",
    "TcpListener",
    "rand::",
];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn crates() -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(workspace().join("crates"))
        .unwrap()
        .flatten()
    {
        if e.path().join("Cargo.toml").exists() {
            out.insert(e.file_name().to_string_lossy().into_owned(), e.path());
        }
    }
    out
}

fn layer(name: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, l)| *l)
        .unwrap_or_else(|| {
            panic!("crate {name} has no layer: add it to LAYERS in tidy.rs and to ARCHITECTURE.md")
        })
}

#[test]
fn dependencies_point_down() {
    for (name, dir) in crates() {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        // Only [dependencies] count: tests and benches may reach further.
        let deps = manifest
            .split("\n[")
            .find(|s| s.starts_with("dependencies]"))
            .unwrap_or("");
        for line in deps.lines() {
            let dep = line.split(['=', ' ', '.']).next().unwrap_or("").trim();
            if dep.starts_with("habla") && dep != name {
                assert!(
                    layer(dep) < layer(&name),
                    "{name} (layer {}) depends on {dep} (layer {}): dependencies must point down",
                    layer(&name),
                    layer(dep)
                );
            }
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn nothing_below_the_driver_does_io_or_reads_a_clock() {
    for (name, dir) in crates() {
        let _ = layer(&name);
        if DRIVERS.contains(&name.as_str()) {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&dir.join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split("//").next().unwrap_or("");
                for banned in BANNED {
                    assert!(
                        !code.contains(banned),
                        "{}:{}: `{banned}` in sans-IO crate {name}: time, randomness and I/O are inputs",
                        f.display(),
                        i + 1
                    );
                }
            }
        }
    }
}
