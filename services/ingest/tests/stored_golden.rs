//! Golden bytes of the stored-event codec. The log keeps these bytes forever: a change
//! of the encoding must not change what an event of any kind encodes to, and bytes
//! written by earlier versions must still decode to the same event.
//!
//! `tests/golden/stored_events.txt` holds one line per event kind: a name and the hex
//! of the stored bytes. To bless a deliberate format change (a new layout with its own
//! version, never an edit of an old one), run with `KPR_BLESS=1` and review the diff.
//! The events come from the demo generator at a fixed date: a change of the generator
//! shows here too, and is blessed the same way once the decode test still passes on the
//! old file.

// Test code: a failed step must panic with its reason.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use kpr_domain::date::Date;
use kpr_domain::event::{CorrectionAction, Payload};
use kpr_domain::validate::Rules;
use kpr_ingest::Pseudonymiser;

fn golden_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden/stored_events.txt")
}

fn kind_name(payload: &Payload) -> String {
    match payload {
        Payload::Correction(c) => match &c.action {
            CorrectionAction::Void => "correction.void".into(),
            CorrectionAction::Replace(r) => format!("correction.replace.{}", r.kind().field_name()),
        },
        other => other.kind().field_name().to_string(),
    }
}

/// The first event of every kind in a fixed demo population, prepared as ingest does
/// with a fixed key and receive time: name → stored bytes.
fn current() -> BTreeMap<String, Vec<u8>> {
    let today = Date::from_ymd(2025, 6, 30).unwrap();
    let mut config = kpr_synth::DemoConfig::standard(today);
    config.persons = 400;
    let key = Pseudonymiser::new([7; 32]);
    let rules = Rules {
        today,
        allow_synthetic_ids: true,
    };
    let mut out = BTreeMap::new();
    for batch in kpr_synth::generate(&config) {
        let prepared =
            kpr_ingest::prepare::prepare(&key, &batch.events, &rules, 1_750_000_000_000).unwrap();
        for (event, _, bytes) in prepared {
            out.entry(kind_name(&event.payload))
                .or_insert_with(|| bytes.to_vec());
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

fn golden() -> BTreeMap<String, Vec<u8>> {
    let text = std::fs::read_to_string(golden_path()).unwrap();
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (name, bytes) = l.split_once(' ').unwrap();
            (name.to_string(), unhex(bytes))
        })
        .collect()
}

#[test]
fn every_event_kind_encodes_to_its_golden_bytes() {
    let current = current();
    if std::env::var_os("KPR_BLESS").is_some() {
        let mut text =
            String::from("# kind hex-of-stored-bytes (services/ingest/tests/stored_golden.rs)\n");
        for (name, bytes) in &current {
            text.push_str(&format!("{name} {}\n", hex(bytes)));
        }
        std::fs::write(golden_path(), text).unwrap();
        panic!(
            "blessed {}: review the diff, then run again without KPR_BLESS",
            golden_path().display()
        );
    }
    // Every kind, and both correction actions, must be covered.
    for kind in [
        "service_applied",
        "service_decided",
        "service_started",
        "service_hours_changed",
        "service_paused",
        "service_resumed",
        "service_ended",
        "waiting_list_entered",
        "functional_assessment",
        "health_check",
        "person_died",
        "correction.void",
    ] {
        assert!(
            current.contains_key(kind),
            "the demo population has no {kind} event"
        );
    }
    assert!(current.keys().any(|k| k.starts_with("correction.replace.")));
    assert_eq!(
        golden().keys().collect::<Vec<_>>(),
        current.keys().collect::<Vec<_>>(),
        "the kinds covered changed"
    );
    for (name, bytes) in golden() {
        assert_eq!(
            hex(&current[&name]),
            hex(&bytes),
            "{name} encodes differently"
        );
    }
}

#[test]
fn golden_bytes_still_decode_to_the_same_events() {
    let current = current();
    for (name, bytes) in golden() {
        let (old, old_meta) = kpr_wire::decode_stored(&bytes).unwrap();
        let (new, new_meta) = kpr_wire::decode_stored(&current[&name]).unwrap();
        assert_eq!(old, new, "{name}");
        assert_eq!(old_meta.content_digest, new_meta.content_digest, "{name}");
        assert_eq!(old_meta.received_at_unix_ms, 1_750_000_000_000, "{name}");
        assert_eq!(kind_name(&old.payload), name);
    }
}
