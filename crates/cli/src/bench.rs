pub async fn pipeline(_a: PipelineArgs) -> anyhow::Result<()> { Ok(()) }
#[derive(clap::Args, Debug)] pub struct PipelineArgs {}
