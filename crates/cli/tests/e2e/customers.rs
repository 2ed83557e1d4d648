//! Customers (ADR 0038): a customer's new address in Centra reaches the ERP's customer (the
//! one their first order created, found by the Centra id), once however often it is
//! announced; an erasure request anonymises the customer and their sales orders in the
//! ERP; and guests follow the brand's policy — a customer of their own, or the market's
//! generic customer.

use ferry::stack::{Stack, StackOptions};
use ferry_domain::rules::{GuestPolicy, Rules};
use ferry_sim_centra::OrderMix;
use ferry_testing::TestEnv;

use crate::tryton::tenant;
use crate::until;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_address_reaches_the_erp_customer_and_an_erasure_anonymises_it() {
    let env = TestEnv::new().await;
    let options = StackOptions {
        tenant: "acme".into(),
        centra_requests_per_10s: 1000,
        centra_events: true,
        ..StackOptions::default()
    };
    let stack = Stack::start(env.config(), options).await.expect("stack");
    let mix = OrderMix {
        hold_pct: 0,
        pending_pct: 0,
        markets: vec![1],
        ..OrderMix::default()
    };
    let number = stack.centra.generate(1, &mix)[0];
    let customer = stack
        .centra
        .state
        .order(number)
        .expect("order")
        .customer
        .clone();
    let posted = until("the order posted", || {
        stack
            .erp
            .orders()
            .into_iter()
            .find(|o| o.external_ref == number.to_string())
    })
    .await;
    assert_eq!(
        posted.customer["centra_customer_id"].as_i64(),
        Some(customer.id),
        "the ERP learns who the customer is in Centra"
    );

    // Customer service corrects the customer's address in Centra, twice over.
    for city in ["Göteborg", "Malmö"] {
        stack
            .centra
            .state
            .transact(|w| {
                w.ops.change_customer(customer.id, |a| {
                    a.billing_address.city = city.to_owned();
                    a.billing_address.address1 = "Storgatan 1".to_owned();
                })
            })
            .expect("changed");
    }
    let party = until("the ERP customer updated", || {
        stack
            .erp
            .party_of(customer.id)
            .filter(|p| p.details["city"] == "Malmö")
    })
    .await;
    assert_eq!(party.details["address1"], "Storgatan 1");
    assert_eq!(party.details["email"], customer.email.as_str());
    let store = env.store().await;
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());

    // The customer asks to be erased.
    stack
        .centra
        .state
        .transact(|w| w.ops.erase_customer(customer.id))
        .expect("erased in Centra");
    let erased = until("the ERP customer erased", || {
        stack.erp.party_of(customer.id).filter(|p| p.erased)
    })
    .await;
    assert!(
        erased.details.get("email").is_none(),
        "{:?}",
        erased.details
    );
    let order = stack
        .erp
        .orders()
        .into_iter()
        .find(|o| o.external_ref == number.to_string())
        .expect("the sales order stays");
    assert_eq!(order.customer["erased"], true);
    assert!(
        !order.customer.to_string().contains(&customer.email),
        "no personal data left on the sales order"
    );
    assert_eq!(
        order.gross_minor, posted.gross_minor,
        "the books keep the money"
    );
    assert!(store.open_exceptions("acme").await.unwrap().is_empty());
    stack.shutdown().await;
    env.cleanup().await;
}

#[test]
fn guests_post_to_their_own_customer_or_the_market_generic_one() {
    use ferry_proto::order::v1 as pb;
    let order = |centra_customer_id: i64| pb::SalesOrder {
        tenant: "acme".into(),
        order_number: 1,
        currency: "SEK".into(),
        market: "Sweden".into(),
        customer: Some(pb::Customer {
            centra_customer_id,
            email: "guest@example.com".into(),
            ..pb::Customer::default()
        }),
        ..pb::SalesOrder::default()
    };
    let own = tenant(Rules::default());
    let post = ferry_erp_writer::convert::post_order(&own, &order(0));
    assert_eq!(post.customer.erp_customer, None, "a guest of their own");
    assert_eq!(post.customer.centra_customer_id, None);
    assert_eq!(post.customer.email, "guest@example.com");

    let generic = tenant(Rules {
        guests: GuestPolicy::GenericPerMarket,
        generic_customers: [
            ("Sweden".to_owned(), "GUEST-SE".to_owned()),
            ("*".to_owned(), "GUEST".to_owned()),
        ]
        .into(),
        ..Rules::default()
    });
    let post = ferry_erp_writer::convert::post_order(&generic, &order(0));
    assert_eq!(post.customer.erp_customer.as_deref(), Some("GUEST-SE"));
    let elsewhere = pb::SalesOrder {
        market: "Norway".into(),
        ..order(0)
    };
    let post = ferry_erp_writer::convert::post_order(&generic, &elsewhere);
    assert_eq!(post.customer.erp_customer.as_deref(), Some("GUEST"));
    // A customer with an account is always their own, whatever the guest policy.
    let post = ferry_erp_writer::convert::post_order(&generic, &order(812));
    assert_eq!(post.customer.erp_customer, None);
    assert_eq!(post.customer.centra_customer_id, Some(812));
}
