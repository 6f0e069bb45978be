//! `kpr demo`: the synthetic population through the gRPC API.

use clap::Args;

use crate::cli::args::ClientArgs;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address of a running register.
    #[arg(long, env = "KPR_ENDPOINT", default_value = "http://127.0.0.1:50051")]
    pub endpoint: String,
    /// Seed of the synthetic population.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of persons.
    #[arg(long, default_value_t = 2000)]
    pub persons: u32,
    /// Send the national data set (every municipality, sized by its population)
    /// instead of the demo population.
    #[arg(long)]
    pub national: bool,
    /// Share of the country in the national data set.
    #[arg(long, default_value_t = 1.0, requires = "national")]
    pub scale: f64,
    /// Years of history of the national data set.
    #[arg(long, default_value_t = 10, requires = "national")]
    pub years: u32,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub client: ClientArgs,
}

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let today = kpr_domain::Date::from_unix_ms(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0),
    );
    let summary = if args.national {
        let config = kpr_synth::NationalConfig {
            seed: args.seed,
            scale: args.scale,
            first_year: today.year() - args.years.min(100) as i32,
            ..kpr_synth::NationalConfig::standard(today)
        };
        kpr::demo::run_national(&args.endpoint, &args.client.config()?, &config, !args.quiet)
            .await?
    } else {
        let mut config = kpr_synth::DemoConfig::standard(today);
        config.seed = args.seed;
        config.persons = args.persons;
        kpr::demo::run(&args.endpoint, &args.client.config()?, &config, !args.quiet).await?
    };
    println!(
        "demo: {} batches, {} events stored, {} already stored (duplicates), {} batches refused, {:.1} s ({:.0} events/s)",
        summary.batches,
        summary.stored,
        summary.duplicates,
        summary.rejected_batches,
        summary.seconds,
        (summary.stored + summary.duplicates) as f64 / summary.seconds.max(1e-9)
    );
    if summary.rejected_batches > 0 {
        anyhow::bail!("{} demo batches were refused", summary.rejected_batches);
    }
    Ok(())
}
