//! How full each JetStream stream is, for alerting (`FerryStreamFilling`): every stream
//! refuses new messages once it holds its byte limit (`discard: new`, so nothing is
//! dropped), and a full CENTRA stream stops the whole order spine until messages age out.
//! The soak found it: at 200 orders/s the default 1 GiB filled in 19 minutes.

use async_trait::async_trait;
use ferry_runtime::{Feed, FeedError, Pass, StreamKind, Topology};

/// The feed that reads the streams' state (one replica, deployment-wide).
pub const STREAMS_FEED: &str = "stream-usage";

pub struct StreamUsage {
    pub js: async_nats::jetstream::Context,
    pub topology: Topology,
}

#[async_trait]
impl Feed for StreamUsage {
    async fn pass(&self, cursor: &str) -> Result<Pass, FeedError> {
        for kind in StreamKind::ALL {
            let name = self.topology.stream_name(kind);
            let mut stream = self
                .js
                .get_stream(&name)
                .await
                .map_err(FeedError::transient)?;
            let info = stream.info().await.map_err(FeedError::transient)?;
            let bytes = info.state.bytes as f64;
            metrics::gauge!("ferry_stream_bytes", "stream" => name.clone()).set(bytes);
            metrics::gauge!("ferry_stream_messages", "stream" => name.clone())
                .set(info.state.messages as f64);
            // No limit (-1) reads as 0: nothing to fill.
            let limit = info.config.max_bytes.max(0) as f64;
            metrics::gauge!("ferry_stream_max_bytes", "stream" => name).set(limit);
        }
        Ok(Pass::idle(cursor))
    }
}
