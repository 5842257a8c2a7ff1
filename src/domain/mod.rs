//! Pure types and rules: identifiers, the ICN match, summary rendering. No I/O.

mod casing;
mod document;
mod html;
mod ids;
mod lenient;
pub mod oracle;
mod summary;

pub use casing::{camel_key, camelize};
pub use document::{DocKind, Document};
pub use html::{HtmlToken, page_header_text, sanitize, sanitized_tokens};
pub use ids::{ActorId, AppointmentIen, OwnerIcn, PatientIcn, Sid, StationNo, same_patient};
pub use lenient::mended_json;
pub use summary::{ATTRIBUTES, RenderedSummary, ShapeError, render};
