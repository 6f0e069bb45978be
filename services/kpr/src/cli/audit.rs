//! `kpr audit` and `kpr audit verify`: list the audit trail, check its hash chain.

use std::path::PathBuf;

use clap::Args;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// `verify`: check the hash chain and name the first broken entry.
    action: Option<String>,
    /// Data directory of the register.
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
    /// Entries at or after this time (RFC 3339 prefix, e.g. 2026-12-03 or 2026-12-03T17:00).
    #[arg(long)]
    since: Option<String>,
    /// Entries of this client id.
    #[arg(long)]
    client: Option<String>,
    /// Entries for this municipality.
    #[arg(long)]
    municipality: Option<String>,
    /// `json` prints one JSON object per line (as stored); default aligned text.
    #[arg(long, default_value = "text")]
    format: String,
}

pub fn audit(args: AuditArgs) -> anyhow::Result<()> {
    let dir = kpr::trust::audit_dir(&args.data);
    match args.action.as_deref() {
        Some("verify") => {
            let report = kpr_audit::verify(&dir)?;
            println!(
                "ok: {} entries ({}–{}), the hash chain holds{}; head {}",
                report.entries,
                report.first_seq,
                report.last_seq,
                if report.anchored {
                    " from the oldest kept entry (older ones removed by retention)"
                } else {
                    ""
                },
                report.head
            );
            Ok(())
        }
        Some(other) => anyhow::bail!("kpr audit {other}: the action is `verify` (or none to list)"),
        None => {
            use std::io::Write;
            let entries = kpr_audit::read(&dir)?;
            let mut out = std::io::stdout().lock();
            for entry in entries.iter().filter(|e| {
                args.since.as_deref().is_none_or(|s| e.time.as_str() >= s)
                    && args.client.as_deref().is_none_or(|c| e.client == c)
                    && args
                        .municipality
                        .as_deref()
                        .is_none_or(|m| e.municipality == m)
            }) {
                let written = if args.format == "json" {
                    writeln!(out, "{}", serde_json::to_string(entry)?)
                } else {
                    let r = entry;
                    writeln!(
                        out,
                        "{:>6} {} {:<22} {:<10} {:<4} {:<44} {:<4} {:>5} {:<18} {}{}",
                        entry.seq,
                        entry.time,
                        r.client,
                        r.role,
                        r.channel,
                        r.method,
                        r.municipality,
                        r.events,
                        r.outcome,
                        r.rule,
                        if r.positions.is_empty() {
                            String::new()
                        } else {
                            format!(" {}", r.positions)
                        }
                    )
                };
                match written {
                    Ok(()) => {}
                    // `kpr audit | head`: the reader has what it wanted.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(())
        }
    }
}
