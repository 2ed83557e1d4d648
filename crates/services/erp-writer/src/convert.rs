//! The wire sales order → what the ERP connector posts, with the tenant's ERP codes.

use ferry_config::TenantConfig;
use ferry_domain::rules::GuestPolicy;
use ferry_domain::transform::same_address;
use ferry_erp::{Address, Customer, LineKind, PostLine, PostOrder};
use ferry_proto::order::v1 as pb;

pub fn post_order(tenant: &TenantConfig, order: &pb::SalesOrder) -> PostOrder {
    let rules = &tenant.rules;
    let customer = order.customer.clone().unwrap_or_default();
    let billing = customer.billing_address.clone().unwrap_or_default();
    let delivery = delivery(&billing, customer.shipping_address.as_ref());
    let guest = customer.centra_customer_id == 0;
    let erp_customer = (guest && rules.guests == GuestPolicy::GenericPerMarket)
        .then(|| {
            rules
                .generic_customers
                .get(&order.market)
                .or_else(|| rules.generic_customers.get("*"))
                .cloned()
        })
        .flatten();
    let totals = order.totals.unwrap_or_default();
    PostOrder {
        tenant: order.tenant.clone(),
        external_ref: order.order_number.to_string(),
        currency: order.currency.clone(),
        order_date: order.order_date.clone(),
        customer: Customer {
            email: customer.email,
            first_name: customer.first_name,
            last_name: customer.last_name,
            company_name: billing.company_name,
            vat_number: customer.vat_number,
            address1: billing.address1,
            address2: billing.address2,
            city: billing.city,
            zip_code: billing.zip_code,
            state_or_province: billing.state_or_province,
            country_code: billing.country_code,
            phone_number: billing.phone_number,
            erp_customer,
            centra_customer_id: (!guest).then_some(customer.centra_customer_id),
        },
        delivery,
        lines: order.lines.iter().map(|l| post_line(tenant, l)).collect(),
        gross_minor: totals.gross_minor,
        tax_minor: totals.tax_minor,
        payment_term: rules.payment_terms.get(&order.payment_method).cloned(),
        carrier: rules.carriers.get(&order.shipping_option).cloned(),
        sales_channel: rules.sales_channels.get(&order.market).cloned(),
    }
}

/// The shipping address, when the goods go elsewhere than the billing address (an empty
/// one, or the same place, is the customer's own).
pub fn delivery(billing: &pb::Address, shipping: Option<&pb::Address>) -> Option<Address> {
    let s = shipping?;
    if s.address1.trim().is_empty() && s.city.trim().is_empty() {
        return None;
    }
    if same_address(parts(s), parts(billing)) {
        return None;
    }
    Some(Address {
        first_name: s.first_name.clone(),
        last_name: s.last_name.clone(),
        company_name: s.company_name.clone(),
        address1: s.address1.clone(),
        address2: s.address2.clone(),
        city: s.city.clone(),
        zip_code: s.zip_code.clone(),
        state_or_province: s.state_or_province.clone(),
        country_code: s.country_code.clone(),
        phone_number: s.phone_number.clone(),
    })
}

/// The parts of a wire address [`same_address`] compares.
fn parts(a: &pb::Address) -> [&str; 9] {
    [
        &a.first_name,
        &a.last_name,
        &a.company_name,
        &a.address1,
        &a.address2,
        &a.city,
        &a.zip_code,
        &a.state_or_province,
        &a.country_code,
    ]
}

/// One wire line as the ERP connector posts it, with the tenant's tax code.
pub fn post_line(tenant: &TenantConfig, l: &pb::SalesOrderLine) -> PostLine {
    PostLine {
        kind: match pb::LineKind::try_from(l.kind) {
            Ok(pb::LineKind::Shipping) => LineKind::Shipping,
            Ok(pb::LineKind::Handling) => LineKind::Handling,
            _ => LineKind::Item,
        },
        erp_item: l.erp_item.clone(),
        sku: l.sku.clone(),
        centra_line_id: l.centra_line_id,
        quantity: l.quantity,
        tax_rate: l.tax_rate_percent.clone(),
        tax_code: tenant.rules.tax_codes.get(&l.tax_rate_percent).cloned(),
        gross_minor: l.gross_minor,
        tax_minor: l.tax_minor,
        net_minor: l.net_minor,
        description: l.description.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(city: &str, name: &str) -> pb::Address {
        pb::Address {
            first_name: name.into(),
            last_name: "Svensson".into(),
            address1: "Storgatan 1".into(),
            city: city.into(),
            zip_code: "111 22".into(),
            country_code: "SE".into(),
            ..pb::Address::default()
        }
    }

    #[test]
    fn goods_go_elsewhere_only_when_the_shipping_address_says_so() {
        let billing = at("Stockholm", "Anna");
        assert_eq!(delivery(&billing, None), None, "no shipping address");
        assert_eq!(
            delivery(&billing, Some(&pb::Address::default())),
            None,
            "an empty one"
        );
        assert_eq!(
            delivery(&billing, Some(&at(" stockholm", "ANNA"))),
            None,
            "the same place and person, written differently"
        );
        let gift = delivery(&billing, Some(&at("Stockholm", "Bo"))).expect("another person");
        assert_eq!(
            (gift.first_name.as_str(), gift.city.as_str()),
            ("Bo", "Stockholm")
        );
        let moved = delivery(&billing, Some(&at("Malmö", "Anna"))).expect("another place");
        assert_eq!(moved.city, "Malmö");
    }
}
