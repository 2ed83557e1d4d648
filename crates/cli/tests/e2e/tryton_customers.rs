//! Customers into real Tryton (ADR 0038): the party a first order made is found again by
//! the Centra id; a new address becomes the party's address while the sale keeps the one
//! it was made with, once however often it is sent; an erasure runs Tryton's own party
//! erasure — refused, in Ferry's words, while the customer has a sale not yet done. A gift
//! ships to its recipient's address (made once) and is invoiced to the customer.

use ferry_erp::{Customers, Erasure, ErpError, PostOrder, PostOrders};
use serde_json::{Value, json};

use ferry_erp_tryton::rpc::truthy;

use crate::tryton::{connector, example, sale_by_reference, unique_prefix};

/// The customer's own next order (no delivery address), as the account now stands.
fn example_without_delivery(order: &PostOrder, customer: &ferry_erp::Customer) -> PostOrder {
    PostOrder {
        external_ref: format!("{}-own", order.external_ref),
        customer: customer.clone(),
        delivery: None,
        ..order.clone()
    }
}

/// A Centra customer id no other test run uses.
fn centra_id() -> i64 {
    (uuid::Uuid::new_v4().as_u128() % 1_000_000_000_000) as i64
}

async fn party_row(tryton: &ferry_erp_tryton::Tryton, party: i64) -> Value {
    tryton
        .rpc()
        .call_in(
            "model.party.party.read",
            vec![
                json!([party]),
                json!([
                    "name",
                    "active",
                    "identifiers.code",
                    "addresses.city",
                    "addresses.street_unstructured",
                    "addresses.active",
                    "contact_mechanisms.value"
                ]),
            ],
            json!({"active_test": false}),
        )
        .await
        .expect("party read")[0]
        .clone()
}

fn party_id(erp_id: &str) -> i64 {
    erp_id
        .strip_prefix("party.party,")
        .and_then(|id| id.parse().ok())
        .expect("a party id")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_address_updates_the_party_and_an_erasure_is_trytons_own() {
    let prefix = unique_prefix();
    let tryton = connector(&prefix);

    // A customer's first order makes their party, which learns their Centra id.
    let mut order = example("04-sek-bundle-voucher");
    let id = centra_id();
    order.customer.email = format!("{prefix}anna@example.com");
    order.customer.centra_customer_id = Some(id);
    let posted = tryton.create_sales_order(&order).await.expect("posted");
    let reference = format!("{prefix}{}", order.external_ref);
    let sale = &sale_by_reference(&tryton, &reference, &["party", "invoice_address"]).await;
    let party = sale["party"].as_i64().expect("party");
    let made_with = sale["invoice_address"].as_i64().expect("address");
    let row = party_row(&tryton, party).await;
    assert_eq!(
        row["identifiers."][0]["code"],
        format!("centra-customer:{id}"),
        "{row}"
    );

    // Customer service corrects the address in Centra; the change arrives twice.
    let mut moved = order.customer.clone();
    moved.address1 = "Storgatan 1".into();
    moved.city = "Malmö".into();
    for _ in 0..2 {
        let synced = tryton.sync_customer(&moved).await.expect("synced");
        assert_eq!(synced.map(|p| party_id(&p)), Some(party), "the same party");
    }
    let row = party_row(&tryton, party).await;
    let addresses = row["addresses."].as_array().expect("addresses");
    assert_eq!(addresses.len(), 2, "one new address however often: {row}");
    let active: Vec<&Value> = addresses.iter().filter(|a| truthy(&a["active"])).collect();
    assert_eq!(active.len(), 1, "{row}");
    assert_eq!(active[0]["city"], "Malmö");
    assert_eq!(active[0]["street_unstructured"], "Storgatan 1");
    let old = addresses
        .iter()
        .find(|a| a["id"].as_i64() == Some(made_with))
        .expect("the sale's address is kept");
    assert!(!truthy(&old["active"]));
    assert_eq!(old["city"].as_str(), Some(order.customer.city.as_str()));

    // An erasure while the sale is still being shipped: Tryton keeps the party, and says
    // why without naming them.
    let refused = tryton.erase_customer(id).await;
    let Err(ErpError::Rejected(why)) = &refused else {
        panic!("Tryton refuses to erase a party with a sale in progress: {refused:?}");
    };
    assert!(why.contains("not yet done or cancelled"), "{why}");
    assert!(!why.contains(&order.customer.last_name), "{why}");
    let row = party_row(&tryton, party).await;
    assert!(truthy(&row["active"]), "left taking orders: {row}");
    assert_eq!(
        row["contact_mechanisms."][0]["value"].as_str(),
        Some(order.customer.email.as_str())
    );
    let again = tryton.create_sales_order(&order).await.expect("repeat");
    assert_eq!(again.reference, posted.reference, "never a second sale");

    // Two gifts to the same friend, posted in one batch and then alone: the sales ship to
    // the friend, are invoiced to the customer, and the friend's address is made once.
    let friend = ferry_erp::Address {
        first_name: "Bo".into(),
        last_name: "Lind".into(),
        address1: "Lilla torg 3".into(),
        city: "Lund".into(),
        zip_code: "222 21".into(),
        country_code: order.customer.country_code.clone(),
        ..ferry_erp::Address::default()
    };
    let gift = |n: &str| PostOrder {
        external_ref: format!("{}-{n}", order.external_ref),
        customer: moved.clone(),
        delivery: Some(friend.clone()),
        ..order.clone()
    };
    let batch = tryton
        .create_sales_orders(&[gift("gift1"), example_without_delivery(&order, &moved)])
        .await;
    assert!(batch.iter().all(Result::is_ok), "{batch:?}");
    tryton
        .create_sales_order(&gift("gift2"))
        .await
        .expect("alone");
    let mut shipped_to = Vec::new();
    for n in ["gift1", "gift2", "own"] {
        let reference = format!("{prefix}{}-{n}", order.external_ref);
        let sale = &sale_by_reference(
            &tryton,
            &reference,
            &[
                "party",
                "invoice_address",
                "shipment_address.city",
                "shipment_address",
            ],
        )
        .await;
        assert_eq!(
            sale["party"].as_i64(),
            Some(party),
            "the customer's sale: {sale}"
        );
        shipped_to.push((
            sale["shipment_address"].as_i64().expect("shipment address"),
            sale["invoice_address"].as_i64().expect("invoice address"),
            sale["shipment_address."]["city"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
        ));
    }
    assert_eq!(shipped_to[0].2, "Lund", "{shipped_to:?}");
    assert_eq!(
        shipped_to[0].0, shipped_to[1].0,
        "the friend's address once"
    );
    assert_ne!(shipped_to[0].0, shipped_to[0].1, "invoiced to the customer");
    assert_eq!(
        shipped_to[2].2, "Malmö",
        "an order of their own ships to them"
    );
    assert_eq!(shipped_to[2].0, shipped_to[2].1);
    assert_eq!(
        shipped_to[0].1, shipped_to[2].1,
        "invoiced to their own address"
    );

    // An account that never ordered: its first change makes the party; its erasure runs.
    let other = centra_id();
    let mut account = order.customer.clone();
    account.email = format!("{prefix}bo@example.com");
    account.centra_customer_id = Some(other);
    let made = party_id(
        &tryton
            .sync_customer(&account)
            .await
            .expect("synced")
            .expect("a party"),
    );
    assert_ne!(made, party);
    let erased = tryton.erase_customer(other).await.expect("erased");
    assert!(matches!(erased, Erasure::Done(_)), "{erased:?}");
    let row = party_row(&tryton, made).await;
    assert!(!truthy(&row["active"]), "{row}");
    assert!(row["name"].is_null(), "{row}");
    let text = row.to_string();
    assert!(!text.contains("bo@example.com"), "{text}");
    assert!(!text.contains(&account.city), "{text}");
    assert_eq!(
        tryton.erase_customer(other).await.expect("again"),
        Erasure::NotFound,
        "an erasure sent again finds nobody left to erase"
    );
}
