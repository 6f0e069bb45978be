//! The statistics page as a person sees it: headless Chromium (Debian's `chromium`)
//! loads `/` from a register fed the demo population, runs the page's script against
//! the register's own API, and the test reads the rendered DOM: every number in the
//! table equals the API's answer for the same view, suppressed cells show `:`, the log
//! position and the API address are the answer's, and the chart is drawn. A
//! screenshot of each view is written under the target directory to be looked at.
//!
//! Without Chromium the test fails and says how to install it: a page nobody looked
//! at is not tested.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use kpr_domain::date::Date;

use crate::support::*;

fn chromium() -> PathBuf {
    if let Ok(path) = std::env::var("KPR_TEST_CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Ok(out) = Command::new("which").arg(name).output()
            && out.status.success()
        {
            return PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        }
    }
    panic!(
        "headless Chromium is not installed, so the statistics page cannot be tested: \
         apt-get install chromium (scripts/test.sh does), or set KPR_TEST_CHROMIUM"
    );
}

/// Runs headless Chromium on `url` until the page's script is done (virtual time),
/// returns the DOM it rendered and writes a screenshot to `screenshot`.
fn browse(url: &str, screenshot: &Path) -> String {
    let profile = tempfile::tempdir().unwrap();
    let common = [
        "--headless".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        "--disable-extensions".into(),
        format!("--user-data-dir={}", profile.path().display()),
        "--virtual-time-budget=20000".into(),
        "--window-size=1280,1000".into(),
    ];
    let out = Command::new(chromium())
        .args(&common)
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shot = Command::new(chromium())
        .args(&common)
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(url)
        .output()
        .expect("chromium runs");
    assert!(
        shot.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&shot.stderr)
    );
    let size = std::fs::metadata(screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 20_000,
        "the screenshot {} is {size} bytes",
        screenshot.display()
    );
    eprintln!("page screenshot: {}", screenshot.display());
    String::from_utf8(out.stdout).unwrap()
}

/// Attributes and text of every `<td>` that carries `data-cell`.
fn cells(dom: &str) -> BTreeMap<String, (BTreeMap<String, String>, String)> {
    let mut out = BTreeMap::new();
    let mut rest = dom;
    while let Some(start) = rest.find("<td ") {
        rest = &rest[start + 4..];
        let end = rest.find('>').unwrap();
        let (tag, after) = (&rest[..end], &rest[end + 1..]);
        let text = &after[..after.find("</td>").unwrap()];
        let mut attrs = BTreeMap::new();
        let mut t = tag;
        while let Some(eq) = t.find("=\"") {
            let name = t[..eq].trim().to_string();
            let close = t[eq + 2..].find('"').unwrap();
            attrs.insert(name, t[eq + 2..eq + 2 + close].to_string());
            t = &t[eq + 2 + close + 1..];
        }
        if let Some(key) = attrs.get("data-cell").cloned() {
            out.insert(key, (attrs, text.to_string()));
        }
        rest = after;
    }
    out
}

/// The text of the element with `id`.
fn text_of(dom: &str, id: &str) -> String {
    let at = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} on the page"));
    let open = at + dom[at..].find('>').unwrap() + 1;
    let close = open + dom[open..].find('<').unwrap();
    dom[open..close].to_string()
}

fn attribute_of(dom: &str, id: &str, name: &str) -> String {
    let at = dom.find(&format!("id=\"{id}\"")).unwrap();
    let tag_start = dom[..at].rfind('<').unwrap();
    let tag = &dom[tag_start..at + dom[at..].find('>').unwrap()];
    let key = format!("{name}=\"");
    let from = tag
        .find(&key)
        .unwrap_or_else(|| panic!("#{id} has no {name}"))
        + key.len();
    tag[from..from + tag[from..].find('"').unwrap()].replace("&amp;", "&")
}

/// The chart's SVG as rendered (not the script that draws it).
fn chart(dom: &str) -> &str {
    let start = dom
        .find("<svg id=\"chart-svg\"")
        .expect("a chart on the page");
    &dom[start..start + dom[start..].find("</svg>").unwrap()]
}

/// Every cell of a JSON-stat answer by its codes joined with `|` (as the page keys them).
fn api_cells(answer: &Value) -> BTreeMap<String, (Option<f64>, bool)> {
    let ids: Vec<String> = answer["id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let dims: Vec<Vec<String>> = ids
        .iter()
        .map(|id| {
            answer["dimension"][id]["category"]["index"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap().to_string())
                .collect()
        })
        .collect();
    let sizes: Vec<usize> = dims.iter().map(Vec::len).collect();
    let values = answer["value"].as_array().unwrap();
    let status = answer["status"].as_object().unwrap();
    let mut out = BTreeMap::new();
    for (offset, value) in values.iter().enumerate() {
        let mut rest = offset;
        let mut coords = vec![0; sizes.len()];
        for d in (0..sizes.len()).rev() {
            coords[d] = rest % sizes[d];
            rest /= sizes[d];
        }
        let key = coords
            .iter()
            .enumerate()
            .map(|(d, c)| dims[d][*c].as_str())
            .collect::<Vec<_>>()
            .join("|");
        out.insert(
            key,
            (value.as_f64(), status.contains_key(&offset.to_string())),
        );
    }
    out
}

/// Loads one view in the browser and checks it against the API.
async fn check_view(base: &str, view: &str, name: &str) -> String {
    let url = format!("{base}/?{view}");
    let screenshot =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("kpr-page-{name}.png"));
    let dom = {
        let url = url.clone();
        tokio::task::spawn_blocking(move || browse(&url, &screenshot))
            .await
            .unwrap()
    };
    assert!(
        dom.contains("data-ready=\"true\""),
        "the page's script did not finish: {dom}"
    );
    assert_eq!(text_of(&dom, "error"), "", "the page shows an error");
    let api_url = attribute_of(&dom, "api-url", "href");
    assert!(
        api_url.starts_with(&format!("{base}/v1/tables/")),
        "{api_url}"
    );
    let answer = get(&api_url).await.unwrap();
    assert_eq!(answer.status, 200, "{api_url}: {}", answer.body);
    assert_eq!(
        text_of(&dom, "log-position"),
        answer.header("x-kpr-log-position").unwrap(),
        "the page states the answer's log position"
    );
    let api = api_cells(&serde_json::from_str(&answer.body).unwrap());
    let page = cells(&dom);
    assert_eq!(
        page.keys().collect::<Vec<_>>(),
        api.keys().collect::<Vec<_>>(),
        "the page shows every cell of the answer"
    );
    let mut suppressed = 0;
    for (key, (value, hidden)) in &api {
        let (attrs, text) = &page[key];
        if *hidden {
            suppressed += 1;
            assert_eq!(text, ":", "{key}: a suppressed cell shows ':'");
            assert!(
                !attrs.contains_key("data-value"),
                "{key}: no number behind ':'"
            );
        } else if let Some(v) = value {
            let shown: f64 = text
                .replace(',', ".")
                .parse()
                .unwrap_or_else(|_| panic!("{key}: the page shows {text:?} for {v}"));
            assert_eq!(shown, *v, "{key}: the page shows {text:?}, the API {v}");
        } else {
            assert_eq!(text, "", "{key}: an undefined cell is empty");
        }
    }
    eprintln!(
        "{name}: {} cells on the page equal the API's ({suppressed} suppressed)",
        api.len()
    );
    dom
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_what_the_api_answers() {
    let (_dir, server) = demo_served(600, Date::from_ymd(2025, 6, 30).unwrap(), 5).await;
    let base = server.stats.clone();

    // A line over years for three regions.
    let dom = check_view(
        &base,
        "table=I3&region=EAK,0301,4601&tid=2023,2024,2025",
        "i3-years",
    )
    .await;
    assert_eq!(
        text_of(&dom, "title"),
        "Innbyggere 80 år og eldre med hjemmetjenester"
    );
    assert_eq!(
        chart(&dom).matches("class=\"series\"").count(),
        3,
        "one line per region"
    );
    assert!(
        dom.contains(">0301 Oslo</option>"),
        "regions are listed by name"
    );

    // Searching regions by name: what does not match is hidden, the chosen stay.
    let dom = check_view(&base, "table=I1&region=EAK&tid=2025&q=berg", "i1-search").await;
    let options: Vec<&str> = dom
        .split("<option ")
        .skip(1)
        .filter(|o| o.contains("</option>"))
        .collect();
    let shown: Vec<&str> = options
        .iter()
        .filter(|o| !o.contains("hidden=\"\"") && o.contains("value=\""))
        .filter_map(|o| o.split('>').nth(1)?.split('<').next())
        .filter(|label| {
            label
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit() || c == 'E')
        })
        .collect();
    assert!(shown.contains(&"4601 Bergen"), "{shown:?}");
    assert!(
        shown.contains(&"EAK Hele landet"),
        "the chosen region stays: {shown:?}"
    );
    assert!(!shown.contains(&"0301 Oslo"), "{shown:?}");
    assert!(shown.len() < 10, "{shown:?}");

    // Bars over regions for one year, in English, a table with suppressed cells.
    let dom = check_view(
        &base,
        "table=T2&region=EK46,4601,4602,1508&tid=2024&lang=en",
        "t2-regions-en",
    )
    .await;
    assert_eq!(
        text_of(&dom, "title"),
        "Recipients on the date, by service, age and sex"
    );
    assert!(
        dom.contains("data-kind=\"bars\""),
        "one year: bars over regions"
    );
    assert!(
        chart(&dom).matches("class=\"bar\"").count() >= 3,
        "a bar per region with a value"
    );
    assert!(
        dom.contains("data-status=\":\""),
        "the demo's small cells are suppressed on the page"
    );
    assert!(
        dom.contains(">CSV</a>") && dom.contains("outputFormat=csv"),
        "a CSV download"
    );
    server.stop().await;
}
