//! Domain sales order → the `ferry.order.v1.SalesOrder` wire message.

use ferry_config::TenantConfig;
use ferry_domain::SalesOrder;
use ferry_domain::transform::{LineKind, PostalAddress};
use ferry_proto::centra::v1 as centra_pb;
use ferry_proto::order::v1 as pb;

fn address(a: &PostalAddress) -> pb::Address {
    pb::Address {
        company_name: a.company_name.clone(),
        first_name: a.first_name.clone(),
        last_name: a.last_name.clone(),
        address1: a.address1.clone(),
        address2: a.address2.clone(),
        city: a.city.clone(),
        state_or_province: a.state_or_province.clone(),
        zip_code: a.zip_code.clone(),
        country_code: a.country_code.clone(),
        email: a.email.clone(),
        phone_number: a.phone_number.clone(),
        vat_number: a.vat_number.clone(),
    }
}

/// One sales-order line on the wire.
pub fn line(l: &ferry_domain::OrderLine) -> pb::SalesOrderLine {
    pb::SalesOrderLine {
        kind: match l.kind {
            LineKind::Item => pb::LineKind::Item,
            LineKind::Shipping => pb::LineKind::Shipping,
            LineKind::Handling => pb::LineKind::Handling,
        } as i32,
        centra_line_id: l.centra_line_id,
        sku: l.sku.clone(),
        erp_item: l.erp_item.clone().unwrap_or_default(),
        quantity: l.quantity,
        tax_rate_percent: l.tax_rate.normalize().to_string(),
        gross_minor: l.gross,
        tax_minor: l.tax,
        net_minor: l.net,
        bundle_line_id: l.bundle_line_id,
        bundle_quantity: l.bundle_quantity,
        description: l.description.clone(),
    }
}

pub fn sales_order(
    tenant: &TenantConfig,
    order: &SalesOrder,
    source: &centra_pb::OrderSnapshot,
) -> pb::SalesOrder {
    pb::SalesOrder {
        tenant: tenant.id.clone(),
        order_number: order.order_number,
        centra_order_id: order.centra_order_id.clone(),
        currency: order.currency.clone(),
        lines: order.lines.iter().map(line).collect(),
        totals: Some(pb::Totals {
            gross_minor: order.totals.gross,
            tax_minor: order.totals.tax,
            net_minor: order.totals.net,
        }),
        customer: Some(pb::Customer {
            centra_customer_id: order.party.centra_customer_id.unwrap_or(0),
            email: order.party.email.clone(),
            first_name: order.party.first_name.clone(),
            last_name: order.party.last_name.clone(),
            billing_address: order.party.billing.as_ref().map(address),
            shipping_address: order.party.shipping.as_ref().map(address),
            vat_number: order.party.vat_number.clone(),
        }),
        market: order.market.clone(),
        payment_method: order.payment_method.clone(),
        shipping_option: order.shipping_option.clone(),
        order_date: order.order_date.clone(),
        snapshot_hash: source.content_hash.clone(),
        snapshot_fetched_at: source.fetched_at,
        first_accepted_at: source.first_accepted_at,
    }
}
