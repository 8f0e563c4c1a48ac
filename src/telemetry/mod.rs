//! Telemetry the ecosystem reads: per-attempt [`AttemptTimings`], trace propagation
//! ([`Propagator`], [`W3cPropagator`], [`TraceParent`]) and, with the `tracing` feature, a span
//! per call and per attempt. OpenTelemetry's HTTP client metrics are an option of the metrics
//! exporter: [`PoolConfigBuilder::otel_metrics`](crate::PoolConfigBuilder::otel_metrics).
//!
//! Files: `timings.rs` (timings and the transport's phase clock), `propagation.rs` (the hook,
//! W3C trace context), `spans.rs` (the `tracing` spans and events).

mod propagation;
pub(crate) mod spans;
mod timings;

pub use propagation::{EnteredParent, PropagationContext, Propagator, TraceParent, W3cPropagator};
pub use timings::AttemptTimings;

pub(crate) use propagation::TraceIds;
pub(crate) use timings::{Phase, PhaseClock};
