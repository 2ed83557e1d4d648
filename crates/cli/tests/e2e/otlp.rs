//! A real OTLP/gRPC trace receiver for the tests: what every exported span was called,
//! its trace and links, its string attributes, and every string it carried.

use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// (trace id, span name, trace ids the span links to)
pub type Exported = (String, String, Vec<String>);
/// Each span's string attributes, by span name.
type Attributes = std::collections::HashMap<String, Vec<(String, String)>>;

#[derive(Clone, Default)]
pub struct Receiver {
    pub spans: Arc<Mutex<Vec<Exported>>>,
    /// Each span's string attributes, by span name (the last exported of that name).
    pub attributes: Arc<Mutex<Attributes>>,
    /// Every string a span or its events carried: names, attribute values, resources.
    pub texts: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    /// Serves OTLP/gRPC on a free loopback port.
    pub async fn start() -> (Receiver, std::net::SocketAddr) {
        let receiver = Receiver::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let service = TraceServiceServer::new(receiver.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream_listener(listener)),
        );
        (receiver, addr)
    }
}

/// The strings in attributes, nested values included.
fn strings(attributes: &[KeyValue], out: &mut Vec<String>) {
    fn value(v: &AnyValue, out: &mut Vec<String>) {
        match &v.value {
            Some(Value::StringValue(s)) => out.push(s.clone()),
            Some(Value::ArrayValue(a)) => a.values.iter().for_each(|v| value(v, out)),
            Some(Value::KvlistValue(l)) => strings(&l.values, out),
            Some(Value::BytesValue(b)) => out.push(String::from_utf8_lossy(b).into_owned()),
            _ => {}
        }
    }
    for kv in attributes {
        out.push(kv.key.clone());
        if let Some(v) = &kv.value {
            value(v, out);
        }
    }
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self
            .spans
            .lock()
            .map_err(|_| tonic::Status::internal("poisoned"))?;
        let mut texts = Vec::new();
        for resource in request.into_inner().resource_spans {
            if let Some(r) = &resource.resource {
                strings(&r.attributes, &mut texts);
            }
            for scope in resource.scope_spans {
                for span in scope.spans {
                    texts.push(span.name.clone());
                    strings(&span.attributes, &mut texts);
                    for event in &span.events {
                        texts.push(event.name.clone());
                        strings(&event.attributes, &mut texts);
                    }
                    let links = span.links.iter().map(|l| hex(&l.trace_id)).collect();
                    let attributes = span
                        .attributes
                        .iter()
                        .filter_map(|kv| match kv.value.as_ref()?.value.as_ref()? {
                            Value::StringValue(v) => Some((kv.key.clone(), v.clone())),
                            _ => None,
                        })
                        .collect();
                    if let Ok(mut by_name) = self.attributes.lock() {
                        by_name.insert(span.name.clone(), attributes);
                    }
                    spans.push((hex(&span.trace_id), span.name, links));
                }
            }
        }
        if let Ok(mut all) = self.texts.lock() {
            all.extend(texts);
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tokio_stream_listener(
    listener: tokio::net::TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    })
}
