//! After a demo run through the real binaries, no raw national id appears anywhere in
//! the data directory or the server's log output.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out)
        } else {
            out.push(path)
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_raw_id_reaches_disk_or_logs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log_path = dir.path().join("server.log");
    let port = free_port();
    let mut server = Binary::start(&data, port, &log_path, &[]);
    // The demo mints its tokens from the issuer the server creates on start.
    let _ = token(&data, "0301");
    let demo = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args([
            "demo",
            "--issuer-data",
            data.to_str().unwrap(),
            "--endpoint",
            &server.endpoint,
            "--persons",
            "400",
            "--quiet",
        ])
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    assert!(
        demo.status.success(),
        "demo failed: {}",
        String::from_utf8_lossy(&demo.stderr)
    );
    unsafe_sigterm(server.child.id());
    assert!(server.child.wait().unwrap().success());

    let mut config = kpr_synth::DemoConfig::standard(today());
    config.persons = 400;
    let mut ids: Vec<String> = kpr_synth::generate(&config)
        .into_iter()
        .flat_map(|b| b.events)
        .filter_map(|e| e.person.map(|p| p.national_id))
        .collect();
    ids.sort();
    ids.dedup();
    assert!(
        ids.len() >= 300,
        "the demo should cover its persons: {}",
        ids.len()
    );

    let mut haystacks = Vec::new();
    files(&data, &mut haystacks);
    haystacks.push(log_path.clone());
    let mut bytes_checked = 0usize;
    for path in &haystacks {
        let content = std::fs::read(path).unwrap();
        bytes_checked += content.len();
        let text = String::from_utf8_lossy(&content);
        for id in &ids {
            assert!(
                !text.contains(id.as_str()),
                "a raw national id was found in {}",
                path.display()
            );
        }
    }
    let demo_output = format!(
        "{}{}",
        String::from_utf8_lossy(&demo.stdout),
        String::from_utf8_lossy(&demo.stderr)
    );
    assert!(ids.iter().all(|id| !demo_output.contains(id.as_str())));
    assert!(
        bytes_checked > 100_000,
        "too little data to prove anything: {bytes_checked} bytes"
    );
    let records = read_log(&data).await;
    assert!(records.len() > 1000);
}

fn unsafe_sigterm(pid: u32) {
    // SAFETY: sending a signal to our own child process by its pid.
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}
