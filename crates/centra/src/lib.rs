//! Centra's Integration API as Ferry uses it: the GraphQL client (paced to the request
//! quota, honouring 429 `Retry-After`, errors classified transient or permanent) and
//! webhook signature verification.

pub mod check;
pub mod client;
pub mod decode;
pub mod ratelimit;
pub mod webhook;

pub use client::{
    CentraClient, CentraCustomer, CentraError, CentraEvent, CentraReturn, CentraReturnLine,
    CentraShipment, CentraStock, NewShipment, ORDER_SNAPSHOT_QUERY, RateLimitBucket, RawSnapshot,
    UserMessage,
};
pub use ratelimit::{Pacing, RateLimiter, parse_retry_after};
