//! The statistician's API as a statistician uses it, over a real HTTP client against a
//! register fed the demo population through gRPC: the catalogue, metadata in JSON-stat,
//! queries over many regions and years in one answer at one log position, names and
//! languages, notes, rounding and the cell limit.

use serde_json::Value;

use kpr_domain::date::Date;

use crate::support::*;

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The category codes of a JSON-stat dimension, in order (index as array or object).
fn codes(dataset: &Value, dim: &str) -> Vec<String> {
    let index = &dataset["dimension"][dim]["category"]["index"];
    match index {
        Value::Array(items) => items
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect(),
        Value::Object(map) => {
            let mut pairs: Vec<(u64, String)> = map
                .iter()
                .map(|(k, v)| (v.as_u64().unwrap(), k.clone()))
                .collect();
            pairs.sort();
            pairs.into_iter().map(|(_, k)| k).collect()
        }
        other => panic!("{dim}: no category index: {other}"),
    }
}

fn label(dataset: &Value, dim: &str, code: &str) -> String {
    dataset["dimension"][dim]["category"]["label"][code]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

fn position(dataset: &Value) -> String {
    dataset["extension"]["log_position"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{}:{}", p["partition"], p["records"]))
        .collect::<Vec<_>>()
        .join(",")
}

async fn get_ok(url: &str) -> kpr::http_client::HttpResponse {
    let r = get(url).await.unwrap();
    assert_eq!(r.status, 200, "GET {url}: {}", r.body);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalogue_metadata_and_queries_over_many_regions_and_years() {
    let (_dir, server) = demo_served(600, Date::from_ymd(2025, 6, 30).unwrap(), 11).await;
    let base = &server.stats;

    // Where things are.
    let page = get_ok(&format!("{base}/")).await;
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.body.contains("/v1/tables"));
    let index = json(&get_ok(&format!("{base}/v1")).await.body);
    assert_eq!(index["tables"], "/v1/tables");

    // The catalogue: every figure, with its periods and the position it reflects.
    let list = json(&get_ok(&format!("{base}/v1/tables")).await.body);
    let tables = list["tables"].as_array().unwrap();
    assert_eq!(tables.len(), 22);
    assert_eq!(tables[6]["id"], "I3");
    assert_eq!(
        tables[6]["label"],
        "Innbyggere 80 år og eldre med hjemmetjenester"
    );
    assert_eq!(tables[6]["referenceType"], "date");
    assert_eq!(tables[0]["referenceType"], "period");
    assert_eq!(tables[6]["lastPeriod"], "2025");
    assert!(tables[6]["firstPeriod"].as_str().unwrap() <= "2024");
    assert!(!list["logPosition"].as_array().unwrap().is_empty());
    let english = json(&get_ok(&format!("{base}/v1/tables?lang=en")).await.body);
    assert_eq!(
        english["tables"][6]["label"],
        "Inhabitants 80+ with home services"
    );

    // Metadata of every figure: its codes are the codes data answers use.
    for table in tables {
        let id = table["id"].as_str().unwrap();
        let meta = json(
            &get_ok(&format!("{base}/v1/tables/{id}/metadata"))
                .await
                .body,
        );
        assert_eq!(meta["version"], "2.0");
        assert_eq!(meta["class"], "dataset");
        assert!(
            meta["value"].as_object().unwrap().is_empty(),
            "{id}: metadata has no values"
        );
        let regions = codes(&meta, "Region");
        assert_eq!(regions.len(), 1 + 15 + 357, "{id}");
        assert_eq!(label(&meta, "Region", "4601"), "Bergen");
        let vestland: Vec<String> = meta["dimension"]["Region"]["category"]["child"]["EK46"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        assert_eq!(vestland.len(), 43, "{id}: Vestland's municipalities");
        let years = codes(&meta, "Tid");
        assert_eq!(years.last().map(String::as_str), Some("2025"), "{id}");
        let url = format!(
            "{base}/v1/tables/{id}/data?valueCodes[Region]=EAK,EK46,0301&valueCodes[Tid]=top(2)"
        );
        let r = get_ok(&url).await;
        let data = json(&r.body);
        for dim in meta["id"].as_array().unwrap() {
            let dim = dim.as_str().unwrap();
            let want = match dim {
                // In the order of the metadata, not of the request.
                "Region" => vec!["EAK".to_string(), "0301".into(), "EK46".into()],
                "Tid" => years[years.len() - 2..].to_vec(),
                _ => codes(&meta, dim),
            };
            assert_eq!(codes(&data, dim), want, "{id} {dim}");
            for code in &want {
                assert_eq!(
                    label(&data, dim, code),
                    label(&meta, dim, code),
                    "{id} {dim} {code}"
                );
            }
        }
        let cells: u64 = data["size"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_u64().unwrap())
            .product();
        assert_eq!(
            data["value"].as_array().unwrap().len() as u64,
            cells,
            "{id}"
        );
        assert_eq!(
            r.header("x-kpr-log-position").unwrap(),
            position(&data),
            "{id}"
        );
    }

    // I3 for every municipality and every year with data: one answer, one position,
    // official names, and each cell what the one-region answer says.
    let url = format!(
        "{base}/v1/tables/I3/data?codelist[Region]=vs_Kommuner&valueCodes[Region]=*&valueCodes[Tid]=*"
    );
    let r = get_ok(&url).await;
    let all = json(&r.body);
    let municipalities = codes(&all, "Region");
    assert_eq!(municipalities.len(), 357);
    assert_eq!(label(&all, "Region", "0301"), "Oslo");
    assert_eq!(label(&all, "Region", "4601"), "Bergen");
    let years = codes(&all, "Tid");
    let at = position(&all);
    assert_eq!(r.header("x-kpr-log-position").unwrap(), at);
    let values = all["value"].as_array().unwrap();
    let status = all["status"].as_object().unwrap();
    for region in ["0301", "4601", "1508", "5001", "1580"] {
        let ri = municipalities.iter().position(|m| m == region).unwrap();
        for (yi, year) in years.iter().enumerate() {
            let one = json(
                &get_ok(&format!("{base}/v1/tables/I3?region={region}&year={year}"))
                    .await
                    .body,
            );
            assert_eq!(position(&one), at, "the model did not move");
            for m in 0..3 {
                let offset = (ri * years.len() + yi) * 3 + m;
                assert_eq!(
                    values[offset], one["value"][m],
                    "I3 {region} {year} measure {m}"
                );
                assert_eq!(
                    status.get(&offset.to_string()),
                    one["status"].as_object().unwrap().get(&m.to_string()),
                    "I3 {region} {year} measure {m}: suppression"
                );
            }
        }
    }

    // A county's municipalities by wildcard, in CSV: one row per region and year.
    let csv = get_ok(&format!(
        "{base}/v1/tables/I3/data?valueCodes[Region]=46*&valueCodes[Tid]=top(2)&outputFormat=csv"
    ))
    .await;
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let rows: Vec<&str> = csv.body.lines().collect();
    assert_eq!(rows[0], "Region,Tid,teller,nevner,andel");
    assert_eq!(rows.len(), 1 + 43 * 2);
    assert!(rows[1..].iter().all(|r| r.starts_with("46")), "{rows:?}");

    // English labels everywhere.
    let t2 = json(
        &get_ok(&format!(
            "{base}/v1/tables/T2/data?valueCodes[Region]=4601&lang=en"
        ))
        .await
        .body,
    );
    assert_eq!(
        t2["label"],
        "Recipients on the date, by service, age and sex"
    );
    assert_eq!(label(&t2, "Kjonn", "2"), "Females");
    assert_eq!(label(&t2, "Alder", "080+"), "80 years or older");
    assert_eq!(t2["dimension"]["Kjonn"]["label"], "sex");
    assert_eq!(
        t2["dimension"]["ContentsCode"]["category"]["unit"]["personer"]["base"],
        "persons"
    );
    let refused = get(&format!("{base}/v1/tables/T2/data?lang=fr"))
        .await
        .unwrap();
    assert_eq!(refused.status, 400);

    // Rounded to the declared decimals; the operator's exact answer is not.
    let public = json(
        &get_ok(&format!(
            "{base}/v1/tables/I3/data?valueCodes[Region]=EAK&valueCodes[Tid]=2024"
        ))
        .await
        .body,
    );
    register_admin(&server.admin, &server.data);
    let exact = json(
        &get_ok(&format!(
            "{}/v1/tables/I3/data?valueCodes[Region]=EAK&valueCodes[Tid]=2024&exact=true",
            server.admin
        ))
        .await
        .body,
    );
    let (n, d) = (
        exact["value"][0].as_f64().unwrap(),
        exact["value"][1].as_f64().unwrap(),
    );
    assert_eq!(
        exact["value"][2].as_f64().unwrap(),
        n / d,
        "exact keeps full precision"
    );
    assert_eq!(
        public["value"][2].as_f64().unwrap(),
        ((n / d) * 1000.0).round() / 1000.0,
        "published share rounded to 3 decimals"
    );
    let refused = get(&format!("{base}/v1/tables/I3/data?exact=true"))
        .await
        .unwrap();
    assert_eq!(refused.status, 403, "{}", refused.body);

    // A year after the data: answered, with notes saying so.
    let future = json(
        &get_ok(&format!(
            "{base}/v1/tables/I3/data?valueCodes[Tid]=2031&lang=en"
        ))
        .await
        .body,
    );
    let notes: Vec<&str> = future["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert!(
        notes
            .iter()
            .any(|n| n.contains("1 January 2032 is not available")),
        "{notes:?}"
    );
    assert!(
        notes
            .iter()
            .any(|n| n.contains("2031-12-31 is after the last event")),
        "{notes:?}"
    );
    let old = json(
        &get_ok(&format!("{base}/v1/tables/I3?region=0301&year=2031"))
            .await
            .body,
    );
    assert!(
        old["note"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n.as_str().unwrap().contains("etter siste hendelse")),
        "the one-table answer carries the notes too: {old}"
    );

    // Too many cells: refused, saying how many.
    let r = get(&format!(
        "{base}/v1/tables/T2/data?valueCodes[Region]=*&valueCodes[Tid]=range(2000,2030)"
    ))
    .await
    .unwrap();
    assert_eq!(r.status, 400);
    assert!(
        r.body.contains("cells") && r.body.contains("at most"),
        "{}",
        r.body
    );
    let r = get(&format!("{base}/v1/tables/T2/data?valueCodes[Kjonn]=7"))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("Kjonn has no code \"7\""), "{}", r.body);
    server.stop().await;
}
