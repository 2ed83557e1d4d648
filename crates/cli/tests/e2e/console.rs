//! The console in a real headless Chromium against the real stack (every service, both
//! simulators, nats-server, PostgreSQL): an operations lead uploads the mapping CSV and
//! sees the blocked orders released; a customer-service agent finds an order by the
//! customer's e-mail and sees its tracking number; a finance controller sees only
//! finance's inbox and resolves an exception, which leaves it; another role cannot act
//! (the server refuses, not only the page) and a form without its CSRF value is refused.

use std::collections::BTreeSet;
use std::time::Duration;

use fantoccini::Locator;
use ferry::stack::{Stack, StackOptions};
use ferry_domain::{ExceptionKind, NewException};
use ferry_ops::access::Role;
use ferry_sim_centra::OrderMix;
use ferry_sim_erp::ShipRequest;
use ferry_testing::TestEnv;

use crate::browser::{
    Driver, assert_labelled, csrf, post_from_page, screenshot, sign_in, text, wait_for,
};

fn finance_exception(order: i64) -> NewException {
    NewException {
        tenant: "acme".into(),
        kind: ExceptionKind::ErpTotalsMismatch,
        key: format!("order:{order}:erp_totals_mismatch"),
        message: format!("Order {order}: the ERP's total differs from Centra's"),
        reason: "planted for the console test".into(),
        order_number: Some(order),
        amount_minor: Some(12_550),
        currency: Some("SEK".into()),
        service: "test".into(),
        source_subject: None,
        payload: b"{\"planted\":true}".to_vec(),
    }
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what}: not within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_work_their_exceptions_in_the_console() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        seed: 18,
        centra_requests_per_10s: 1000,
        // Every SKU must be mapped, and none is: the orders wait for operations.
        rules: ferry_domain::Rules::default(),
        fulfilment: ferry_config::FulfilmentConfig {
            tracking_urls: [(
                "PostNord".to_owned(),
                "https://tracking.example/parcel?id={tracking}".to_owned(),
            )]
            .into(),
            ..ferry_config::FulfilmentConfig::default()
        },
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let store = env.store().await;
    let console = stack.console_url.clone();
    let token = |name: &str, role: Role| {
        let store = store.clone();
        let name = name.to_owned();
        async move {
            ferry::tokens::create(&store, &name, role, &["acme".into()])
                .await
                .expect("a token")
                .1
        }
    };
    let numbers = stack.centra.generate(
        3,
        &OrderMix {
            hold_pct: 0,
            pending_pct: 0,
            cancellation_pct: 0,
            markets: vec![1],
            ..OrderMix::default()
        },
    );
    eventually("the orders wait for a mapping", || async {
        store.count_by_state("acme").await.unwrap() == vec![("rejected".to_owned(), 3)]
    })
    .await;
    let (planted, _) = store
        .upsert_exception(&finance_exception(numbers[0]))
        .await
        .expect("planted");
    let planted = uuid::Uuid::parse_str(&planted).expect("an exception id");
    let driver = Driver::start().await;

    // Operations: the SKUs that hold orders back, a CSV uploaded, the orders released.
    let ops = driver.browser("operations").await;
    sign_in(&ops, &console, &token("olle@acme", Role::Operations).await).await;
    screenshot(&ops, "inbox").await;
    assert_labelled(&ops).await;
    ops.goto(&format!("{console}mappings")).await.unwrap();
    let before = wait_for(&ops, "SKUs without an ERP item").await;
    assert!(before.contains("SKUs without an ERP item"), "{before}");
    for n in &numbers {
        assert!(
            before.contains(&format!("Order {n}")),
            "order {n} waits: {before}"
        );
    }
    screenshot(&ops, "mappings").await;
    assert_labelled(&ops).await;
    let mut skus = BTreeSet::new();
    for n in &numbers {
        for line in &stack.centra.state.order(*n).unwrap().lines {
            if line.bundle_items.is_empty() {
                skus.insert(line.sku.clone());
            }
            skus.extend(line.bundle_items.iter().map(|i| i.sku.clone()));
        }
    }
    let csv = std::iter::once("centra_sku,erp_item".to_owned())
        .chain(skus.iter().map(|s| format!("{s},ERP-{s}")))
        .collect::<Vec<_>>()
        .join("\n");
    let file = std::env::temp_dir().join(format!("ferry-console-{}.csv", env.prefix));
    std::fs::write(&file, csv).unwrap();
    ops.find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(&file.display().to_string())
        .await
        .unwrap();
    ops.find(Locator::Css("section.upload button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for(&ops, &format!("Imported {} mappings", skus.len())).await;
    // The page follows the release by itself (it reloads while orders wait).
    eventually("the console shows every order released", || async {
        let t = text(&ops).await;
        t.contains("No order is waiting for a mapping any more")
            && numbers.iter().all(|n| t.contains(&format!("Order {n}")))
    })
    .await;
    eventually("the orders are in the ERP", || async {
        store.count_by_state("acme").await.unwrap() == vec![("posted".to_owned(), 3)]
    })
    .await;
    assert_eq!(
        stack.erp.orders().len(),
        3,
        "each released order posted once"
    );

    // Customer service: the customer's e-mail finds the order; its journey shows the
    // tracking number once the warehouse shipped it.
    let shipped = numbers[1];
    stack
        .erp
        .ship(ShipRequest {
            external_ref: shipped.to_string(),
            lines: None,
            carrier: Some("PostNord".into()),
            tracking_number: Some("PN-CONSOLE-1".into()),
        })
        .expect("shipped in the ERP");
    let email = stack
        .centra
        .state
        .order(shipped)
        .unwrap()
        .customer
        .email
        .clone();
    let cs = driver.browser("customer-service").await;
    sign_in(
        &cs,
        &console,
        &token("cecilia@acme", Role::CustomerService).await,
    )
    .await;
    cs.goto(&format!("{console}orders")).await.unwrap();
    cs.find(Locator::Css("input[name=q]"))
        .await
        .unwrap()
        .send_keys(&email.to_uppercase())
        .await
        .unwrap();
    cs.find(Locator::Css("form[role=search] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    cs.find(Locator::LinkText(&shipped.to_string()))
        .await
        .expect("the order found by its customer's e-mail")
        .click()
        .await
        .unwrap();
    eventually("the tracking number on the order's journey", || async {
        cs.refresh().await.unwrap();
        text(&cs).await.contains("PN-CONSOLE-1")
    })
    .await;
    let link = cs
        .find(Locator::LinkText("PN-CONSOLE-1"))
        .await
        .expect("the tracking number links to the carrier's page")
        .attr("href")
        .await
        .unwrap();
    assert_eq!(
        link.as_deref(),
        Some("https://tracking.example/parcel?id=PN-CONSOLE-1")
    );
    screenshot(&cs, "order").await;
    assert_labelled(&cs).await;
    cs.goto(&format!("{console}orders/acme/{shipped}/replay"))
        .await
        .unwrap();
    let replay = wait_for(&cs, "nothing sent yet").await;
    assert!(
        replay.contains("nothing sent yet") && replay.contains("Posted (left) and now (right)"),
        "{replay}"
    );
    assert!(
        !replay.contains("Apply:"),
        "customer service does not apply replays: {replay}"
    );
    screenshot(&cs, "replay").await;
    assert_labelled(&cs).await;

    // Finance: only finance's work in the inbox; resolving the exception takes it away.
    let finance = driver.browser("finance").await;
    sign_in(
        &finance,
        &console,
        &token("frida@acme", Role::Finance).await,
    )
    .await;
    let inbox = wait_for(&finance, "Inbox · Finance").await;
    assert!(inbox.starts_with("Inbox · Finance"), "{inbox}");
    assert!(inbox.contains("the ERP's total differs"), "{inbox}");
    assert!(inbox.contains("125.50 SEK"), "the money at stake: {inbox}");
    assert!(
        !inbox.contains("has no ERP item"),
        "no operations work in finance's inbox: {inbox}"
    );
    finance
        .find(Locator::Css("table.inbox td a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    screenshot(&finance, "exception").await;
    assert_labelled(&finance).await;
    // Customer service, with a valid session and CSRF value, may not resolve it: the
    // server refuses (the page never offered it).
    let exception_path = format!("/exceptions/acme/{planted}");
    cs.goto(&format!("{console}{}", &exception_path[1..]))
        .await
        .unwrap();
    wait_for(&cs, "you may comment").await;
    let cs_csrf = csrf(&cs).await;
    let refused = post_from_page(
        &cs,
        &format!("{exception_path}/resolve"),
        &[("csrf", &cs_csrf), ("note", "not mine")],
    )
    .await;
    assert_eq!(
        refused, 403,
        "another team's exception: refused by the server"
    );
    // A form without the CSRF value is refused even from the owning team.
    let forged = post_from_page(
        &finance,
        &format!("{exception_path}/resolve"),
        &[("note", "forged")],
    )
    .await;
    assert_eq!(forged, 403, "a form without its CSRF value");
    let e = store.exception_by_id(planted).await.unwrap().unwrap();
    assert_eq!(e.state, "open", "neither refused form changed anything");
    finance
        .find(Locator::Css(
            "form.action[action$='/resolve'] input[name=note]",
        ))
        .await
        .unwrap()
        .send_keys("checked with the ERP: rounding on import")
        .await
        .unwrap();
    finance
        .find(Locator::Css("form.action[action$='/resolve'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let after = wait_for(&finance, "Resolved: it has left the inbox").await;
    assert!(
        !after.contains("the ERP's total differs"),
        "gone from the inbox: {after}"
    );
    let e = store.exception_by_id(planted).await.unwrap().unwrap();
    assert_eq!(e.state, "resolved");
    let audit = store.exception_audit(planted).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|a| a.actor == "frida@acme" && a.action == "resolve"),
        "audited as the person: {audit:?}"
    );

    // A bulk action over a filter, followed to its end: two more of finance's exceptions
    // resolved at once, after the page asked.
    for n in [numbers[1], numbers[2]] {
        store
            .upsert_exception(&finance_exception(n))
            .await
            .expect("planted");
    }
    finance
        .goto(&format!("{console}?tenant=acme&kind=erp_totals_mismatch"))
        .await
        .unwrap();
    wait_for(&finance, "Act on everything this filter shows").await;
    finance
        .find(Locator::Css("section.bulk select[name=action]"))
        .await
        .unwrap()
        .select_by_value("resolve")
        .await
        .unwrap();
    finance
        .find(Locator::Css("section.bulk input[name=note]"))
        .await
        .unwrap()
        .send_keys("month-end: ERP rounding, checked")
        .await
        .unwrap();
    finance
        .find(Locator::Css("section.bulk button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    finance.accept_alert().await.expect("the page asks first");
    let op = wait_for(&finance, "2 of 2 done (2 succeeded, 0 failed) — done").await;
    assert!(op.contains("Bulk resolve"), "{op}");
    screenshot(&finance, "bulk").await;
    assert_labelled(&finance).await;
    finance.goto(&console).await.unwrap();
    let inbox = wait_for(&finance, "Inbox · Finance").await;
    assert!(inbox.contains("Nothing to do here."), "{inbox}");

    // On a tablet the inbox fits the screen: nothing scrolls sideways.
    finance.set_window_size(768, 1024).await.unwrap();
    finance
        .goto(&format!("{console}orders/acme/{shipped}"))
        .await
        .unwrap();
    wait_for(&finance, "Journey").await;
    let fits = finance
        .execute(
            "return document.documentElement.scrollWidth <= window.innerWidth + 1;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(fits, serde_json::Value::Bool(true), "no sideways scrolling");
    screenshot(&finance, "order-tablet").await;
    assert_labelled(&finance).await;
    finance.set_window_size(1280, 900).await.unwrap();

    // The other pages answer for a signed-in person; the first load stays small.
    for (path, name, says) in [
        ("reconciliation", "reconciliation", "Reconciliation"),
        ("health", "health", "Backlog per flow"),
    ] {
        finance.goto(&format!("{console}{path}")).await.unwrap();
        wait_for(&finance, says).await;
        screenshot(&finance, name).await;
        assert_labelled(&finance).await;
    }
    let weight = finance
        .execute(
            "return performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
               .reduce((n, e) => n + (e.transferSize || e.encodedBodySize || 0), 0);",
            vec![],
        )
        .await
        .unwrap();
    assert!(
        weight.as_f64().unwrap_or(f64::MAX) < 200_000.0,
        "first load {weight} bytes"
    );
    // Signed out, the console asks to sign in again.
    finance
        .find(Locator::Css("form.signout button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    finance.goto(&console).await.unwrap();
    assert!(
        finance
            .current_url()
            .await
            .unwrap()
            .path()
            .starts_with("/login")
    );
    screenshot(&finance, "sign-in").await;
    assert_labelled(&finance).await;

    for c in [ops, cs, finance] {
        let _ = c.close().await;
    }
    drop(driver);
    stack.shutdown().await;
    env.cleanup().await;
}
