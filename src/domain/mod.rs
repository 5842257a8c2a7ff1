//! Pure types and rules: identifiers, the ICN match, summary rendering. No I/O.

mod casing;
mod html;
mod ids;
pub mod oracle;
mod summary;

pub use casing::{camel_key, camelize};
pub use html::{page_header_text, sanitize};
pub use ids::{ActorId, AppointmentIen, OwnerIcn, PatientIcn, Sid, StationNo, same_patient};
pub use summary::{ATTRIBUTES, RenderedSummary, ShapeError, render};
