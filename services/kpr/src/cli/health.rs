//! `kpr health`: the gRPC health check over TLS, for container probes.

use anyhow::Context;
use clap::Args;

use crate::cli::args::ClientArgs;

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// gRPC endpoint (https:// for TLS).
    #[arg(long, env = "KPR_ENDPOINT", default_value = "http://127.0.0.1:50051")]
    endpoint: String,
    /// The service to ask about ("" for the whole server).
    #[arg(long, default_value = "")]
    service: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn health(args: HealthArgs) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    let channel = kpr::trust::channel(
        &args.endpoint,
        &args.client.config()?,
        std::time::Duration::from_secs(5),
    )
    .await?;
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let request = tonic_health::pb::HealthCheckRequest {
        service: args.service.clone(),
    };
    let status = tokio::time::timeout(std::time::Duration::from_secs(5), client.check(request))
        .await
        .context("no health answer within 5 s")??
        .into_inner()
        .status;
    let name = ServingStatus::try_from(status)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    println!("{name}");
    anyhow::ensure!(
        status == ServingStatus::Serving as i32,
        "not serving: {name}"
    );
    Ok(())
}
