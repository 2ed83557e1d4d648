//! Generated protobuf types for Ferry's wire contracts (`proto/ferry/**/v1`), plus the few
//! conversions every service needs. Nothing hand-written changes the wire format.

#![allow(clippy::all, missing_docs)]

pub mod centra {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ferry.centra.v1.rs"));
    }
}

pub mod order {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ferry.order.v1.rs"));
    }
}

pub mod exception {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ferry.exception.v1.rs"));
    }
}

pub mod erp {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ferry.erp.v1.rs"));
    }
}

/// The operations API (gRPC server and client).
pub mod ops {
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/ferry.ops.v1.rs"));
    }
}

/// Every file descriptor of Ferry's protos (for the operations API's server reflection).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/ferry_descriptor.bin"));

pub use prost::Message;
pub use prost_types::Timestamp;

/// Converts a wall-clock time to a protobuf timestamp.
pub fn timestamp(at: std::time::SystemTime) -> Timestamp {
    Timestamp::from(at)
}

/// Milliseconds since the Unix epoch of a protobuf timestamp (0 when absent).
pub fn millis(ts: Option<&Timestamp>) -> i64 {
    ts.map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
        .unwrap_or(0)
}
