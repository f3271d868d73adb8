//! Replays the committed fuzz corpus and every past crasher through the same
//! bodies the `cargo fuzz` targets run (`habla_message::fuzzing`), so that a
//! regression shows up in `cargo test` without a nightly toolchain.

use std::path::Path;

fn replay(target: &str, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let mut count = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let data = std::fs::read(&path).unwrap();
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(
                result.is_ok(),
                "{target}: {} breaks an invariant",
                path.display()
            );
            count += 1;
        }
    }
    assert!(count > 0, "no corpus for {target} under {}", root.display());
    println!("{target}: replayed {count} inputs");
}

#[test]
fn parse_corpus() {
    replay("parse", habla_message::fuzzing::parse);
}

#[test]
fn roundtrip_corpus() {
    replay("roundtrip", habla_message::fuzzing::roundtrip);
}

#[test]
fn framing_corpus() {
    replay("framing", habla_message::fuzzing::framing);
}
