//! `ferry migrate` as the chart's hook runs it: the database migrated and the JetStream
//! streams provisioned, once, before the services start; a service told not to provision
//! (as the chart tells it) then finds the streams, and without them says what to run.

use std::sync::Arc;

use ferry_runtime::nats::{StreamKind, Topology};
use ferry_testing::TestEnv;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_migrate_job_prepares_what_services_then_only_check() {
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.nats.provision_on_start = false;
    config.database.migrate_on_start = false;

    // Before the job: a service refuses to start, saying what to run.
    let refused = ferry_platform::Platform::open(
        ferry_transform::SERVICE,
        Arc::new(config.clone()),
        CancellationToken::new(),
        ferry_runtime::Readiness::default(),
    )
    .await;
    let Err(e) = refused else {
        panic!("a service started without its streams")
    };
    assert!(e.to_string().contains("run `ferry migrate`"), "{e}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .arg("migrate")
        .env("FERRY_DATABASE__URL", &env.database_url)
        .env("FERRY_NATS__URL", &env.nats_url)
        .env("FERRY_NATS__PREFIX", &env.prefix)
        .output()
        .expect("ferry runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let said = String::from_utf8_lossy(&output.stdout);
    assert!(
        said.contains("migrations applied") && said.contains("streams provisioned"),
        "{said}"
    );
    let client = async_nats::connect(&env.nats_url).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let topology = Topology::new(&env.prefix);
    for kind in StreamKind::ALL {
        js.get_stream(topology.stream_name(kind))
            .await
            .expect("the job provisioned the stream");
    }

    // After it, the service starts without provisioning or migrating anything itself.
    let shutdown = CancellationToken::new();
    let platform = ferry_platform::Platform::open(
        ferry_transform::SERVICE,
        Arc::new(config),
        shutdown.clone(),
        ferry_runtime::Readiness::default(),
    )
    .await
    .expect("the service finds what the job prepared");
    shutdown.cancel();
    drop(platform);
    env.cleanup().await;
}
