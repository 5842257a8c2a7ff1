//! Telemetry: the log filter and format, and where traces go.

use super::parser::Parser;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Clone, Debug)]
pub struct TelemetrySettings {
    pub log_filter: String,
    pub log_format: LogFormat,
    /// `None`: no trace export.
    pub otlp_endpoint: Option<String>,
    pub service_name: String,
}

impl TelemetrySettings {
    pub(super) fn parse(p: &mut Parser<'_>, production: bool) -> TelemetrySettings {
        let log_format = match p.raw("AVS_LOG_FORMAT") {
            None if production => LogFormat::Json,
            None => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                p.problem("AVS_LOG_FORMAT", format!("{other:?} is not json or pretty"));
                LogFormat::Json
            }
        };
        TelemetrySettings {
            log_filter: p.raw("RUST_LOG").unwrap_or_default().to_owned(),
            log_format,
            otlp_endpoint: p.raw("OTEL_EXPORTER_OTLP_ENDPOINT").map(str::to_owned),
            service_name: p.raw("OTEL_SERVICE_NAME").unwrap_or_default().to_owned(),
        }
    }
}
