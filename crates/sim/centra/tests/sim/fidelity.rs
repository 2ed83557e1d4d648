//! The simulator behaves as Centra documents it: the SDL is the one checked in, tokens
//! carry permissions, every answer has its extensions, the six rate-limit buckets bite,
//! every mutation changes state as Centra would, and the Events queue keeps what is not
//! confirmed.

use std::time::Duration;

use ferry_sim_centra::{
    ApiToken, CentraSim, Faults, OrderMix, Plan, Quotas, RetryAfterFormat, SimConfig,
};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

struct Sim {
    sim: CentraSim,
    http: reqwest::Client,
    _shutdown: tokio_util::sync::DropGuard,
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

impl Sim {
    async fn start(quotas: Quotas) -> Sim {
        let shutdown = CancellationToken::new();
        let sim = CentraSim::start(
            SimConfig {
                seed: 7,
                quotas,
                tokens: vec![
                    ApiToken::all("sim-token", "ferry"),
                    ApiToken {
                        token: "orders-only".to_owned(),
                        permissions: Some(vec!["Order:read".to_owned()]),
                        integration: "reports".to_owned(),
                    },
                    ApiToken::ferry("ferry-token"),
                ],
                ..SimConfig::default()
            },
            shutdown.clone(),
        )
        .await
        .expect("simulator starts");
        Sim {
            sim,
            http: reqwest::Client::new(),
            _shutdown: shutdown.drop_guard(),
        }
    }

    async fn call(&self, token: &str, query: &str, variables: Value) -> Answer {
        let r = self
            .http
            .post(self.sim.graphql_url())
            .bearer_auth(token)
            .json(&json!({ "query": query, "variables": variables }))
            .send()
            .await
            .expect("simulator answers");
        let status = r.status().as_u16();
        let retry_after = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body = r.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            retry_after,
            body,
        }
    }

    /// `data` of a successful call.
    async fn ok(&self, query: &str, variables: Value) -> Value {
        let a = self.call("sim-token", query, variables).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert!(a.body.get("errors").is_none(), "{}", a.body);
        a.body["data"].clone()
    }

    fn stock(&self, sku: &str) -> (i64, i64) {
        self.sim.state.ops(|o| {
            let size = o.size_by_sku(sku).expect("known SKU");
            let l = o.stock_of(size, 1);
            (l.physical, l.allocated)
        })
    }
}

fn confirmed_mix() -> OrderMix {
    OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        bundle_pct: 0,
        cancellation_pct: 0,
        ..OrderMix::default()
    }
}

#[tokio::test]
async fn the_sdl_is_the_one_checked_in() {
    let state = std::sync::Arc::new(ferry_sim_centra::SimState::new(1, 1));
    let sdl = ferry_sim_centra::schema::build(state).sdl();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    if std::env::var_os("FERRY_UPDATE_SDL").is_some() {
        std::fs::write(path, &sdl).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap();
    assert!(
        sdl == on_disk,
        "crates/sim/centra/schema.graphql is out of date: run FERRY_UPDATE_SDL=1 cargo nextest run -p ferry-sim-centra the_sdl"
    );
}

#[tokio::test]
async fn auth_permissions_and_extensions() {
    let sim = Sim::start(Quotas::plan(Plan::Fresh)).await;
    let numbers = sim.sim.generate(1, &confirmed_mix());
    // No token, or a wrong one: 403, as Centra documents it.
    let r = sim
        .http
        .post(sim.sim.graphql_url())
        .json(&json!({ "query": "{ rateLimits { quota } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(
        sim.call("nope", "{ rateLimits { quota } }", json!({}))
            .await
            .status,
        403
    );
    // The cookie works as well as the header.
    let r = sim
        .http
        .post(sim.sim.graphql_url())
        .header("cookie", "other=1; graphql-access=sim-token")
        .json(&json!({ "query": "{ orders(where: {number: [1000]}) { number } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["orders"][0]["number"], numbers[0]);
    let ext = &body["extensions"];
    assert!(ext["complexity"].as_u64().unwrap() > 0);
    assert_eq!(ext["permissionsUsed"], json!(["Order:read"]));
    assert_eq!(ext["appVersion"], ferry_sim_centra::APP_VERSION);

    // A token without the permission: HTTP 200 and Centra's authorization error.
    let a = sim
        .call(
            "orders-only",
            "{ orders { number shippingAddress { city } } }",
            json!({}),
        )
        .await;
    assert_eq!(a.status, 200);
    let e = &a.body["errors"][0];
    assert_eq!(
        e["message"],
        "You need Order.shippingAddress:read permission to access orders."
    );
    assert_eq!(e["extensions"]["category"], "authorization");
    assert_eq!(e["path"], json!(["orders"]));
    let a = sim
        .call(
            "orders-only",
            "mutation { confirmOrder(input: {order: {number: 1000}}) { userErrors { message } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        a.body["errors"][0]["message"],
        "You need Order:write permission to access confirmOrder."
    );
    // The contract query with Ferry's documented permission set takes the fast path.
    let client = ferry_centra::CentraClient::new(
        sim.sim.graphql_url(),
        secrecy::SecretString::from("ferry-token"),
        20,
        Duration::from_secs(5),
    );
    let snaps = client
        .order_snapshots(&numbers)
        .await
        .expect("Ferry's token reads orders");
    assert_eq!(snaps.len(), 1);
}

fn bucket(view: &Value, kind: &str, interval: &str) -> (u64, u64, u64) {
    let b = view
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["type"] == kind && b["intervalSeconds"] == interval)
        .unwrap();
    (
        b["quota"].as_u64().unwrap(),
        b["usedQuota"].as_u64().unwrap(),
        b["remainingQuota"].as_u64().unwrap(),
    )
}

#[tokio::test]
async fn every_rate_limit_bucket_bites_with_retry_after() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    };
    let q = "{ rateLimits { type intervalSeconds quota usedQuota remainingQuota } }";
    // Requests per 10 s.
    let sim = Sim::start(Quotas {
        request_count_10s: 3,
        ..Quotas::plan(Plan::Fresh)
    })
    .await;
    for _ in 0..2 {
        sim.ok(q, json!({})).await;
    }
    let view = sim.ok(q, json!({})).await;
    let (quota, used, remaining) = bucket(&view["rateLimits"], "REQUEST_COUNT", "TEN_SECONDS");
    assert_eq!((quota, used + remaining), (3, 3));
    let a = sim.call("sim-token", q, json!({})).await;
    assert_eq!(a.status, 429);
    let at: u64 = a.retry_after.unwrap().parse().expect("a Unix timestamp");
    assert!(at > now() && at <= now() + 5, "retry at {at}");
    assert_eq!(a.body["errors"][0]["extensions"]["category"], "rate-limit");

    // Requests per hour, with Retry-After in seconds.
    let sim = Sim::start(Quotas {
        request_count_1h: 2,
        retry_after: RetryAfterFormat::Seconds,
        ..Quotas::plan(Plan::Fresh)
    })
    .await;
    sim.ok(q, json!({})).await;
    sim.ok(q, json!({})).await;
    let a = sim.call("sim-token", q, json!({})).await;
    assert_eq!(a.status, 429);
    let wait: u64 = a.retry_after.unwrap().parse().unwrap();
    assert!((1000..=1801).contains(&wait), "{wait}");

    // Mutations per 10 s and per hour: one token per top-level mutation field.
    for (quotas, interval) in [
        (
            Quotas {
                mutation_count_10s: 2,
                ..Quotas::plan(Plan::Fresh)
            },
            "TEN_SECONDS",
        ),
        (
            Quotas {
                mutation_count_1h: 2,
                ..Quotas::plan(Plan::Fresh)
            },
            "ONE_HOUR",
        ),
    ] {
        let sim = Sim::start(quotas).await;
        let m = "mutation { a: setEventListeners(input: [{objectType: Order}]) { userErrors { message } } b: setEventListeners(input: [{objectType: Order}]) { userErrors { message } } }";
        sim.ok(m, json!({})).await;
        let a = sim.call("sim-token", m, json!({})).await;
        assert_eq!(a.status, 429, "{interval}");
        // Queries still pass: the mutation bucket is its own.
        let view = sim.ok(q, json!({})).await;
        let (quota, used, _) = bucket(&view["rateLimits"], "MUTATION_COUNT", interval);
        assert_eq!((quota, used), (2, 2));
    }

    // Complexity per 10 s and per hour: charged after, refuses once spent.
    for (quotas, interval) in [
        (
            Quotas {
                complexity_10s: 30,
                ..Quotas::plan(Plan::Fresh)
            },
            "TEN_SECONDS",
        ),
        (
            Quotas {
                complexity_1h: 30,
                ..Quotas::plan(Plan::Fresh)
            },
            "ONE_HOUR",
        ),
    ] {
        let sim = Sim::start(quotas).await;
        let heavy = "{ orders { number status isOnHold isLocked totals { quantity } market { id name } pricelist { id name } country { code name } } }";
        let first = sim.call("sim-token", heavy, json!({})).await;
        assert_eq!(first.status, 200);
        let complexity = first.body["extensions"]["complexity"].as_u64().unwrap();
        assert!(complexity > 10, "{complexity}");
        let mut refused = false;
        for _ in 0..5 {
            if sim.call("sim-token", heavy, json!({})).await.status == 429 {
                refused = true;
                break;
            }
        }
        assert!(refused, "complexity {interval} never refused");
    }
}

#[tokio::test]
async fn faults_latency_errors_and_storms() {
    let sim = Sim::start(Quotas::plan(Plan::Fresh)).await;
    let q = "{ rateLimits { quota } }";
    sim.sim.set_faults(Faults {
        error_per_mille: 1000,
        ..Faults::default()
    });
    assert_eq!(sim.call("sim-token", q, json!({})).await.status, 503);
    sim.sim.set_faults(Faults {
        storm_ms: 60_000,
        ..Faults::default()
    });
    let a = sim.call("sim-token", q, json!({})).await;
    assert_eq!(a.status, 429);
    assert!(a.retry_after.is_some());
    sim.sim.set_faults(Faults {
        latency_ms: 150,
        ..Faults::default()
    });
    let start = std::time::Instant::now();
    assert_eq!(sim.call("sim-token", q, json!({})).await.status, 200);
    assert!(start.elapsed() >= Duration::from_millis(150));
    let log = sim.sim.state.request_log();
    let statuses: Vec<u16> = log.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![503, 429, 200]);
}

const ORDER_Q: &str = "query($n: Int!) { orders(where: {number: [$n]}) { number status isOnHold isLocked lines(includeFullyCancelled: true) { id quantity cancelledQuantity productSize { SKU } } } }";

async fn order(sim: &Sim, n: i64) -> Value {
    sim.ok(ORDER_Q, json!({ "n": n })).await["orders"][0].clone()
}

#[tokio::test]
async fn order_mutations_change_state_and_stock() {
    let sim = Sim::start(Quotas::unlimited()).await;
    let pending = sim.sim.generate(
        1,
        &OrderMix {
            pending_pct: 100,
            ..confirmed_mix()
        },
    )[0];
    let o = order(&sim, pending).await;
    assert_eq!(o["status"], "PENDING");
    let sku = o["lines"][0]["productSize"]["SKU"]
        .as_str()
        .unwrap()
        .to_owned();
    let qty = o["lines"][0]["quantity"].as_i64().unwrap();
    let (physical, allocated) = sim.stock(&sku);

    // confirmOrder: PENDING → CONFIRMED, stock allocated; a second confirm is a userError.
    let confirm = "mutation($n: Int!) { confirmOrder(input: {order: {number: $n}}) { order { status } userErrors { message path } } }";
    let d = sim.ok(confirm, json!({ "n": pending })).await;
    assert_eq!(d["confirmOrder"]["order"]["status"], "CONFIRMED");
    assert_eq!(sim.stock(&sku), (physical, allocated + qty));
    let d = sim.ok(confirm, json!({ "n": pending })).await;
    assert!(d["confirmOrder"]["order"].is_null());
    assert!(
        d["confirmOrder"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("only PENDING")
    );

    // setOrdersLock.
    let d = sim
        .ok(
            "mutation($n: Int!) { setOrdersLock(input: {orders: [{number: $n}], isLocked: true}) { orders { number isLocked } userErrors { message } } }",
            json!({ "n": pending }),
        )
        .await;
    assert_eq!(d["setOrdersLock"]["orders"][0]["isLocked"], true);

    // Hold, and cancel one unit of the first line back to the warehouse.
    let line = o["lines"][0]["id"].as_i64().unwrap();
    let d = sim
        .ok(
            "mutation($n: Int!, $line: Int!) { updateDirectToConsumerOrder(order: {number: $n}, input: {isOnHold: true, cancelLines: [{line: {id: $line}, quantity: 1, stockAction: RELEASE_BACK_TO_WAREHOUSE}]}) { order { isOnHold lines(includeFullyCancelled: true) { id quantity cancelledQuantity } } userErrors { message } } }",
            json!({ "n": pending, "line": line }),
        )
        .await;
    let updated = &d["updateDirectToConsumerOrder"]["order"];
    assert!(updated["lines"].is_array(), "{d}");
    assert_eq!(updated["isOnHold"], true);
    assert_eq!(updated["lines"][0]["quantity"], qty - 1);
    assert_eq!(updated["lines"][0]["cancelledQuantity"], 1);
    assert_eq!(sim.stock(&sku), (physical, allocated + qty - 1));
    // Cancelling more than is left is refused and changes nothing.
    let d = sim
        .ok(
            "mutation($n: Int!, $line: Int!) { updateDirectToConsumerOrder(order: {number: $n}, input: {cancelLines: [{line: {id: $line}, quantity: 99}]}) { order { number } userErrors { message } } }",
            json!({ "n": pending, "line": line }),
        )
        .await;
    assert_eq!(
        d["updateDirectToConsumerOrder"]["userErrors"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(order(&sim, pending).await["lines"][0]["quantity"], qty - 1);

    // cancelDirectToConsumerOrder by hash id: CANCELLED, stock released, email sent.
    let id = sim.sim.state.order(pending).unwrap().id.clone();
    let d = sim
        .ok(
            "mutation($id: String!) { cancelDirectToConsumerOrder(id: $id, input: {comment: \"fraud\", emailOptions: {sendEmail: true}, stockAction: {removeItemsFromStock: false}, cancelAuthorization: true}) { order { status } userErrors { message } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        d["cancelDirectToConsumerOrder"]["order"]["status"],
        "CANCELLED"
    );
    assert_eq!(sim.stock(&sku), (physical, allocated));
    let emails = sim.sim.state.ops(|o| o.emails.clone());
    assert_eq!(emails.len(), 1);
    assert_eq!(emails[0].order_number, pending);
}

const SHIP: &str = "mutation($input: ShipmentCreateInput!) { createShipment(input: $input) { shipment { id number isShipped isGoodToGo isCaptured trackingNumber carrierInformation { carrierName serviceName } lines { id quantity orderLine { id } } } userErrors { message path } } }";

#[tokio::test]
async fn shipments_complete_the_order_with_emails_stock_and_capture() {
    let sim = Sim::start(Quotas::unlimited()).await;
    // An order with at least two units so it can ship in two parts.
    let number = loop {
        let n = sim.sim.generate(1, &confirmed_mix())[0];
        let o = sim.sim.state.order(n).unwrap();
        if o.lines[0].quantity >= 2 || o.lines.len() >= 2 {
            break n;
        }
    };
    let o = sim.sim.state.order(number).unwrap();
    let first = &o.lines[0];
    let (physical, allocated) = sim.stock(&first.sku);

    // Refused: more than ordered; a shippedAt in the future.
    let d = sim
        .ok(SHIP, json!({ "input": { "order": { "number": number }, "lines": [{ "orderLine": { "id": first.id }, "quantity": first.quantity + 1 }] } }))
        .await;
    assert!(d["createShipment"]["shipment"].is_null());
    assert_eq!(
        d["createShipment"]["userErrors"][0]["path"],
        json!(["input", "lines", "0", "quantity"])
    );

    // Part one: one unit, good to go, then completed with tracking and the email.
    let d = sim
        .ok(SHIP, json!({ "input": { "order": { "number": number }, "lines": [{ "orderLine": { "id": first.id }, "quantity": 1 }], "isGoodToGo": true } }))
        .await;
    let s1 = &d["createShipment"]["shipment"];
    assert_eq!(s1["number"], format!("{number}-1"));
    assert_eq!(s1["isShipped"], false);
    let s1_id = s1["id"].as_i64().unwrap();
    assert_eq!(order(&sim, number).await["status"], "PROCESSING");
    let complete = "mutation($id: Int!, $at: String) { completeShipment(id: $id, input: {shippedAt: $at, sendEmail: true, shipmentInfo: {carrier: \"PostNord\", service: \"MyPack\", packagesNumber: 1, trackingNumber: \"TRACK-1\"}}) { shipment { isShipped shippedAt trackingNumber carrierInformation { carrierName serviceName } } userErrors { message path } } }";
    let future = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let d = sim.ok(complete, json!({ "id": s1_id, "at": future })).await;
    assert_eq!(
        d["completeShipment"]["userErrors"][0]["path"],
        json!(["input", "shippedAt"])
    );
    let d = sim.ok(complete, json!({ "id": s1_id, "at": "now" })).await;
    let done = &d["completeShipment"]["shipment"];
    assert_eq!(done["isShipped"], true);
    assert_eq!(done["trackingNumber"], "TRACK-1");
    assert_eq!(done["carrierInformation"]["carrierName"], "PostNord");
    assert_eq!(sim.stock(&first.sku), (physical - 1, allocated - 1));
    assert_eq!(order(&sim, number).await["status"], "PROCESSING");
    // Completing twice is refused.
    let d = sim.ok(complete, json!({ "id": s1_id, "at": "now" })).await;
    assert!(
        d["completeShipment"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("already completed")
    );

    // updateShipment and captureShipment.
    let d = sim
        .ok("mutation($id: Int!) { updateShipment(id: $id, input: {isPaid: true}) { shipment { isPaid paidAt } userErrors { message } } }", json!({ "id": s1_id }))
        .await;
    assert_eq!(d["updateShipment"]["shipment"]["isPaid"], true);
    let d = sim
        .ok("mutation($id: Int!) { captureShipment(id: $id) { shipment { isCaptured capturedAt } userErrors { message } } }", json!({ "id": s1_id }))
        .await;
    assert_eq!(d["captureShipment"]["shipment"]["isCaptured"], true);
    let captures = sim
        .sim
        .state
        .order(number)
        .unwrap()
        .payment_history
        .iter()
        .filter(|p| p.entry_type == "CAPTURE")
        .count();
    assert_eq!(captures, 1);

    // Part two: everything left, already shipped, captured, in one mutation.
    let d = sim
        .ok(SHIP, json!({ "input": { "order": { "number": number }, "shippedAt": "now", "sendEmail": true, "capture": true, "shipmentInfo": { "carrier": "DHL", "service": "Express", "trackingNumber": "TRACK-2" } } }))
        .await;
    let s2 = &d["createShipment"]["shipment"];
    assert_eq!(s2["number"], format!("{number}-2"), "{d}");
    assert_eq!(s2["isShipped"], true);
    assert_eq!(s2["isCaptured"], true);
    assert_eq!(s2["trackingNumber"], "TRACK-2");
    assert_eq!(order(&sim, number).await["status"], "SHIPPED");
    let (p_after, a_after) = sim.stock(&first.sku);
    assert_eq!(
        (p_after, a_after),
        (physical - first.quantity, allocated - first.quantity)
    );
    let emails = sim.sim.state.ops(|o| o.emails.clone());
    let tracking: Vec<Option<String>> = emails.iter().map(|e| e.tracking_number.clone()).collect();
    assert_eq!(
        tracking,
        vec![Some("TRACK-1".to_owned()), Some("TRACK-2".to_owned())]
    );
    // Nothing left: a third shipment is refused; cancelling the order is refused.
    let d = sim
        .ok(SHIP, json!({ "input": { "order": { "number": number } } }))
        .await;
    assert_eq!(
        d["createShipment"]["userErrors"].as_array().unwrap().len(),
        1
    );
    // The shipments query finds both by the order's hash id (`ShipmentFilter.orderId`).
    let hash = sim.sim.state.order(number).unwrap().id.clone();
    let d = sim
        .ok(
            "query($o: String!) { shipments(where: {orderId: [$o]}) { number trackingNumber } }",
            json!({ "o": hash }),
        )
        .await;
    assert_eq!(d["shipments"].as_array().unwrap().len(), 2);
    let shipped = sim.sim.state.ops(|o| {
        o.shipments_of(number)
            .into_iter()
            .filter(|s| s.is_shipped)
            .count()
    });
    for (is_shipped, want) in [(true, shipped), (false, 2 - shipped)] {
        let d = sim
            .ok(
                "query($o: String!, $s: Boolean!) { shipments(where: {orderId: [$o], isShipped: $s}) { number } }",
                json!({ "o": hash, "s": is_shipped }),
            )
            .await;
        assert_eq!(
            d["shipments"].as_array().unwrap().len(),
            want,
            "isShipped {is_shipped}"
        );
    }
    // A filter the simulator does not implement is refused, not ignored.
    let refused = sim
        .call(
            "sim-token",
            "query { shipments(where: {customerId: [1]}) { number } }",
            json!({}),
        )
        .await;
    assert!(
        refused.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("does not filter"),
        "{}",
        refused.body
    );

    // A return of the first unit, released back to the warehouse on completion.
    let line_id = s1["lines"][0]["id"].as_i64().unwrap();
    let d = sim
        .ok(
            "mutation($s: Int!, $l: Int!) { createReturn(input: {shipment: {id: $s}, lines: [{shipmentLine: {id: $l}, quantity: 1}], returnStockActionPolicy: {releaseItemsBackToWarehouse: true}}) { return { id status } userErrors { message } } }",
            json!({ "s": s1_id, "l": line_id }),
        )
        .await;
    assert_eq!(d["createReturn"]["return"]["status"], "PENDING", "{d}");
    let rid = d["createReturn"]["return"]["id"].as_i64().unwrap();
    let d = sim
        .ok("mutation($id: Int!) { completeReturn(id: $id, input: {sendEmail: true}) { return { status returnedToStock } userErrors { message } } }", json!({ "id": rid }))
        .await;
    assert_eq!(d["completeReturn"]["return"]["status"], "COMPLETED");
    assert_eq!(sim.stock(&first.sku).0, p_after + 1);
    // Returning it again is more than was shipped.
    let d = sim
        .ok(
            "mutation($s: Int!, $l: Int!) { createReturn(input: {shipment: {id: $s}, lines: [{shipmentLine: {id: $l}, quantity: 1}], returnStockActionPolicy: {removeItemsFromStock: true}}) { return { id } userErrors { message } } }",
            json!({ "s": s1_id, "l": line_id }),
        )
        .await;
    assert_eq!(d["createReturn"]["userErrors"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn on_hold_orders_do_not_ship() {
    let sim = Sim::start(Quotas::unlimited()).await;
    let n = sim.sim.generate(
        1,
        &OrderMix {
            hold_pct: 100,
            ..confirmed_mix()
        },
    )[0];
    let d = sim
        .ok(SHIP, json!({ "input": { "order": { "number": n } } }))
        .await;
    assert!(
        d["createShipment"]["userErrors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("on hold")
    );
}

#[tokio::test]
async fn stock_set_change_and_read() {
    let sim = Sim::start(Quotas::unlimited()).await;
    let set = "mutation($input: StockSetInput!) { setStock(input: $input) { stockChanges { id } userErrors { message path } userWarnings { message path } } }";
    let d = sim
        .ok(set, json!({ "input": { "warehouse": { "id": 1 }, "description": "count", "stockQuantityType": "PHYSICAL", "productSizes": [
            { "productSize": { "SKU": "TEE-WHT-M" }, "quantity": 7 },
            { "productSize": { "SKU": "BND-TRIO-M" }, "quantity": 3 },
            { "productSize": { "SKU": "NO-SUCH" }, "quantity": 3 }
        ] } }))
        .await;
    assert_eq!(d["setStock"]["stockChanges"].as_array().unwrap().len(), 1);
    assert_eq!(
        d["setStock"]["userWarnings"].as_array().unwrap().len(),
        2,
        "{d}"
    );
    assert_eq!(sim.stock("TEE-WHT-M").0, 7);
    // Negative quantities are refused outright.
    let d = sim
        .ok(set, json!({ "input": { "warehouse": { "id": 1 }, "description": "x", "stockQuantityType": "PHYSICAL", "productSizes": [{ "productSize": { "SKU": "TEE-WHT-M" }, "quantity": -1 }] } }))
        .await;
    assert_eq!(
        d["setStock"]["userErrors"][0]["path"],
        json!(["input", "productSizes", "0", "quantity"])
    );

    let change = "mutation($input: StockChangeInput!) { changeStock(input: $input) { stockChange { id } userErrors { message } } }";
    sim.ok(change, json!({ "input": { "intoWarehouse": { "id": 1 }, "description": "delivery", "productSizes": [{ "productSize": { "EAN": ferry_sim_centra::generate::ean_for("TEE-WHT-M") }, "deliveredQuantity": 5 }] } })).await;
    assert_eq!(sim.stock("TEE-WHT-M").0, 12);
    sim.ok(change, json!({ "input": { "outFromWarehouse": { "id": 1 }, "intoWarehouse": { "id": 2 }, "description": "to the shop", "productSizes": [{ "productSize": { "any": "TEE-WHT-M" }, "deliveredQuantity": 2 }] } })).await;
    assert_eq!(sim.stock("TEE-WHT-M").0, 10);
    let d = sim
        .ok(change, json!({ "input": { "outFromWarehouse": { "id": 1 }, "description": "too much", "productSizes": [{ "productSize": { "SKU": "TEE-WHT-M" }, "deliveredQuantity": 500 }] } }))
        .await;
    assert_eq!(d["changeStock"]["userErrors"].as_array().unwrap().len(), 1);

    // Read back: per warehouse, and the bundle derived from its components.
    // ProductSizeFilter.SKU is a StringMatch: one SKU per field, several with aliases.
    let read = "query($a: String!, $b: String!) { \
        tee: productSizes(where: {SKU: {equals: $a}}, limit: 1) { id SKU EAN stock { warehouse { id } physicalQuantity freeToAllocateQuantity allocatedQuantity } } \
        bundle: productSizes(where: {SKU: {equals: $b}}, limit: 1) { SKU stock { freeToAllocateQuantity } } }";
    let d = sim
        .ok(read, json!({ "a": "TEE-WHT-M", "b": "BND-TRIO-M" }))
        .await;
    let tee = &d["tee"][0];
    assert_eq!(tee["stock"][0]["physicalQuantity"], 10);
    assert_eq!(tee["stock"][1]["physicalQuantity"], 2);
    let bundle = &d["bundle"][0];
    let tees = sim
        .ok(
            "query { productSizes(where: {SKU: {contains: \"TEE-\"}}, limit: 200) { SKU } }",
            json!({}),
        )
        .await;
    assert!(tees["productSizes"].as_array().unwrap().len() > 3);
    let free = |sku: &str| {
        sim.sim.state.ops(|o| {
            o.stock_of(o.size_by_sku(sku).unwrap(), 1)
                .free_to_allocate()
        })
    };
    let expected = free("TEE-WHT-M")
        .min(free("TEE-BLK-M"))
        .min(free("TEE-GRY-M"));
    assert_eq!(bundle["stock"][0]["freeToAllocateQuantity"], expected);
    // Pagination over the whole catalogue.
    let all = sim.sim.state.ops(|o| o.sizes.len());
    let mut seen = 0;
    for page in 1.. {
        let d = sim
            .ok(
                "query($p: Int!) { productSizes(limit: 20, page: $p) { id } }",
                json!({ "p": page }),
            )
            .await;
        let n = d["productSizes"].as_array().unwrap().len();
        seen += n;
        if n < 20 {
            break;
        }
    }
    assert_eq!(seen, all);
}

#[tokio::test]
async fn the_events_queue_returns_the_oldest_unconfirmed() {
    let sim = Sim::start(Quotas::unlimited()).await;
    let listen = "mutation { setEventListeners(input: [{objectType: Order, changeTypes: [CREATED, UPDATED]}]) { eventListeners { integrationName objectType changeTypes } userErrors { message } } }";
    let d = sim.ok(listen, json!({})).await;
    assert_eq!(
        d["setEventListeners"]["eventListeners"][0]["integrationName"],
        "ferry"
    );
    // Idempotent.
    let d = sim.ok(listen, json!({})).await;
    assert_eq!(
        d["setEventListeners"]["eventListeners"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let numbers = sim.sim.generate(5, &confirmed_mix());
    let events = "query { events(where: {objectType: [Order]}, limit: 3) { id objectType changeType objectReference object { ... on DirectToConsumerOrder { number } } } }";
    let d = sim.ok(events, json!({})).await;
    let got: Vec<i64> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["objectReference"].as_i64().unwrap())
        .collect();
    assert_eq!(got, numbers[..3].to_vec());
    assert_eq!(d["events"][0]["object"]["number"], numbers[0]);
    // Not confirmed: the same ones come back.
    let again = sim.ok(events, json!({})).await;
    assert_eq!(again["events"], d["events"]);
    // Confirm two (and one unknown id: a warning).
    let ids: Vec<i64> = d["events"].as_array().unwrap()[..2]
        .iter()
        .map(|e| e["id"].as_i64().unwrap())
        .collect();
    let c = sim
        .ok("mutation($ids: [Int!]!) { confirmEvents(input: {eventsIds: $ids}) { userErrors { message } userWarnings { message } } }", json!({ "ids": [ids[0], ids[1], 999_999] }))
        .await;
    assert_eq!(
        c["confirmEvents"]["userWarnings"].as_array().unwrap().len(),
        1
    );
    let d = sim.ok(events, json!({})).await;
    let got: Vec<i64> = d["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["objectReference"].as_i64().unwrap())
        .collect();
    assert_eq!(got, numbers[2..5].to_vec());
    // Another integration has its own (empty) queue; unset deletes the queued events.
    let other = sim.call("orders-only", events, json!({})).await;
    assert_eq!(
        other.body["errors"][0]["extensions"]["category"],
        "authorization"
    );
    sim.ok("mutation { unsetEventListeners(input: [{objectType: Order}]) { eventListeners { objectType } } }", json!({})).await;
    assert_eq!(sim.ok(events, json!({})).await["events"], json!([]));
    assert_eq!(sim.sim.state.ops(|o| o.unconfirmed("ferry")), 0);
}

/// The ERP set-up (Tryton's bootstrap) reads the catalogue from a checked-in file; it must
/// be the generator's.
#[test]
fn the_erp_catalogue_is_the_one_checked_in() {
    let text = serde_json::to_string_pretty(&ferry_sim_centra::generate::erp_catalogue()).unwrap();
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../scripts/tryton/catalogue.json"
    );
    if std::env::var_os("FERRY_UPDATE_SDL").is_some() {
        std::fs::write(path, format!("{text}\n")).unwrap();
    }
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == format!("{text}\n"),
        "scripts/tryton/catalogue.json is out of date: run FERRY_UPDATE_SDL=1 cargo nextest run -p ferry-sim-centra the_erp_catalogue"
    );
}

/// Issue 23: the simulator's schema accepts every example operation Centra documents on what
/// Ferry uses (`tests/contracts/centra-examples/`), so Ferry is tested against the shape a
/// real Centra has, not one the simulator invented.
#[test]
fn centras_documented_example_operations_validate_against_the_simulator() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../tests/contracts/centra-examples"
    );
    let schema = ferry_centra::check::CheckedSchema::parse(
        ferry_sim_centra::SCHEMA_SDL,
        "simulator.graphql",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut checked = 0;
    let mut refused = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("examples")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "graphql"))
        .collect();
    files.sort();
    for path in files {
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("?")
            .to_owned();
        let text = std::fs::read_to_string(&path).expect("example");
        refused.extend(schema.differences(&name, &text));
        checked += 1;
    }
    assert!(checked >= 18, "only {checked} examples found");
    assert!(
        refused.is_empty(),
        "the simulator refuses Centra's documented examples:\n{}",
        refused
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Centra's documented statuses: a query that does not validate is refused with 400 (not
/// 200 with errors), while a missing permission stays a 200 with an authorization error.
#[tokio::test]
async fn an_invalid_query_is_400_and_a_missing_permission_200() {
    let sim = Sim::start(Quotas::unlimited()).await;
    let a = sim
        .call("sim-token", "query { orders { noSuchField } }", json!({}))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("noSuchField")
    );
    let a = sim.call("sim-token", "query { orders(", json!({})).await;
    assert_eq!(a.status, 400, "a syntax error: {}", a.body);
}

/// `setEventListeners` is additive (Centra's docs): a second call adds change types and
/// never narrows what an earlier call asked for.
#[tokio::test]
async fn event_listeners_only_add() {
    let sim = Sim::start(Quotas::unlimited()).await;
    let set = "mutation($i: [EventListenerInput!]!) { setEventListeners(input: $i) { eventListeners { objectType changeTypes } userErrors { message } } }";
    sim.ok(
        set,
        json!({ "i": [{ "objectType": "Return", "changeTypes": ["CREATED"] }] }),
    )
    .await;
    let d = sim
        .ok(
            set,
            json!({ "i": [{ "objectType": "Return", "changeTypes": ["COMPLETED"] }] }),
        )
        .await;
    let listeners = d["setEventListeners"]["eventListeners"].as_array().unwrap();
    let ret = listeners
        .iter()
        .find(|l| l["objectType"] == "Return")
        .unwrap();
    assert_eq!(ret["changeTypes"], json!(["CREATED", "COMPLETED"]));
    // Every type (no list) is not narrowed by a later list.
    sim.ok(set, json!({ "i": [{ "objectType": "Order" }] }))
        .await;
    let d = sim
        .ok(
            set,
            json!({ "i": [{ "objectType": "Order", "changeTypes": ["CREATED"] }] }),
        )
        .await;
    let listeners = d["setEventListeners"]["eventListeners"].as_array().unwrap();
    let order = listeners
        .iter()
        .find(|l| l["objectType"] == "Order")
        .unwrap();
    assert_eq!(order["changeTypes"], json!([]));
}

/// The contract query's complexity grows with its `limit`: nested lists multiply
/// (Centra's docs), so 200 orders cost about 200 times one.
#[tokio::test]
async fn the_snapshot_query_is_charged_per_order_asked_for() {
    let sim = Sim::start(Quotas::unlimited()).await;
    let mut charged = Vec::new();
    for limit in [1, 200] {
        let a = sim
            .call(
                "sim-token",
                ferry_centra::ORDER_SNAPSHOT_QUERY,
                json!({ "where": { "number": [1] }, "limit": limit, "page": 1 }),
            )
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        charged.push(a.body["extensions"]["complexity"].as_u64().unwrap());
    }
    assert!(charged[1] > 150 * charged[0], "{charged:?}");
}
