//! One brand's configuration: its Centra (and its share of Centra's quotas), its ERP
//! connector's table, its rules, and how shipments and stock flow for it.

use std::collections::BTreeMap;
use std::time::Duration;

use ferry_domain::Rules;
use secrecy::SecretString;
use serde::Deserialize;

/// One brand: its Centra, its ERP and its order-to-cash rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Short, stable id: lowercase letters, digits, `-` and `_`. It is part of every subject.
    pub id: String,
    #[serde(default)]
    pub display_name: String,
    pub centra: CentraConfig,
    pub erp: ErpConfig,
    #[serde(default)]
    pub rules: Rules,
    #[serde(default)]
    pub fulfilment: FulfilmentConfig,
    #[serde(default)]
    pub inventory: InventoryConfig,
    #[serde(default)]
    pub targets: TargetsConfig,
    /// Who hears about this brand's exceptions, and where.
    #[serde(default)]
    pub notifications: crate::NotificationsConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CentraConfig {
    /// The Integration API endpoint, e.g. `https://brand.centra.com/graphql`.
    pub url: String,
    pub token: SecretString,
    /// The secret configured in Centra's webhook plugin.
    pub webhook_secret: SecretString,
    /// Centra's plan, for the quotas Centra documents for it (`fresh`, `growth`,
    /// `enterprise`); the `*_per_*` figures below override single buckets.
    #[serde(default)]
    pub plan: ferry_domain::quota::Plan,
    /// Percent of every bucket Ferry may spend: Centra's quotas are shared by every
    /// integration of the environment.
    #[serde(default = "default_share_percent")]
    pub share_percent: u64,
    /// Requests per 10 s (the plan's unless set).
    #[serde(default)]
    pub requests_per_10s: Option<u64>,
    #[serde(default)]
    pub requests_per_hour: Option<u64>,
    /// Query complexity points per 10 s and per hour.
    #[serde(default)]
    pub complexity_per_10s: Option<u64>,
    #[serde(default)]
    pub complexity_per_hour: Option<u64>,
    #[serde(default = "default_centra_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Poll Centra's Events queue for order changes (the token needs `Event:read` and
    /// `Event:write`, and Centra must have enabled Events for the integration).
    #[serde(default)]
    pub events: bool,
    /// How often the Events queue is polled when it is empty (Centra suggests a minute).
    #[serde(default = "default_events_poll", with = "humantime_serde")]
    pub events_poll: Duration,
    /// How often ingest asks Centra for every order changed since the last resync: the
    /// safety net for dropped webhooks. `0s` turns it off.
    #[serde(default = "default_resync_interval", with = "humantime_serde")]
    pub resync_interval: Duration,
    /// How far each resync looks back before the previous one began (late commits, clock
    /// skew between Centra and Ferry).
    #[serde(default = "default_resync_overlap", with = "humantime_serde")]
    pub resync_overlap: Duration,
    /// How often ingest reads again, by id, the returns it saw pending: the safety net for
    /// a completion whose webhook and event were both lost (Centra documents no listing of
    /// returns by time to resync them). `0s` turns it off.
    #[serde(default = "default_returns_recheck", with = "humantime_serde")]
    pub returns_recheck: Duration,
    /// Mutations per 10 s and per hour, shared by every Ferry service that writes to this
    /// Centra (the plan's unless set).
    #[serde(default)]
    pub mutations_per_10s: Option<u64>,
    #[serde(default)]
    pub mutations_per_hour: Option<u64>,
}

pub use ferry_domain::quota::Caller as CentraCaller;

impl CentraConfig {
    /// The quotas Ferry may spend: the plan's, with the figures set here, times
    /// `share_percent`.
    pub fn quotas(&self) -> ferry_domain::quota::Quotas {
        let plan = self.plan.quotas();
        ferry_domain::quota::Quotas {
            requests_per_10s: self.requests_per_10s.or(plan.requests_per_10s),
            requests_per_hour: self.requests_per_hour.or(plan.requests_per_hour),
            complexity_per_10s: self.complexity_per_10s.or(plan.complexity_per_10s),
            complexity_per_hour: self.complexity_per_hour.or(plan.complexity_per_hour),
            mutations_per_10s: self.mutations_per_10s.or(plan.mutations_per_10s),
            mutations_per_hour: self.mutations_per_hour.or(plan.mutations_per_hour),
        }
        .share(self.share_percent)
    }

    /// What `caller` paces its Centra client to: its part of Ferry's share (ingest 60 %,
    /// fulfilment and inventory 20 % each), every bucket.
    pub fn pacing_for(&self, caller: CentraCaller) -> ferry_domain::quota::Pacing {
        self.quotas().pacing_for(caller)
    }
}

fn default_share_percent() -> u64 {
    100
}

/// What the reconciler holds the brand's flows to (`[targets]` in a tenant file): how
/// soon each step should follow the one before, and how far Centra's sellable stock may
/// stray from what Ferry expects before it is listed as drift.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TargetsConfig {
    /// Centra accepted the order → Ferry posted it to the ERP.
    #[serde(with = "humantime_serde")]
    pub posted_within: Duration,
    /// The ERP shipped → Centra has the shipment with its tracking number (and, where the
    /// brand sends it, the customer's shipping e-mail).
    #[serde(with = "humantime_serde")]
    pub shipped_within: Duration,
    /// The ERP shipped → the payment is captured (brands whose `[fulfilment]` captures).
    #[serde(with = "humantime_serde")]
    pub captured_within: Duration,
    /// Stock drift is listed when Centra differs from what Ferry expects by more than
    /// this many units *and* more than `stock_drift_percent` of what Ferry expects.
    pub stock_drift_units: i64,
    pub stock_drift_percent: i64,
}

impl Default for TargetsConfig {
    fn default() -> Self {
        Self {
            posted_within: Duration::from_secs(15 * 60),
            shipped_within: Duration::from_secs(60 * 60),
            captured_within: Duration::from_secs(60 * 60),
            stock_drift_units: 5,
            stock_drift_percent: 5,
        }
    }
}

/// How shipments are told to Centra (`[fulfilment]` in a tenant file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FulfilmentConfig {
    /// Centra sends the customer its shipping e-mail.
    pub send_email: bool,
    /// Capture the payment with each shipment.
    pub capture: bool,
    /// How long a shipment may wait for its tracking number before customer service hears.
    #[serde(with = "humantime_serde")]
    pub tracking_grace: Duration,
    /// How often the ERP's shipment feed is read when it had nothing new.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How long a shipment waits for its order to be recorded as posted (the ERP has the
    /// document a moment before Ferry's ledger says so) before operations hear of a
    /// shipment for an order Ferry never posted.
    #[serde(with = "humantime_serde")]
    pub unposted_grace: Duration,
    /// Carrier (as the ERP names it) → its tracking page, `{tracking}` where the tracking
    /// number goes: the console links each shipment to it. Centra's API carries no tracking
    /// URL, so the brand says where its carriers track parcels.
    pub tracking_urls: BTreeMap<String, String>,
}

impl FulfilmentConfig {
    /// The tracking page of `number` with `carrier`, if the brand named one.
    pub fn tracking_url(&self, carrier: &str, number: &str) -> Option<String> {
        let template = self.tracking_urls.get(carrier)?;
        Some(template.replace("{tracking}", &percent_encode(number)))
    }
}

/// `text` safe inside a URL: unreserved characters as they are, every other byte as `%XX`.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Default for FulfilmentConfig {
    fn default() -> Self {
        Self {
            send_email: true,
            capture: false,
            tracking_grace: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(5),
            unposted_grace: Duration::from_secs(10 * 60),
            tracking_urls: BTreeMap::new(),
        }
    }
}

/// How stock is pushed to Centra (`[inventory]` in a tenant file).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InventoryConfig {
    /// ERP warehouse (its code) → Centra warehouse id. Stock of warehouses not listed is
    /// not pushed; with none listed the tenant's stock is not pushed at all.
    pub warehouses: BTreeMap<String, i64>,
    /// The Centra warehouse Centra allocates orders from, where open orders' units are
    /// counted (default: the lowest mapped Centra warehouse id).
    pub allocation_warehouse: Option<i64>,
    /// Units held back from sale.
    pub buffer: BufferConfig,
    /// Ordinary changes wait at most this long to be batched; items selling out go at once.
    #[serde(with = "humantime_serde")]
    pub push_interval: Duration,
    /// Every SKU is sent again on this schedule, healing what Centra lost or someone changed.
    /// A sweep costs `sizes ÷ batch_size` mutations (250 for 50,000 sizes) of the ordinary
    /// share of Centra's hourly budget.
    #[serde(with = "humantime_serde")]
    pub sweep_interval: Duration,
    /// How often the ERP is read: its change feed, or all its stock when it has none.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
    /// How often one page (200 SKUs) of Centra's free-to-allocate stock is compared with
    /// what Ferry expects. `0s` turns drift checks off.
    #[serde(with = "humantime_serde")]
    pub drift_interval: Duration,
    /// A difference that is still there after this many corrections is an exception.
    pub drift_checks: u32,
    /// Sizes per `setStock` call.
    pub batch_size: usize,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            warehouses: BTreeMap::new(),
            allocation_warehouse: None,
            buffer: BufferConfig::default(),
            push_interval: Duration::from_secs(60),
            sweep_interval: Duration::from_secs(6 * 3600),
            poll_interval: Duration::from_secs(5),
            drift_interval: Duration::from_secs(10),
            drift_checks: 2,
            batch_size: 200,
        }
    }
}

/// Safety stock: the most specific rule wins — a SKU, then the longest matching SKU
/// prefix (a category: `"JKT-"`), then the Centra warehouse, then the default.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    pub default: i64,
    /// Centra warehouse id (as a string: TOML keys are strings) → units.
    pub warehouses: BTreeMap<String, i64>,
    /// SKU prefix → units.
    pub categories: BTreeMap<String, i64>,
    pub skus: BTreeMap<String, i64>,
}

impl BufferConfig {
    /// The buffer for one SKU in one Centra warehouse.
    pub fn for_sku(&self, warehouse: i64, sku: &str) -> i64 {
        if let Some(units) = self.skus.get(sku) {
            return *units;
        }
        if let Some((_, units)) = self
            .categories
            .iter()
            .filter(|(prefix, _)| sku.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
        {
            return *units;
        }
        self.warehouses
            .get(&warehouse.to_string())
            .copied()
            .unwrap_or(self.default)
    }
}

fn default_events_poll() -> Duration {
    Duration::from_secs(60)
}

fn default_resync_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_resync_overlap() -> Duration {
    Duration::from_secs(120)
}

fn default_returns_recheck() -> Duration {
    Duration::from_secs(900)
}

fn default_centra_timeout() -> Duration {
    Duration::from_secs(20)
}

/// A tenant's `[erp]` table: which connector, and that connector's own settings, read by
/// the connector itself (`docs/connectors.md`): the runtime knows no connector.
#[derive(Clone, Deserialize)]
pub struct ErpConfig {
    /// `http`, `tryton`, `file-drop`, … as the binary's connector registry names them.
    pub kind: String,
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

impl ErpConfig {
    pub fn new(kind: &str, settings: serde_json::Value) -> Self {
        ErpConfig {
            kind: kind.to_owned(),
            settings: match settings {
                serde_json::Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
        }
    }
}

/// Settings may hold passwords and tokens: only their names are printed.
impl std::fmt::Debug for ErpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ErpConfig")
            .field("kind", &self.kind)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .finish()
    }
}
