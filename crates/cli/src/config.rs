//! Reading the configuration, the one place Ferry reads its environment: defaults < the
//! TOML file < `FERRY_*` variables (`FERRY_DATABASE__URL`, …; `__` separates levels), and
//! `RUST_LOG` over `telemetry.log_filter`. Libraries are handed the result.

use std::path::Path;

use ferry_config::{Config, ConfigError};
use figment::providers::Env;

pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    // Settings are `FERRY_<SECTION>__<FIELD>` (and the one top-level `FERRY_TENANTS_DIR`);
    // other `FERRY_*` variables belong to Ferry's tools (`FERRY_CONFIG` names the file,
    // `FERRY_NATS_SERVER` the test harness's nats-server, …) and are not settings.
    let environment = Env::prefixed("FERRY_")
        .filter(|key| key.as_str().contains("__") || key == "tenants_dir")
        .split("__");
    let mut config = Config::from_figment(Config::figment(file).merge(environment))?;
    let rust_log = std::env::var("RUST_LOG");
    if let Ok(filter) = rust_log
        && !filter.is_empty()
    {
        config.telemetry.log_filter = filter;
    }
    Ok(config)
}
