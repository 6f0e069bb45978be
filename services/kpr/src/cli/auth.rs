//! `kpr auth token`: mint an access token from the local issuer.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum AuthCommand {
    /// Mint an access token from the local issuer (prints it on stdout).
    Token(TokenArgs),
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// Data directory whose local issuer signs (created by `kpr serve`).
    #[arg(long, env = "KPR_DATA", default_value = "data")]
    data: PathBuf,
    /// Role: ingest, statistics or operator (repeatable).
    #[arg(long, required = true)]
    role: Vec<String>,
    /// Municipality an ingest token writes for (its organisation number is looked up).
    #[arg(long, conflicts_with = "org_number")]
    municipality: Option<String>,
    /// Organisation number the token names (HelseID's orgnr_parent claim).
    #[arg(long)]
    org_number: Option<String>,
    /// Client id (default: kpr-local-<municipality or role>).
    #[arg(long)]
    client_id: Option<String>,
    /// Lifetime: 30s, 15m, 1h, 7d.
    #[arg(long, default_value = "1h")]
    ttl: String,
}

/// Parses a lifetime such as `30s`, `15m`, `1h` or `7d` into seconds.
pub fn parse_ttl(text: &str) -> anyhow::Result<u64> {
    let (number, unit) = text.split_at(text.trim_end_matches(char::is_alphabetic).len());
    let n: u64 = number
        .parse()
        .with_context(|| format!("--ttl {text}: use 30s, 15m, 1h or 7d"))?;
    let factor = match unit {
        "s" | "" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => anyhow::bail!("--ttl {text}: use 30s, 15m, 1h or 7d"),
    };
    anyhow::ensure!(
        n > 0 && n * factor <= 366 * 86_400,
        "--ttl {text}: between 1 s and 366 days"
    );
    Ok(n * factor)
}

pub fn auth_token(args: TokenArgs) -> anyhow::Result<()> {
    let mut roles = Vec::new();
    for name in &args.role {
        roles.push(
            kpr_auth::Role::from_name(name)
                .with_context(|| format!("--role {name}: use ingest, statistics or operator"))?,
        );
    }
    let org_number = match (&args.municipality, &args.org_number) {
        (Some(code), _) => Some(
            kpr::trust::bindings(None)?
                .org_number_of(code)
                .with_context(|| format!("no organisation number is bound to municipality {code}; give --org-number and bind it with --auth-bindings on the server"))?
                .to_string(),
        ),
        (None, Some(org)) => Some(org.clone()),
        (None, None) => None,
    };
    anyhow::ensure!(
        org_number.is_some() || !roles.contains(&kpr_auth::Role::Ingest),
        "an ingest token names its municipality: give --municipality or --org-number"
    );
    let client_id = args
        .client_id
        .clone()
        .unwrap_or_else(|| match &args.municipality {
            Some(code) => format!("kpr-local-{code}"),
            None => format!("kpr-local-{}", args.role.join("-")),
        });
    let ttl = parse_ttl(&args.ttl)?;
    let token = kpr::trust::mint(&args.data, &client_id, &roles, org_number.clone(), ttl)?;
    // Minting is an operator action: it is in the audit trail.
    kpr::trust::record_cli(
        &args.data,
        format!(
            "auth token {} for {client_id} ({ttl} s)",
            args.role.join(",")
        ),
        args.municipality.as_deref().unwrap_or_default(),
        org_number,
        &Ok(()),
    )?;
    println!("{token}");
    Ok(())
}
