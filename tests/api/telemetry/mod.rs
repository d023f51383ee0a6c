//! Telemetry tests. Most run the real `tasklight` binary as a child process, so that the
//! process-wide parts (log subscriber, tracer provider) are the real ones: its stdout is the log,
//! its admin port serves `/metrics`, and its spans go to an OTLP/gRPC receiver in this process.

mod logs;
mod metrics;
mod otlp;
pub mod process;
mod sentry;
mod shutdown;
mod traces;
