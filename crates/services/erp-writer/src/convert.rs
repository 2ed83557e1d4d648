//! The wire sales order → what the ERP connector posts, with the tenant's ERP codes.

use ferry_config::TenantConfig;
use ferry_domain::rules::GuestPolicy;
use ferry_erp::{Customer, LineKind, PostLine, PostOrder};
use ferry_proto::order::v1 as pb;

pub fn post_order(tenant: &TenantConfig, order: &pb::SalesOrder) -> PostOrder {
    let rules = &tenant.rules;
    let customer = order.customer.clone().unwrap_or_default();
    let billing = customer.billing_address.clone().unwrap_or_default();
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
        lines: order.lines.iter().map(|l| post_line(tenant, l)).collect(),
        gross_minor: totals.gross_minor,
        tax_minor: totals.tax_minor,
        payment_term: rules.payment_terms.get(&order.payment_method).cloned(),
        carrier: rules.carriers.get(&order.shipping_option).cloned(),
        sales_channel: rules.sales_channels.get(&order.market).cloned(),
    }
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
