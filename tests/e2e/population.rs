//! `kpr refdata import` with table 07459 in Statistics Norway's own shapes, through the
//! real binary: JSON-stat 2.0 as SSB's API returns it and the CSV SSB's pages download
//! are imported and used; a file that lacks a municipality, or has one row, is refused
//! naming what is missing, and the figures do not change.

use std::path::Path;
use std::process::Command;

use serde_json::json;

use crate::support::*;

fn shipped_2026() -> Vec<(String, String, u32, String)> {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../refdata/befolkning_kommune_kjonn_alder_2024-2026.csv"),
    )
    .unwrap();
    shipped
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("2026,"))
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            let age: u32 = c[3].trim_end_matches('+').parse().unwrap();
            // Oslo's 80+ as 40 men of 85 and 60 women of 92, to see the file in use.
            let persons = match (c[1], c[2], age) {
                ("0301", "1", 85) => "40".to_string(),
                ("0301", "2", 92) => "60".to_string(),
                ("0301", _, a) if a >= 80 => "0".to_string(),
                _ => c[4].to_string(),
            };
            (c[1].to_string(), c[2].to_string(), age, persons)
        })
        .collect()
}

fn age_code(age: u32) -> String {
    if age == 105 {
        "105+".into()
    } else {
        format!("{age:03}")
    }
}

/// The year as SSB's API returns it: JSON-stat 2.0, Region with the nation and a county
/// before the municipalities and a past code with empty cells, `index` as an object.
fn json_stat(rows: &[(String, String, u32, String)], year: i32) -> String {
    let mut regions: Vec<String> = vec!["0".into(), "03".into(), "0101".into()];
    for (code, ..) in rows {
        if !regions.contains(code) {
            regions.push(code.clone());
        }
    }
    let index = |codes: &[String]| {
        serde_json::Value::Object(
            codes
                .iter()
                .enumerate()
                .map(|(i, c)| (c.clone(), json!(i)))
                .collect(),
        )
    };
    let ages: Vec<String> = (0..=105).map(age_code).collect();
    let by_cell: std::collections::HashMap<(&str, &str, u32), u64> = rows
        .iter()
        .map(|(c, s, a, p)| ((c.as_str(), s.as_str(), *a), p.parse().unwrap()))
        .collect();
    let mut values = Vec::new();
    for region in &regions {
        for sex in ["1", "2"] {
            for age in 0..=105u32 {
                let v = by_cell.get(&(region.as_str(), sex, age)).map(|n| json!(n));
                values.push(match region.as_str() {
                    "0" | "03" => json!(1000),
                    "0101" => serde_json::Value::Null,
                    _ => v.unwrap_or(serde_json::Value::Null),
                });
            }
        }
    }
    json!({
        "version": "2.0", "class": "dataset",
        "label": "07459: Befolkning, etter region, kjønn, alder, statistikkvariabel og år",
        "source": "Statistisk sentralbyrå",
        "id": ["Region", "Kjonn", "Alder", "ContentsCode", "Tid"],
        "size": [regions.len(), 2, 106, 1, 1],
        "role": {"geo": ["Region"], "metric": ["ContentsCode"], "time": ["Tid"]},
        "dimension": {
            "Region": {"label": "region", "category": {"index": index(&regions)}},
            "Kjonn": {"label": "kjønn", "category": {"index": index(&["1".into(), "2".into()]), "label": {"1": "Menn", "2": "Kvinner"}}},
            "Alder": {"label": "alder", "category": {"index": index(&ages)}},
            "ContentsCode": {"label": "statistikkvariabel", "category": {"index": {"Personer1": 0}, "label": {"Personer1": "Personer"}}},
            "Tid": {"label": "år", "category": {"index": {year.to_string(): 0}}},
        },
        "value": values,
    })
    .to_string()
}

/// The year as SSB's pages download it: semicolon CSV, a title line, code and text.
fn ssb_csv(rows: &[(String, String, u32, String)], year: i32) -> String {
    let mut out = String::from(
        "\"07459: Befolkning, etter region, kjønn, alder, statistikkvariabel og år\"\n\n\
         \"region\";\"kjønn\";\"alder\";\"statistikkvariabel\";\"år\";\"Befolkning\"\n",
    );
    for (code, sex, age, persons) in rows {
        let sex_text = if sex == "1" { "1 Menn" } else { "2 Kvinner" };
        let age_text = if *age == 105 {
            "105+ 105 år eller eldre".to_string()
        } else {
            format!("{} {age} år", age_code(*age))
        };
        out.push_str(&format!(
            "\"{code} Kommune\";\"{sex_text}\";\"{age_text}\";\"Personer\";\"{year}\";{persons}\n"
        ));
    }
    out
}

fn import(data: &Path, file: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kpr"))
        .args(["refdata", "import", "--data"])
        .arg(data)
        .arg(file)
        .output()
        .unwrap()
}

async fn oslo_i1_2026(data: &Path) -> (Option<String>, String) {
    let server = InProcess::start(config(data)).await;
    register_admin(&server.admin, &server.data);
    let r = get(&format!(
        "{}/v1/tables/I1?region=0301&year=2026&format=csv&exact=true",
        server.admin
    ))
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let year = r.header("x-kpr-population-year").map(str::to_string);
    server.stop().await;
    (year, r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssb_json_stat_and_csv_are_imported_and_partial_years_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let rows = shipped_2026();

    // JSON-stat 2.0 for 2027: imported, and used for the status on 31 December 2026.
    let file = dir.path().join("07459.json");
    std::fs::write(&file, json_stat(&rows, 2027)).unwrap();
    let out = import(&data, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (year, table) = oslo_i1_2026(&data).await;
    assert_eq!(year.as_deref(), Some("2027"));
    assert!(
        table.lines().nth(1).unwrap().ends_with(",0,100,0"),
        "{table}"
    );
    let stored = std::fs::read(kpr::refdata::population_path(&data)).unwrap();

    // Refused, naming what is missing, and nothing changes.
    let without_bergen: Vec<_> = rows.iter().filter(|r| r.0 != "4601").cloned().collect();
    for (name, text, needle) in [
        (
            "no-bergen.csv",
            ssb_csv(&without_bergen, 2028),
            "1 of the 357 municipalities are missing (first 4601)",
        ),
        (
            "no-bergen.json",
            json_stat(&without_bergen, 2028),
            "(first 4601)",
        ),
        ("one-row.csv", ssb_csv(&rows[..1], 2028), "municipalities are missing"),
        (
            "not-07459.json",
            "{\"version\":\"2.0\",\"class\":\"dataset\",\"id\":[\"Region\"],\"size\":[1],\"dimension\":{\"Region\":{\"category\":{\"index\":[\"0301\"]}}},\"value\":[1]}".into(),
            "no Kjonn dimension",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let out = import(&data, &path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(stderr.contains(needle), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(
            std::fs::read(kpr::refdata::population_path(&data)).unwrap(),
            stored,
            "{name}: the stored population changed"
        );
    }
    assert_eq!(
        oslo_i1_2026(&data).await,
        (year, table),
        "the figures did not change"
    );

    // The CSV download of a whole year: imported.
    let file = dir.path().join("07459.csv");
    std::fs::write(&file, ssb_csv(&rows, 2028)).unwrap();
    let out = import(&data, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(kpr::refdata::population_path(&data)).unwrap();
    assert!(
        text.lines().any(|l| l == "2028,0301,1,85,40"),
        "the CSV's year is stored"
    );
    assert!(
        text.lines().any(|l| l == "2027,0301,1,85,40"),
        "the year imported before is kept"
    );
    let (year, _) = oslo_i1_2026(&data).await;
    assert_eq!(
        year.as_deref(),
        Some("2027"),
        "2026's status still uses 1 January 2027"
    );
}
