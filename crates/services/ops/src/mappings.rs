//! The SKU mapping from the API: the SKUs holding orders back with the orders and money
//! they block, and rows added by operations (the orders they held are released by the
//! transform within seconds, as after `ferry mapping import`).

use std::collections::BTreeMap;

use ferry_proto::ops::v1 as pb;
use ferry_proto::ops::v1::mapping_service_server::MappingService;
use tonic::{Request, Response, Status};

use crate::access::Role;
use crate::convert::parse_parent;
use crate::server::{OpsApi, internal};

/// Rows one import may carry.
const MAX_ROWS: usize = 10_000;

impl OpsApi {
    /// The one tenant `parent` names, if the caller may see it.
    fn one_tenant(&self, who: &crate::access::Principal, parent: &str) -> Result<String, Status> {
        match parse_parent(parent)? {
            Some(t) if who.can_see(&t) => Ok(t),
            Some(t) => Err(Status::not_found(format!("no tenant {t}"))),
            None => Err(Status::invalid_argument(
                "a mapping belongs to one tenant: parent is tenants/<tenant>",
            )),
        }
    }
}

#[tonic::async_trait]
impl MappingService for OpsApi {
    async fn list_unmapped_skus(
        &self,
        request: Request<pb::ListUnmappedSkusRequest>,
    ) -> Result<Response<pb::ListUnmappedSkusResponse>, Status> {
        let who = self.caller(&request, "ListUnmappedSkus").await?;
        let tenant = self.one_tenant(&who, &request.get_ref().parent)?;
        let rows = self
            .store()
            .unmapped_skus(&tenant)
            .await
            .map_err(internal)?;
        // Most money first, as the store ordered the (SKU, currency) rows.
        let mut order: Vec<String> = Vec::new();
        let mut by_sku: BTreeMap<String, pb::UnmappedSku> = BTreeMap::new();
        for (sku, currency, orders, amount) in rows {
            let entry = by_sku.entry(sku.clone()).or_insert_with(|| {
                order.push(sku.clone());
                pb::UnmappedSku {
                    sku: sku.clone(),
                    ..pb::UnmappedSku::default()
                }
            });
            entry.orders += orders;
            entry.blocked.push(pb::Money {
                currency,
                amount_minor: amount,
            });
        }
        Ok(Response::new(pb::ListUnmappedSkusResponse {
            skus: order
                .into_iter()
                .filter_map(|sku| by_sku.remove(&sku))
                .collect(),
        }))
    }

    async fn import_mappings(
        &self,
        request: Request<pb::ImportMappingsRequest>,
    ) -> Result<Response<pb::ImportMappingsResponse>, Status> {
        let who = self.caller(&request, "ImportMappings").await?;
        let body = request.into_inner();
        let tenant = self.one_tenant(&who, &body.parent)?;
        if !matches!(who.role, Role::Operations | Role::Engineering | Role::Admin) {
            tracing::warn!(actor = %who.name, role = %who.role, "refused: mappings are operations'");
            return Err(Status::permission_denied(format!(
                "{} may not change the SKU mapping (operations may)",
                who.role
            )));
        }
        if body.mappings.is_empty() || body.mappings.len() > MAX_ROWS {
            return Err(Status::invalid_argument(format!(
                "send 1 to {MAX_ROWS} mappings, not {}",
                body.mappings.len()
            )));
        }
        let mut rows = Vec::with_capacity(body.mappings.len());
        for (i, m) in body.mappings.into_iter().enumerate() {
            let (sku, item) = (m.centra_sku.trim(), m.erp_item.trim());
            if sku.is_empty() || item.is_empty() {
                return Err(Status::invalid_argument(format!(
                    "mapping {}: both centra_sku and erp_item are required",
                    i + 1
                )));
            }
            rows.push((sku.to_owned(), item.to_owned()));
        }
        let written = self
            .store()
            .upsert_sku_mappings(&tenant, &rows)
            .await
            .map_err(internal)?;
        tracing::info!(actor = %who.name, tenant = %tenant, written, "mappings imported");
        Ok(Response::new(pb::ImportMappingsResponse {
            written: i64::try_from(written).unwrap_or(i64::MAX),
        }))
    }
}
