//! One module per subcommand.

pub mod features;
pub mod gpu;
pub mod list;
pub mod profile;
pub mod run;
pub mod symbolize;
