//! `medledger bench` (being written).

#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {}

pub async fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("not built yet")
}
