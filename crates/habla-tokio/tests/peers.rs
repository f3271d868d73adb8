//! Real SIP peers against the OPTIONS responder of
//! `examples/options_server.rs` (run in-process on a loopback port 0):
//! sipsak and SIPp, over UDP and TCP.
//!
//! A test whose tool is missing prints `SKIP` and passes, unless
//! `HABLA_REQUIRE_PEERS=1` (set by `.ci/run`), which makes it fail.
//! `scripts/test` installs the tools (Debian `sipsak`, `sip-tester`).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// The tool's path, or `None` after saying why the test is skipped.
fn tool(name: &str, package: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        let msg =
            format!("`{name}` not found (Debian package `{package}`; scripts/test installs it)");
        if std::env::var("HABLA_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("HABLA_REQUIRE_PEERS=1 but {msg}");
        }
        eprintln!("SKIP: {msg}");
    }
    found
}

/// Runs a peer to completion (killed if it outlives the bound); returns
/// its exit status and output.
async fn run(mut cmd: Command, bound: Duration) -> (bool, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().expect("spawn peer");
    match tokio::time::timeout(bound, child.wait_with_output()).await {
        Ok(out) => {
            let out = out.expect("peer output");
            let text = format!(
                "status: {}\nstdout:\n{}\nstderr:\n{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            (out.status.success(), text)
        }
        // The future (and with it the child) is dropped: kill_on_drop.
        Err(_) => (false, format!("peer did not finish within {bound:?}")),
    }
}

async fn sipsak(transport: &str) {
    let Some(bin) = tool("sipsak", "sipsak") else {
        return;
    };
    let server = OptionsServer::start(loopback_config()).await;
    let port = if transport == "tcp" {
        server.tcp.port()
    } else {
        server.udp.port()
    };
    let mut cmd = Command::new(bin);
    cmd.args(["-vv", "-s", &format!("sip:ping@127.0.0.1:{port}")]);
    if transport == "tcp" {
        cmd.args(["-E", "tcp"]);
    }
    let (ok, out) = run(cmd, Duration::from_secs(30)).await;
    assert!(ok, "sipsak over {transport} failed:\n{out}");
    assert!(out.contains("200 OK"), "no 200 in sipsak output:\n{out}");
    assert!(out.contains("Allow: OPTIONS"), "no Allow:\n{out}");
}

#[tokio::test]
async fn sipsak_options_over_udp() {
    sipsak("udp").await;
}

#[tokio::test]
async fn sipsak_options_over_tcp() {
    sipsak("tcp").await;
}

/// A scratch directory for SIPp's log files, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("habla-sipp-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn sipp(transport: &str) {
    let Some(bin) = tool("sipp", "sip-tester") else {
        return;
    };
    let server = OptionsServer::start(loopback_config()).await;
    let (mode, addr) = match transport {
        "tcp" => ("t1", server.tcp),
        _ => ("u1", server.udp),
    };
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/options_uac.xml");
    let scratch = Scratch::new(transport);
    let calls = 5;
    let mut cmd = Command::new(bin);
    cmd.current_dir(&scratch.0).args([
        &addr.to_string(),
        "-sf",
        scenario.to_str().unwrap(),
        "-t",
        mode,
        "-i",
        "127.0.0.1",
        "-m",
        &calls.to_string(),
        "-r",
        "50",
        "-nostdin",
        // SIPp binds its control socket to 0.0.0.0 unless told: loopback only.
        "-ci",
        "127.0.0.1",
        "-timeout",
        "20s",
        "-timeout_error",
        "-trace_err",
        "-error_file",
        scratch.0.join("errors.log").to_str().unwrap(),
    ]);
    let (ok, mut out) = run(cmd, Duration::from_secs(40)).await;
    if let Ok(errors) = std::fs::read_to_string(scratch.0.join("errors.log")) {
        out.push_str("\nerrors.log:\n");
        out.push_str(&errors);
    }
    assert!(ok, "sipp over {transport} failed:\n{out}");
    let st = server.handle.stats();
    assert!(
        st.datagrams_received + st.stream_messages_received >= 2 * calls,
        "server saw too little: {st:?}"
    );
}

#[tokio::test]
async fn sipp_options_over_udp() {
    sipp("udp").await;
}

#[tokio::test]
async fn sipp_options_over_tcp() {
    sipp("tcp").await;
}
