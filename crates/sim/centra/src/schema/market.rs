//! Where an order was placed: store, market, pricelist, country, currency.

use super::*;

#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(rename_items = "SCREAMING_SNAKE_CASE")]
pub enum StoreType {
    DirectToConsumer,
    Wholesale,
}

pub struct Store;

#[Object]
impl Store {
    async fn id(&self) -> i64 {
        1
    }
    #[graphql(name = "type")]
    async fn kind(&self) -> StoreType {
        StoreType::DirectToConsumer
    }
}

pub struct Market(pub Arc<Order>);

#[Object]
impl Market {
    async fn id(&self) -> i64 {
        self.0.market.id
    }
    async fn name(&self) -> &str {
        self.0.market.name
    }
}

pub struct Pricelist(pub(crate) Arc<Order>);

#[Object]
impl Pricelist {
    async fn id(&self) -> i64 {
        self.0.market.pricelist_id
    }
    async fn name(&self) -> &str {
        self.0.market.pricelist_name
    }
}

pub struct Country {
    pub(crate) code: String,
    pub(crate) name: String,
}

#[Object]
impl Country {
    async fn code(&self) -> Option<&str> {
        Some(&self.code)
    }
    async fn name(&self) -> Option<&str> {
        Some(&self.name)
    }
}

pub struct Currency {
    pub(crate) code: &'static str,
}

#[Object]
impl Currency {
    async fn id(&self) -> i64 {
        match self.code {
            "SEK" => 1,
            "GBP" => 2,
            "EUR" => 3,
            "USD" => 4,
            _ => 5,
        }
    }
    async fn code(&self) -> &str {
        self.code
    }
}
