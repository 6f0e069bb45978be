//! `kpr stats` (a table in the terminal), `kpr publish` (freeze a release) and
//! `kpr audit-release` (reproduce and audit one).

use std::path::PathBuf;

use clap::Args;

use crate::cli::args::ClientArgs;

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Release name (1-64 of A-Z a-z 0-9 . _ -); never overwritten.
    #[arg(long)]
    pub name: String,
    /// Year of the release (D = 31 December, P = the year).
    #[arg(long)]
    pub year: i32,
    /// Also audit the release as linked tables: report the suppressed person counts
    /// that all its published cells together determine or narrow below 5.
    #[arg(long)]
    pub audit: bool,
    /// Admin endpoint of the running register.
    #[arg(
        long,
        env = "KPR_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:8081"
    )]
    pub admin_endpoint: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct AuditReleaseArgs {
    /// Release name.
    #[arg(long)]
    pub name: String,
    /// Admin endpoint of the running register.
    #[arg(
        long,
        env = "KPR_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:8081"
    )]
    pub admin_endpoint: String,
    #[command(flatten)]
    pub client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Figure: T1-T4, I1-I18.
    pub figure: String,
    /// Region: a 2024 municipality code, EKnn for a county, EAK for the nation.
    #[arg(long, default_value = "EAK")]
    pub region: String,
    /// Year (D = 31 December, P = the year, unless --date/--period are given).
    #[arg(long)]
    pub year: Option<i32>,
    /// Status date D (YYYY-MM-DD).
    #[arg(long)]
    pub date: Option<String>,
    /// Period P (2024, 2024K3, 2024M07).
    #[arg(long)]
    pub period: Option<String>,
    /// Exact numbers (operator): asks the admin listener.
    #[arg(long)]
    pub exact: bool,
    /// Print CSV instead of aligned columns; `json-stat` prints JSON-stat.
    #[arg(long, default_value = "table")]
    pub output: String,
    /// Public statistics endpoint of a running register.
    #[arg(
        long,
        env = "KPR_STATS_ENDPOINT",
        default_value = "http://127.0.0.1:8080"
    )]
    pub endpoint: String,
    /// Admin endpoint of a running register (for --exact).
    #[arg(
        long,
        env = "KPR_ADMIN_ENDPOINT",
        default_value = "http://127.0.0.1:8081"
    )]
    pub admin_endpoint: String,
    /// Compute offline from the log of a stopped register in this data directory (exact).
    #[arg(long)]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// An operator's client for the release endpoints, which wait for a year's frame to be
/// protected as linked tables: minutes for a national frame, not seconds.
fn release_client(args: &ClientArgs) -> anyhow::Result<kpr::http_client::Client> {
    let client_config = args.config()?;
    let token =
        kpr::trust::Tokens::from_config(&client_config)?.for_role(kpr_auth::Role::Operator)?;
    let mut client = kpr::trust::http_client(&client_config, token)?;
    client.timeout = Some(std::time::Duration::from_secs(3600));
    Ok(client)
}

/// `kpr publish`.
pub async fn publish(args: PublishArgs) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/releases/{}?year={}{}",
        args.admin_endpoint.trim_end_matches('/'),
        args.name,
        args.year,
        if args.audit { "&audit=true" } else { "" }
    );
    let client = release_client(&args.client)?;
    let response = tokio::task::spawn_blocking(move || client.post(&url))
        .await??
        .expect_status(201)?;
    print!("{}", response.body);
    Ok(())
}

/// `kpr audit-release`: exit 0 when the release is reproduced byte for byte from the
/// log and its tables give no suppressed count away, 1 when not (the body says what).
pub async fn audit_release(args: AuditReleaseArgs) -> anyhow::Result<()> {
    let url = format!(
        "{}/v1/releases/{}/audit",
        args.admin_endpoint.trim_end_matches('/'),
        args.name
    );
    let client = release_client(&args.client)?;
    let response = tokio::task::spawn_blocking(move || client.get(&url)).await??;
    match response.status {
        200 => {
            print!("{}", response.body);
            Ok(())
        }
        409 => {
            print!("{}", response.body);
            anyhow::bail!("release {} does not hold (see above)", args.name)
        }
        _ => {
            response.expect_status(200)?;
            Ok(())
        }
    }
}

pub async fn stats(args: StatsArgs) -> anyhow::Result<()> {
    let format = if args.output == "json-stat" {
        kpr_statistics::Format::JsonStat
    } else {
        kpr_statistics::Format::Csv
    };
    let exact = args.exact || args.data.is_some();
    let query = kpr::stats::query_string(
        &args.region,
        args.year,
        args.date.as_deref(),
        args.period.as_deref(),
        format,
        exact,
    );
    let (body, position, exact) = match &args.data {
        Some(data) => {
            // Exact numbers from the log itself: an operator read, in the audit trail.
            let read = kpr::stats::offline_table(data, &args.figure, &query).await;
            let municipality = if args.region.len() == 4 {
                args.region.as_str()
            } else {
                ""
            };
            // A read-only copy of a data directory (a backup) cannot take the entry: the
            // read is still answered, and the operator is told.
            if let Err(e) = kpr::trust::record_cli(
                data,
                format!("stats {} {query} (offline, exact)", args.figure),
                municipality,
                None,
                &read
                    .as_ref()
                    .map(|_| ())
                    .map_err(|e| anyhow::anyhow!("{e}")),
            ) {
                tracing::warn!(error = %e, "this offline read is not in the audit trail");
            }
            let r = read?;
            (r.body, r.log_position, r.exact)
        }
        None => {
            let base = if args.exact {
                &args.admin_endpoint
            } else {
                &args.endpoint
            };
            let url = format!(
                "{}/v1/tables/{}?{query}",
                base.trim_end_matches('/'),
                args.figure
            );
            let client_config = args.client.config()?;
            let role = if args.exact {
                kpr_auth::Role::Operator
            } else {
                kpr_auth::Role::Statistics
            };
            // Published tables are read anonymously unless a token is given.
            let token = match (&client_config.token, &client_config.issuer_data, args.exact) {
                (None, None, _) | (None, Some(_), false) => None,
                _ => kpr::trust::Tokens::from_config(&client_config)?.for_role(role)?,
            };
            let client = kpr::trust::http_client(&client_config, token)?;
            let response = tokio::task::spawn_blocking(move || client.get(&url))
                .await??
                .expect_status(200)?;
            let position = response
                .header("x-kpr-log-position")
                .unwrap_or_default()
                .to_string();
            let exact = response.header("x-kpr-exact") == Some("true");
            (response.body, position, exact)
        }
    };
    match args.output.as_str() {
        "table" => print!("{}", kpr::stats::to_terminal(&body)),
        _ => print!("{body}"),
    }
    eprintln!(
        "{} at log position {position}{}",
        args.figure.to_uppercase(),
        if exact {
            "; EXACT numbers, not disclosure-controlled"
        } else {
            ""
        }
    );
    Ok(())
}
