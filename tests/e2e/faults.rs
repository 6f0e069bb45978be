//! The read-only tools on a stopped register's log: `kpr verify` and `kpr inspect`
//! change no byte of the data directory, and damage gives exit 1 with a message naming
//! the log, never a panic.

use std::path::Path;
use std::process::Command;

use crate::support::*;

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    out
}

fn kpr(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args(args)
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_and_inspect_write_nothing_and_report_damage_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_log(&data, 2000).await;
    let data_arg = data.to_str().unwrap();

    let before = snapshot(&data.join("log"));
    let (ok, said) = kpr(&["verify", "--data", data_arg]);
    assert!(ok, "{said}");
    assert!(said.starts_with("ok: "), "{said}");
    let (ok, said) = kpr(&["inspect", "--data", data_arg]);
    assert!(ok, "{said}");
    let year = today().year().to_string();
    let (ok, said) = kpr(&["stats", "T2", "--year", &year, "--data", data_arg]);
    assert!(ok, "{said}");
    assert!(
        snapshot(&data.join("log")) == before,
        "verify, inspect or stats --data changed the log directory"
    );

    // Damage as operators have met it: the database file truncated by 4 KiB, by 100 KiB,
    // to nothing, and one flipped byte. Each on a fresh copy of the good directory.
    let good = data.with_extension("good");
    copy_tree(&data, &good);
    let db_len = std::fs::metadata(data.join("log").join("db"))
        .unwrap()
        .len();
    // A stored record's bytes, to damage one record for real.
    let needle: Vec<u8> = read_log(&data).await[100].payload.to_vec();
    type Damage = Box<dyn Fn(&mut Vec<u8>)>;
    let damages: Vec<(&str, Damage)> = vec![
        (
            "truncated by 4 KiB",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len().saturating_sub(4096))),
        ),
        (
            "truncated by 100 KiB",
            Box::new(|b: &mut Vec<u8>| b.truncate(b.len().saturating_sub(100 * 1024))),
        ),
        ("truncated to zero", Box::new(|b: &mut Vec<u8>| b.clear())),
        (
            "one byte flipped in a stored record",
            Box::new(move |b: &mut Vec<u8>| {
                // sled's file also holds dead space and older copies of pages: flip the
                // middle byte of every copy of one stored record, so the live one is hit.
                let mut at = 0;
                let mut flipped = 0;
                while let Some(found) = find(&b[at..], &needle) {
                    let middle = at + found + needle.len() / 2;
                    b[middle] ^= 0xff;
                    flipped += 1;
                    at = at + found + needle.len();
                }
                assert!(flipped > 0, "the record's bytes are not in the file");
            }),
        ),
    ];
    assert!(
        db_len > 200 * 1024,
        "the demo log is too small to truncate by 100 KiB: {db_len} {:?}",
        snapshot(&good)
            .into_iter()
            .map(|(p, b)| (p, b.len()))
            .collect::<Vec<_>>()
    );
    for (what, damage) in &damages {
        let _ = std::fs::remove_dir_all(&data);
        copy_tree(&good, &data);
        let db = data.join("log").join("db");
        let mut bytes = std::fs::read(&db).unwrap();
        damage(&mut bytes);
        std::fs::write(&db, &bytes).unwrap();
        let damaged = snapshot(&data.join("log"));
        for command in ["verify", "inspect"] {
            let (ok, said) = kpr(&[command, "--data", data_arg]);
            assert!(!ok, "{what}: {command} accepted a damaged log: {said}");
            assert!(
                !said.contains("panicked"),
                "{what}: {command} panicked: {said}"
            );
            assert!(
                said.contains(&data.join("log").display().to_string()),
                "{what}: {command} does not name the log: {said}"
            );
        }
        assert!(
            snapshot(&data.join("log")) == damaged,
            "{what}: verify or inspect wrote to a damaged log"
        );
        // kpr serve refuses it too, also with the projection store moved away.
        let _ = std::fs::remove_dir_all(data.join("stats"));
        let (ok, said) = kpr(&[
            "serve",
            "--data",
            data_arg,
            "--addr",
            "127.0.0.1:0",
            "--stats-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ]);
        assert!(!ok, "{what}: kpr serve started on a damaged log: {said}");
        assert!(
            !said.contains("panicked"),
            "{what}: kpr serve panicked: {said}"
        );
        assert!(
            said.contains("incomplete")
                || said.contains("damaged")
                || said.contains("commit record"),
            "{what}: kpr serve does not say what is wrong: {said}"
        );
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
