//! What the fuzz targets (`fuzz/`, `cargo fuzz`) run, and the end-to-end tests replay from
//! their seeds: order snapshots through the transform (its invariants asserted); Centra's
//! webhook bodies and signature headers; Centra's answers and the ERP
//! connectors' answers, served by a fake server that answers whatever the fuzzer chose, read
//! by the real clients through every call Ferry makes. Each must end in a value or an
//! error: a panic or a hang is a finding.

#![allow(
    clippy::expect_used,
    reason = "a fuzz harness that cannot start has nothing to report but that"
)]
#![allow(
    clippy::panic,
    reason = "an assertion that fails is the finding a fuzz target reports"
)]

use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use ferry_centra::{CentraClient, NewShipment};
use ferry_erp::{Customers, Erp, PostOrder, PostOrders, ReadBack, ShipmentFeed, StockFeed};

use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

static ANSWER: Mutex<(u16, Vec<u8>)> = Mutex::new((200, Vec::new()));

/// The runtime the clients run on and the fake server's address.
fn server() -> &'static (tokio::runtime::Runtime, SocketAddr) {
    static SERVER: OnceLock<(tokio::runtime::Runtime, SocketAddr)> = OnceLock::new();
    SERVER.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let addr = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("a port");
            let addr = listener.local_addr().expect("an address");
            let app = axum::Router::new().fallback(answer);
            tokio::spawn(async move { axum::serve(listener, app).await });
            addr
        });
        (runtime, addr)
    })
}

async fn answer() -> impl IntoResponse {
    let (status, body) = ANSWER.lock().map(|a| a.clone()).unwrap_or_default();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
}

/// Sets the next answers from fuzz input: the first byte picks the status (mostly 200),
/// the rest is the body. (No 429: the clients then wait out a `Retry-After`, which unit
/// tests cover, and the fuzzer would only wait.)
fn answer_with(data: &[u8]) {
    let status = match data.first().copied().unwrap_or(0) % 10 {
        0..=5 => 200,
        6 => 400,
        7 => 404,
        8 => 500,
        _ => 401,
    };
    let body = data.get(1..).unwrap_or_default().to_vec();
    if let Ok(mut a) = ANSWER.lock() {
        *a = (status, body);
    }
}

/// Any bytes as an order snapshot: parsing and the transform never panic, and whatever is
/// ready satisfies invariants 1 and 2 (what was paid, Centra's tax figure) and
/// net = gross − tax.
pub fn snapshot(data: &[u8]) {
    use ferry_domain::{Release, Rules, Snapshot, transform};
    let Ok(snapshot) = Snapshot::parse(data) else {
        return;
    };
    let rules = Rules {
        erp_item_equals_sku: true,
        ..Rules::default()
    };
    let order = transform(
        &snapshot,
        &rules,
        &std::collections::HashMap::<String, String>::new(),
    );
    if order.release == Release::Ready {
        let gross: i64 = order.lines.iter().map(|l| l.gross).sum();
        assert_eq!(
            Some(gross),
            order.grand_total,
            "lines add up to what was paid"
        );
        for l in &order.lines {
            assert_eq!(l.net, l.gross - l.tax, "net = gross - tax");
        }
    }
    let _ = ferry_domain::Summary::of(&order).to_pretty_json();
}

/// A webhook body, and a signature header (the input's first line) over the rest.
pub fn webhook(data: &[u8]) {
    let _ = ferry_centra::webhook::parse_body(data);
    let split = data.iter().position(|b| *b == b'\n').unwrap_or(data.len());
    let header = String::from_utf8_lossy(&data[..split]);
    let body = data.get(split + 1..).unwrap_or_default();
    let _ = ferry_centra::webhook::verify(
        b"whsec-fuzz",
        Some(header.as_ref()),
        body,
        1_700_000_000,
        300,
    );
}

/// Centra answering `data` to every call the Centra client makes.
pub fn centra_answers(data: &[u8]) {
    let (runtime, addr) = server();
    answer_with(data);
    // One client for every input (paced to requests only, so an answer's complexity
    // cannot hold it up; the fake server never says 429).
    static CLIENT: OnceLock<CentraClient> = OnceLock::new();
    let client = CLIENT.get_or_init(|| {
        CentraClient::new(
            format!("http://{addr}/graphql"),
            "fuzz-token".to_owned().into(),
            1_000_000_000,
            Duration::from_secs(2),
        )
    });
    runtime.block_on(async {
        let _ = client.order_snapshots_parsed(&[1001, 1002]).await;
        let _ = client.order_snapshots(&[1001]).await;
        let _ = client.order_events(10).await;
        let _ = client.confirm_events(&[1, 2]).await;
        let _ = client.listen_for_order_events().await;
        let _ = client
            .orders_changed_since(chrono::DateTime::UNIX_EPOCH)
            .await;
        let _ = client.shipments_of_orders(&["1", "2"]).await;
        let _ = client.set_stock(1, "fuzz", &[("SKU-1", 3)]).await;
        let _ = client.stock_levels(1, &["SKU-1"]).await;
        let _ = client.rate_limits().await;
        let shipment = NewShipment {
            order_number: 1001,
            lines: &[(1, 1)],
            shipped_at: "2026-12-06 10:00:00",
            carrier: Some("PostNord"),
            service: None,
            tracking_number: Some("PN1"),
            send_email: true,
            capture: true,
        };
        let _ = client.create_shipment(&shipment).await;
        let _ = client.complete_shipment(7, &shipment).await;
        let _ = client.capture_shipment(7).await;
    });
}

fn order() -> &'static PostOrder {
    static ORDER: OnceLock<PostOrder> = OnceLock::new();
    ORDER.get_or_init(|| {
        serde_json::from_value(serde_json::json!({
            "tenant": "fuzz", "external_ref": "1001", "currency": "SEK",
            "order_date": "2026-12-06", "gross_minor": 12500, "tax_minor": 2500,
            "payment_term": null, "carrier": null, "sales_channel": null,
            "customer": {
                "email": "a@example.com", "first_name": "A", "last_name": "B",
                "company_name": "", "vat_number": "", "address1": "Street 1",
                "address2": "", "city": "Town", "zip_code": "111 22",
                "state_or_province": "", "country_code": "SE", "phone_number": "",
                "erp_customer": null
            },
            "lines": [{
                "kind": "item", "erp_item": "ITEM-1", "sku": "SKU-1", "centra_line_id": 1,
                "quantity": 1, "tax_rate": "25", "tax_code": null, "gross_minor": 12500,
                "tax_minor": 2500, "net_minor": 10000, "description": "A thing"
            }]
        }))
        .expect("a valid order")
    })
}

async fn exercise<E>(erp: &E)
where
    E: PostOrders + Customers + ShipmentFeed + StockFeed + ReadBack + Erp,
{
    let order = order();
    let _ = erp.health().await;
    let _ = erp.find_sales_order("1001").await;
    let _ = erp.create_sales_order(order).await;
    let _ = erp.create_sales_orders(std::slice::from_ref(order)).await;
    let _ = erp.match_or_create_customer(&order.customer, "1001").await;
    let _ = erp.shipments_since("", 10).await;
    let _ = erp.stock_levels(&["ITEM-1".to_owned()]).await;
    let _ = erp.stock_changes_since("", 10).await;
    let _ = erp.read_sales_orders("1001").await;
    let _ = erp
        .read_many(&["1001".to_owned(), "1002".to_owned()], 2)
        .await;
    let _ = erp.sales_orders_since("", 10).await;
    let _ = erp.headers_since("", 10).await;
}

/// The ERP answering `data` to every call both connectors (the HTTP ERP API, Tryton's
/// JSON-RPC) make.
pub fn erp_answers(data: &[u8]) {
    let (runtime, addr) = server();
    answer_with(data);
    static CONNECTORS: OnceLock<(ferry_erp_http::HttpErp, ferry_erp_tryton::Tryton)> =
        OnceLock::new();
    let (http, tryton) = CONNECTORS.get_or_init(|| {
        let base = format!("http://{addr}");
        let http = ferry_erp_http::HttpErp::new(base.clone(), None, Duration::from_secs(2));
        let mut config =
            ferry_erp_tryton::TrytonConfig::new(base, "admin", "fuzz".to_owned().into());
        config.timeout = Duration::from_secs(2);
        (http, ferry_erp_tryton::Tryton::new(config))
    });
    runtime.block_on(async {
        exercise(http).await;
        exercise(tryton).await;
    });
}
