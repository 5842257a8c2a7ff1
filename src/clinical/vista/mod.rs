//! The VistA source: summaries as JSON, found by sid or by appointment.

mod client;
mod documents;
mod entry;
pub mod links;
mod service;
mod summary;

pub use client::VistaClient;
pub use service::Summaries;
pub use summary::{Form, Rendered, Summary};

use crate::clinical::UpstreamError;
use crate::domain::Sid;

/// Why a summary (or an appointment's link to one) is not served.
#[derive(Clone, Debug)]
pub enum SummaryError {
    /// The upstream has no such summary (kept for the negative TTL).
    NotFound(Sid),
    /// It exists and is someone else's.
    NotYourSummary,
    /// The appointment's summary is someone else's.
    NotYourAppointment,
    /// Every render turn stayed busy: come back shortly.
    Busy,
    /// The document could not be made (a defect: logged).
    RenderFailed,
    Upstream(UpstreamError),
}
