//! What ends a run, and the exit status each gives.

use std::process::ExitCode;

use iam_offboard_core::OffboardError;

/// A stage's typed error, work left incomplete, or a local problem (usage,
/// output).
pub enum Failure {
    Offboard(OffboardError),
    Incomplete(String),
    Local(String),
}

impl From<OffboardError> for Failure {
    fn from(error: OffboardError) -> Self {
        Self::Offboard(error)
    }
}

impl Failure {
    /// Prints the error: exit status 1 for an offboarding's error or work left
    /// incomplete, 2 for a local problem.
    pub fn exit(self) -> ExitCode {
        match self {
            Self::Offboard(error) => {
                eprintln!("error: {}: {error}", error.name());
                ExitCode::from(1)
            }
            Self::Incomplete(message) => {
                eprintln!("error: {message}");
                ExitCode::from(1)
            }
            Self::Local(message) => {
                eprintln!("error: {message}");
                ExitCode::from(2)
            }
        }
    }
}
