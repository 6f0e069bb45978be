//! `kpr rebuild` killed with SIGKILL at many points leaves a projection store that is
//! whole: what start-up restores from it is exactly a fresh fold of the log (the old
//! store or the new one, never a half-cleared mix).

use std::process::{Command, Stdio};
use std::sync::{Arc, RwLock};

use kpr_statistics::{Statistics, TableRequest};

use crate::support::*;

/// The exact tables the projection store in `data` restores, as served.
fn tables_from_store(data: &std::path::Path, year: i32) -> Vec<String> {
    let (_releases, store) = kpr_statistics::store::open_stores(&data.join("stats")).unwrap();
    let model = store.load().unwrap();
    let stats = Statistics::new(Arc::new(RwLock::new(model)));
    ["T1", "T2", "I1", "I6", "I16"]
        .iter()
        .map(|figure| {
            let request = TableRequest::parse(
                figure,
                &format!("region=EAK&year={year}&format=csv&exact=true"),
            )
            .unwrap();
            let rendered = stats.render(&request).unwrap();
            format!("{} {}", rendered.log_position, rendered.body)
        })
        .collect()
}

/// The same tables from a fresh fold of the log.
async fn tables_from_log(data: &std::path::Path, year: i32) -> Vec<String> {
    let mut out = Vec::new();
    for figure in ["T1", "T2", "I1", "I6", "I16"] {
        let rendered = kpr::stats::offline_table(
            data,
            figure,
            &format!("region=EAK&year={year}&format=csv&exact=true"),
        )
        .await
        .unwrap();
        out.push(format!("{} {}", rendered.log_position, rendered.body));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_anywhere_leaves_a_whole_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    demo_log(&data, 1500).await;
    let year = today().year() - 1;
    // (The store of a stopped server may lag the log: it catches up at the next start.)
    let expected = tables_from_log(&data, year).await;

    // How long a whole rebuild takes here, to spread the kills over it.
    let started = std::time::Instant::now();
    let full = Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args(["rebuild", "--data", data.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        full.status.success(),
        "{}",
        String::from_utf8_lossy(&full.stderr)
    );
    let whole = started.elapsed();
    assert_eq!(tables_from_store(&data, year), expected);

    let points = 12u32;
    let mut killed_midway = 0;
    for i in 0..points {
        let delay = whole.mul_f64(f64::from(i) / f64::from(points));
        let mut child = Command::new(env!("CARGO_BIN_EXE_kpr"))
            .args(["rebuild", "--data", data.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let _ = child.wait();
        if !finished {
            killed_midway += 1;
        }
        assert_eq!(
            tables_from_store(&data, year),
            expected,
            "after a SIGKILL {delay:?} into a rebuild (of {whole:?})"
        );
    }
    assert!(
        killed_midway >= points / 2,
        "only {killed_midway} of {points} kills hit a running rebuild"
    );
    // And the register serves from it as before.
    let server = InProcess::start(config(&data)).await;
    let r = tokio::task::spawn_blocking({
        let url = format!(
            "{}/v1/tables/T2?region=EAK&year={year}&format=csv&exact=true",
            server.admin
        );
        move || http_get(&url).unwrap()
    })
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    server.stop().await;
}
